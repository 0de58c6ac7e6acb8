// `cogvideox-fun serve` under load, on 127.0.0.1 with the bundled demo model (`npx tsx bench/server.ts [--runs 5]`):
//  1. status (GET /v1/jobs/{id}) and events (time to the first SSE event of a new /events stream) latency while a
//     job computes: generation runs in a worker thread, so these should not wait for it;
//  2. a job's overhead: the same generation (demo, 9 frames 96×64, 10 steps, DDIM_Origin) through the library
//     (runJob: open the folder, pipeline call, write the MP4; warm) against POST → "done" event through the server;
//  3. throughput with 20 demo jobs submitted at once.
// Every timing is printed with the load average: the machine is shared.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { runJob } from '../src/cli/job.js';
import { resolveRun } from '../src/cli/generate.js';
import { parseGenerateArgs } from '../src/cli/options.js';
import { setBackend } from '../src/nn/backend.js';
import { call, readEvents, startTestServer, type TestServer } from '../test/server_helpers.js';
import { machine } from './common.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, requests: { type: 'string', default: '400' } } });
const RUNS = Number(values.runs);
const REQUESTS = Number(values.requests);
const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);
const ms = (x: number) => `${x.toFixed(1)} ms`;

console.log(`# bench/server.ts — ${machine()}`);

// ---- 2. the same demo job through the library (runJob: what the worker runs, called directly, warm) and through the
// server (POST → "done" event), alternated so both see the same machine; the first of each is a warm-up
await setBackend(undefined, { quiet: true });
const t: TestServer = await startTestServer({});
const libDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-lib-'));
const lib: number[] = [];
const serverTimes: number[] = [];
const outside: number[] = []; // end to end minus the job function's own time (record.json "seconds")
for (let i = 0; i <= RUNS; i++) {
  const run = resolveRun(parseGenerateArgs(['--steps', '10', '--seed', String(i), '--out', path.join(libDir, `lib${i}.mp4`)]));
  let t0 = performance.now();
  await runJob(run.job, () => {}, () => false);
  if (i > 0) lib.push(performance.now() - t0);
  t0 = performance.now();
  const r = await call(t, 'POST', '/v1/jobs', { steps: 10, seed: i });
  const ev = await readEvents(t, r.body.id);
  if (ev.at(-1)!.type !== 'done') throw new Error(`job ${r.body.id}: ${JSON.stringify(ev.at(-1))}`);
  const inJob = JSON.parse(fs.readFileSync(path.join(t.outputDir, r.body.id, 'record.json'), 'utf8')).seconds * 1000;
  if (i > 0) {
    serverTimes.push(ev.at(-1)!.at - t0);
    outside.push(ev.at(-1)!.at - t0 - inJob);
  }
}
fs.rmSync(libDir, { recursive: true, force: true });
const libLoad = load();
const serverLoad = libLoad;
console.log(`library: ${lib.map((x) => (x / 1000).toFixed(3)).join(' · ')} s; tf tensors ${tf.memory().numTensors}`);
console.log(`server:  ${serverTimes.map((x) => (x / 1000).toFixed(3)).join(' · ')} s (load ${serverLoad})`);

// ---- 1. status / events latency while a long job computes
const long = await call(t, 'POST', '/v1/jobs', { steps: 1000, sampler: 'DDIM_Origin' });
for (;;) {
  const s = (await call(t, 'GET', `/v1/jobs/${long.body.id}`)).body;
  if (s.stage === 'denoise') break;
  await new Promise((r) => setTimeout(r, 20));
}
const statusLat: number[] = [];
const eventLat: number[] = [];
for (let i = 0; i < REQUESTS; i++) {
  const t0 = performance.now();
  const s = await call(t, 'GET', `/v1/jobs/${long.body.id}`);
  statusLat.push(performance.now() - t0);
  if (s.body.state !== 'running') throw new Error('the long job ended during the latency run');
  if (i % 4 === 0) {
    // a fresh SSE stream: time to its first event (the state snapshot)
    const ctrl = new AbortController();
    const t1 = performance.now();
    const res = await fetch(`${t.base}/v1/jobs/${long.body.id}/events`, { signal: ctrl.signal });
    const reader = res.body!.getReader();
    await reader.read();
    eventLat.push(performance.now() - t1);
    ctrl.abort();
  }
}
const stepAtEnd = (await call(t, 'GET', `/v1/jobs/${long.body.id}`)).body.step;
const latLoad = load();
await call(t, 'DELETE', `/v1/jobs/${long.body.id}`);

// ---- 3. throughput: 20 demo jobs at once
const t0 = performance.now();
const subs = await Promise.all(Array.from({ length: 20 }, (_, i) => call(t, 'POST', '/v1/jobs', { steps: 10, seed: 100 + i })));
const submitMs = performance.now() - t0;
const ends = await Promise.all(subs.map((r) => readEvents(t, r.body.id).then((ev) => ev.at(-1)!)));
if (ends.some((e) => e.type !== 'done')) throw new Error('a throughput job did not finish');
const total = (Math.max(...ends.map((e) => e.at)) - t0) / 1000;
const thrLoad = load();
const memory = t.server.ctx.pool.memory()[0];
await t.close();

console.log('');
console.log('| measure | value | load average (1/5/15 min) |');
console.log('|---|---|---|');
console.log(`| GET /v1/jobs/{id} while a job denoises, p50 / p99 (${statusLat.length} requests; the job advanced to step ${stepAtEnd}) | ${ms(pct(statusLat, 50))} / ${ms(pct(statusLat, 99))} | ${latLoad} |`);
console.log(`| new /events stream, first event, p50 / p99 (${eventLat.length} streams) | ${ms(pct(eventLat, 50))} / ${ms(pct(eventLat, 99))} | ${latLoad} |`);
console.log(`| demo job (9×96×64, 10 steps) through the library, median of ${RUNS} | ${(median(lib) / 1000).toFixed(3)} s | ${libLoad} |`);
console.log(`| the same job through the server (POST → done event), median of ${RUNS} | ${(median(serverTimes) / 1000).toFixed(3)} s | ${serverLoad} |`);
console.log(`| per-job overhead of the server (medians' difference) | ${ms(median(serverTimes) - median(lib))} | |`);
console.log(`| of which outside the job function (validate, queue, hand-off, events; median) | ${ms(median(outside))} | ${serverLoad} |`);
console.log(`| 20 demo jobs submitted at once: all 202 in / all done in | ${ms(submitMs)} / ${total.toFixed(2)} s (${(20 / total).toFixed(2)} jobs/s; ${((total / 20) * 1000).toFixed(0)} ms per job) | ${thrLoad} |`);
console.log(`| worker after all jobs: tf tensors / RSS / process listeners | ${memory?.numTensors} / ${((memory?.rss ?? 0) / 2 ** 20).toFixed(0)} MiB / ${memory?.listeners} | |`);
