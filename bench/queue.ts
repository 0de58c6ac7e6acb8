// The job queue itself, in-process (worker threads) against Redis (BullMQ + `cogvideox-fun worker` processes), with 1
// and 2 workers, on loopback with the bundled demo model and the smallest job it takes (1 frame, 1 step: the job
// function is a few hundred ms, so what differs between the rows is the queue) — `npx tsx bench/queue.ts [--runs 3]`:
//   submit/s, p50/p99   a burst of --burst POSTs at once, all workers stopped or busy (the accepting side only);
//   enqueue→start      startedAt − submittedAt of jobs sent one at a time to idle workers (the hand-off);
//   outside the job    POST → "done" event, minus the job function's own time (record.json seconds), one at a time;
//   jobs/s             --jobs submitted at once until the last "done" event.
// Every row is the median over --runs runs, printed with the load average (the machine is shared).
//
// `npx tsx bench/queue.ts --trivial [--finish 10000] [--rate 500] [--seconds 10] [--in-flight 32]`: the Redis queue
// alone, with `cogvideox-fun serve --redis` in its own process and a bench-only worker that completes each job at once
// without generating (bench/queue_trivial.ts; the production worker has no such mode):
//   finished            --finish jobs submitted (--in-flight at a time) and completed; then the server's RSS
//                       (VmRSS of its process), Redis's INFO memory used_memory, and what Redis keeps (history bound);
//   sustained           submissions at a fixed offered rate (--rate per second, open loop, for --seconds), no worker:
//                       achieved submissions/s and p50 / p99 latency of each POST /v1/jobs;
//   saturated           --in-flight POSTs always outstanding for --seconds: the most submissions/s, and their latency.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createServer } from '../src/server/server.js';
import { startRedis, startWorker, type TestRedis, type TestWorker } from '../test/redis_helpers.js';
import { trivialBench } from './queue_trivial.js';
import { call, DEMO_MODEL, readEvents, type TestServer } from '../test/server_helpers.js';
import { machine } from './common.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    jobs: { type: 'string', default: '10' },
    burst: { type: 'string', default: '200' },
    only: { type: 'string' },
    trivial: { type: 'boolean' },
    finish: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    'in-flight': { type: 'string', default: '32' },
  },
});
const RUNS = Number(values.runs);
const JOBS = Number(values.jobs);
const BURST = Number(values.burst);
const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);
const TINY = { frames: 1, steps: 1 };

interface Setup {
  t: TestServer;
  outputDir: string;
  close(): Promise<void>;
}

async function setup(mode: 'in-process' | 'redis', workers: number): Promise<Setup> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-queue-'));
  const outputDir = path.join(tmp, 'samples');
  const modelsDir = path.join(tmp, 'models');
  fs.mkdirSync(outputDir, { recursive: true });
  fs.mkdirSync(path.join(modelsDir, 'Diffusion_Transformer'), { recursive: true });
  fs.symlinkSync(DEMO_MODEL, path.join(modelsDir, 'Diffusion_Transformer', 'demo'));
  let redis: TestRedis | undefined;
  const procs: TestWorker[] = [];
  if (mode === 'redis') {
    redis = await startRedis();
    const args = ['--redis', redis.url, '--output-dir', outputDir, '--models-dir', modelsDir, '--quiet'];
    procs.push(...(await Promise.all(Array.from({ length: workers }, () => startWorker(args)))));
  }
  const server = await createServer({ outputDir, modelsDir, log: null, workers, redis: redis?.url });
  const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const t: TestServer = { server, base, outputDir, modelsDir, close: () => server.close() };
  return {
    t,
    outputDir,
    close: async () => {
      await server.close();
      await Promise.all(procs.map((p) => p.stop()));
      await redis?.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

async function oneJob(s: Setup, seed: number): Promise<{ e2e: number; outside: number; handoff: number }> {
  const t0 = performance.now();
  const r = await call(s.t, 'POST', '/v1/jobs', { ...TINY, seed });
  const ev = await readEvents(s.t, r.body.id);
  const e2e = ev.at(-1)!.at - t0;
  if (ev.at(-1)!.type !== 'done') throw new Error(`job ${r.body.id}: ${JSON.stringify(ev.at(-1)!.data)}`);
  const info = (await call(s.t, 'GET', `/v1/jobs/${r.body.id}`)).body;
  const inJob = JSON.parse(fs.readFileSync(path.join(s.outputDir, r.body.id, 'record.json'), 'utf8')).seconds * 1000;
  return { e2e, outside: e2e - inJob, handoff: Date.parse(info.startedAt) - Date.parse(info.submittedAt) };
}

async function waitDone(s: Setup, id: string): Promise<number> {
  const ev = await readEvents(s.t, id);
  if (ev.at(-1)!.type !== 'done') throw new Error(`job ${id}: ${JSON.stringify(ev.at(-1)!.data)}`);
  return ev.at(-1)!.at;
}

/** A burst of submissions; the jobs are cancelled afterwards (queued ones never run). */
async function burst(s: Setup): Promise<{ perSec: number; lat: number[] }> {
  const lat: number[] = [];
  const t0 = performance.now();
  const ids = await Promise.all(
    Array.from({ length: BURST }, async (_, i) => {
      const t1 = performance.now();
      const r = await call(s.t, 'POST', '/v1/jobs', { ...TINY, seed: 10_000 + i });
      lat.push(performance.now() - t1);
      if (r.status !== 202) throw new Error(`submit: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.id as string;
    }),
  );
  const perSec = BURST / ((performance.now() - t0) / 1000);
  for (const id of ids.reverse()) await call(s.t, 'DELETE', `/v1/jobs/${id}`);
  return { perSec, lat };
}

if (values.trivial) {
  await trivialBench({ finish: Number(values.finish), rate: Number(values.rate), seconds: Number(values.seconds), inFlight: Number(values['in-flight']), load });
  process.exit(0);
}

console.log(`# bench/queue.ts — ${machine()}; ${RUNS} runs, ${JOBS} jobs per throughput run, bursts of ${BURST}`);
const rows: string[] = [];
const configs: ['in-process' | 'redis', number][] = [
  ['in-process', 1],
  ['redis', 1],
  ['in-process', 2],
  ['redis', 2],
];
for (const [mode, workers] of configs) {
  if (values.only && values.only !== mode) continue;
  const s = await setup(mode, workers);
  await oneJob(s, 0); // warm-up: every worker has loaded the model once
  if (workers > 1) await Promise.all(Array.from({ length: workers * 2 }, (_, i) => oneJob(s, i + 1)));
  const seq: { e2e: number; outside: number; handoff: number }[] = [];
  const rates: number[] = [];
  const submitLat: number[] = [];
  const submitRates: number[] = [];
  const loads: string[] = [];
  for (let run = 0; run < RUNS; run++) {
    for (let i = 0; i < 5; i++) seq.push(await oneJob(s, 100 * run + i));
    const t0 = performance.now();
    const ids = await Promise.all(Array.from({ length: JOBS }, (_, i) => call(s.t, 'POST', '/v1/jobs', { ...TINY, seed: 1000 * run + i }).then((r) => r.body.id as string)));
    const ends = await Promise.all(ids.map((id) => waitDone(s, id)));
    rates.push(JOBS / ((Math.max(...ends) - t0) / 1000));
    const b = await burst(s);
    submitRates.push(b.perSec);
    submitLat.push(...b.lat);
    loads.push(load());
  }
  await s.close();
  const f = (x: number) => x.toFixed(1);
  rows.push(
    `| ${mode} | ${workers} | ${median(submitRates).toFixed(0)} | ${f(pct(submitLat, 50))} / ${f(pct(submitLat, 99))} | ${f(median(seq.map((x) => x.handoff)))} / ${f(pct(seq.map((x) => x.handoff), 99))} | ${f(median(seq.map((x) => x.outside)))} | ${median(rates).toFixed(2)} | ${loads.join('; ')} |`,
  );
  console.error(`${mode} × ${workers}: done (load ${load()})`);
}
console.log('');
console.log('| queue | workers | submit/s (burst) | submit p50 / p99 ms | enqueue→start p50 / p99 ms | outside the job, median ms | jobs/s (1-frame 1-step demo jobs) | load average after each run |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
process.exit(0); // the closed servers' Redis clients and probe threads need not be waited for
