// Is a job's memory released when its worker thread is terminated? (`node --expose-gc --import tsx bench/server_terminate.ts`)
// Cancelling a running job raises its stop flag; a job that has not stopped after the pool's grace period (10 s) has
// its worker thread terminated (src/server/pool.ts). This runs the same cycle — start a demo job, let it reach step 2,
// cancel it — with the normal grace (the job stops at its flag: the control) and with a zero grace (the thread is
// terminated mid-step, as for a job that ignores its flag), on each backend, and prints the process RSS (the worker
// threads live in this process) after every cycle: a release shows as a flat line, a leak as a steady climb of about
// the worker's working set per cycle. The demo job's working set is small, so part 2 makes the question sharp: a
// worker thread (bench/server_terminate_worker.ts) sets up the backend as the server's worker does, holds `--mib` MiB
// of tensors and computes in a loop that reads no flag; the thread is terminated, and the RSS is read before, while it
// holds them, and after, for several cycles.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { call, startTestServer, waitFinished, type TestServer } from '../test/server_helpers.js';
import { machine } from './common.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '8' },
    size: { type: 'string', default: '512x320x9' },
    backends: { type: 'string', default: 'tensorflow,wasm' },
    mib: { type: 'string', default: '512' },
    part: { type: 'string', default: '1,2' },
  },
});
const CYCLES = Number(values.cycles);
const [width, height, frames] = values.size.split('x').map(Number) as [number, number, number];
const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const settle = async () => {
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 1500));
};
/** least-squares slope of ys against 0..n-1 */
const slope = (ys: number[]) => {
  const n = ys.length;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, x) => ((num += (x - mx) * (y - my)), (den += (x - mx) ** 2)));
  return num / den;
};

async function cycle(t: TestServer): Promise<string> {
  const r = await call(t, 'POST', '/v1/jobs', { prompt: 'cancel me', steps: 1000, width, height, frames, seed: 1 });
  if (r.status !== 202) throw new Error(JSON.stringify(r.body));
  for (;;) {
    const s = (await call(t, 'GET', `/v1/jobs/${r.body.id}`)).body;
    if (s.state === 'running' && s.step >= 2) break;
    if (s.state !== 'running' && s.state !== 'queued') throw new Error(`job ${s.state}: ${s.error}`);
    await new Promise((res) => setTimeout(res, 20));
  }
  await call(t, 'DELETE', `/v1/jobs/${r.body.id}`);
  const end = await waitFinished(t, r.body.id, 120_000);
  await t.server.ctx.pool.ready(); // a terminated worker's replacement has its backend up
  return end.state;
}

console.log(`# bench/server_terminate.ts — ${machine()}`);
if (values.part.includes('1')) {
  console.log(`\n## 1. cancelling a demo job: demo model, ${width}×${height}, ${frames} frames; ${CYCLES} cancel cycles per row; RSS of the whole process in MiB\n`);
  console.log('| backend | cancel | worker restarts | RSS after warm-up | RSS after each cycle | slope MiB/cycle | load |');
  console.log('|---|---|---|---|---|---|---|');
  for (const backend of values.backends.split(',') as ('tensorflow' | 'wasm')[]) {
    for (const mode of ['stop flag', 'terminate'] as const) {
      const t = await startTestServer({ backend, cancelGraceMs: mode === 'terminate' ? 0 : 10_000 });
      try {
        await t.server.ctx.pool.ready();
        // warm-up: one finished job of the same size, then one cancel, so caches and allocator pools are at their level
        const w = await call(t, 'POST', '/v1/jobs', { prompt: 'warm', steps: 2, width, height, frames, seed: 1 });
        if (w.status !== 202) throw new Error(JSON.stringify(w.body));
        await waitFinished(t, w.body.id, 300_000);
        await cycle(t);
        await settle();
        const base = rssMiB();
        const after: number[] = [];
        for (let i = 0; i < CYCLES; i++) {
          const state = await cycle(t);
          if (state !== 'cancelled') throw new Error(`cycle ${i}: ${state}`);
          await settle();
          after.push(rssMiB());
        }
        const restarts = t.server.ctx.pool.restarts;
        console.log(`| ${backend} | ${mode} | ${restarts} | ${base.toFixed(0)} | ${after.map((x) => x.toFixed(0)).join(' ')} | ${slope([base, ...after]).toFixed(1)} | ${load()} |`);
      } finally {
        await t.close();
      }
    }
  }
}

/** A worker thread started as the server's (tsx in a checkout): this bench's worker entry. */
function spawnBenchWorker(data: unknown): Worker {
  const entry = new URL('./server_terminate_worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData: data });
}

if (values.part.includes('2')) {
  const MIB = Number(values.mib);
  console.log(`\n## 2. terminating a worker thread that holds ${MIB} MiB of tensors and ignores every flag; RSS in MiB\n`);
  console.log('| backend | cycle | before | holding | after terminate | after − before | load |');
  console.log('|---|---|---|---|---|---|---|');
  for (const backend of values.backends.split(',') as ('tensorflow' | 'wasm')[]) {
    const first = rssMiB();
    for (let i = 0; i < CYCLES; i++) {
      await settle();
      const before = rssMiB();
      const w = spawnBenchWorker({ backend, mib: MIB });
      const exited = new Promise<number>((res) => w.once('exit', res));
      const info = await new Promise<{ numBytes: number }>((res, rej) => {
        w.once('message', res);
        w.once('error', rej);
      });
      await new Promise((r) => setTimeout(r, 300)); // inside its endless loop
      const holding = rssMiB();
      if (info.numBytes < MIB * 2 ** 20) throw new Error(`worker holds only ${info.numBytes} bytes`);
      await w.terminate();
      await exited;
      await settle();
      const after = rssMiB();
      console.log(`| ${backend} | ${i + 1} | ${before.toFixed(0)} | ${holding.toFixed(0)} | ${after.toFixed(0)} | ${(after - before).toFixed(0)} | ${load()} |`);
    }
    console.log(`| ${backend} | all | ${first.toFixed(0)} | | ${rssMiB().toFixed(0)} | ${(rssMiB() - first).toFixed(0)} | |`);
  }
}
