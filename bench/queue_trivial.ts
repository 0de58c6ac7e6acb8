// Bench-only: a BullMQ worker on the server's queue that completes every job at once without generating (no model,
// no output file), so that bench/queue.ts can push 10 000 jobs through `serve --redis` in bounded time and measure
// what the queue itself costs (submissions/s, memory after many finished jobs). It lives here, not in src/: the
// production worker (src/server/remote_worker.ts) has no such mode and a job cannot ask for it.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { startRedis } from '../test/redis_helpers.js';
import { machine } from './common.js';
import { CANCELLED_KEY, connect, QUEUE_NAME } from '../src/server/redis.js';
import type { QueueResult } from '../src/server/redis_queue.js';

export interface TrivialWorker {
  /** jobs completed by this worker so far */
  readonly completed: () => number;
  close(): Promise<void>;
}

export async function startTrivialWorker(url: string, concurrency = 50): Promise<TrivialWorker> {
  const conn = connect(url, false);
  let completed = 0;
  const w = new Worker(
    QUEUE_NAME,
    async (): Promise<QueueResult> => {
      completed++;
      return { width: 0, height: 0, frames: 0, seconds: 0, worker: 'bench-trivial', run: 'bench-trivial' };
    },
    { connection: conn, concurrency, name: 'bench-trivial' },
  );
  w.on('error', () => {});
  await w.waitUntilReady();
  return {
    completed: () => completed,
    close: async () => {
      await w.close();
      conn.disconnect();
    },
  };
}

// ---- the --trivial section of bench/queue.ts ----

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'cogvideox-fun.mjs');

interface ServeProcess {
  pid: number;
  base: string;
  stop(): Promise<void>;
}

/** `cogvideox-fun serve --redis URL --port 0 --quiet` in its own process (so its RSS is the server's alone). */
async function startServe(args: string[]): Promise<ServeProcess> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--quiet', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const base = await new Promise<string>((resolve, reject) => {
    proc.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /cogvideox-fun serve: (http:\/\/\S+?)\/ /.exec(log);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`serve exited (${code}): ${log}`)));
  });
  return {
    pid: proc.pid!,
    base,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

const statusKiB = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
const mib = (kib: number) => (kib / 1024).toFixed(1);
/** CPU seconds (user + system) a process has used: robust to the machine's load, unlike rates and latencies. */
const cpuSec = (pid: number) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
};

// The client: node:http with a keep-alive agent of at most 64 sockets (as a reverse proxy in front of the server
// would hold), cheaper than fetch, so that the bench process (on the same 2 cores) takes less of the machine. A
// request waiting for a free socket is counted from when it was issued: its latency is what a client sees.
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One POST /v1/jobs: its latency, ms; a refusal or a connection error is counted in `errors` instead. */
const errors = new Map<string, number>();
function submit(base: string, seed: number): Promise<number | undefined> {
  const t0 = performance.now();
  const body = JSON.stringify({ frames: 1, steps: 1, seed });
  const fail = (why: string) => errors.set(why, (errors.get(why) ?? 0) + 1);
  return new Promise((resolve) => {
    const req = http.request(`${base}/v1/jobs`, { method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        if (res.statusCode === 202) return resolve(performance.now() - t0);
        fail(`HTTP ${res.statusCode} ${text.slice(0, 200)}`);
        resolve(undefined);
      });
    });
    req.on('error', (e) => {
      fail(e.message);
      resolve(undefined);
    });
    req.end(body);
  });
}
const takeErrors = () => {
  const out = [...errors].map(([k, n]) => `${n}× ${k}`).join('; ');
  errors.clear();
  return out ? `; FAILED: ${out}` : '';
};

/** `n` submissions (or as many as fit in `ms`), `inFlight` outstanding at any time. */
async function closedLoop(base: string, n: number, inFlight: number, ms = Infinity): Promise<{ perSec: number; lat: number[] }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n && performance.now() - t0 < ms) {
        const ms1 = await submit(base, next++);
        if (ms1 !== undefined) lat.push(ms1);
      }
    }),
  );
  return { perSec: lat.length / ((performance.now() - t0) / 1000), lat };
}

/** Submissions arriving at `rate` per second whatever the answers (open loop), for `seconds`. */
async function openLoop(base: string, rate: number, seconds: number): Promise<{ perSec: number; lat: number[]; late: number }> {
  const lat: number[] = [];
  const pending: Promise<void>[] = [];
  const total = Math.round(rate * seconds);
  const t0 = performance.now();
  let sent = 0;
  let late = 0; // ticks at which the client itself fell behind the schedule by > 10 ms
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    if (due - sent > rate / 100) late++;
    for (; sent < due; sent++) pending.push(submit(base, 1_000_000 + sent).then((ms) => void (ms !== undefined && lat.push(ms))));
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  return { perSec: lat.length / ((performance.now() - t0) / 1000), lat, late };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

export async function trivialBench(o: { finish: number; rate: number; seconds: number; inFlight: number; load: () => string }): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-queue-trivial-'));
  const outputDir = path.join(tmp, 'samples');
  fs.mkdirSync(outputDir, { recursive: true });
  const redis = await startRedis();
  // no --max-queued refusals: the parts below leave up to (rate + max rate) × seconds jobs waiting
  const serve = await startServe(['--redis', redis.url, '--output-dir', outputDir, '--max-queued', '10000000']);
  const r = connect(redis.url, false);
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await r.info('memory'))?.[1] ?? NaN);
  const redisCpu = async () => {
    const info = await r.info('cpu');
    return Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1]) + Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1]);
  };
  /** runs `part`; CPU ms per submission of the server process and of redis-server meanwhile */
  const cpuPer = async <T extends { lat: number[] }>(part: () => Promise<T>): Promise<T & { cpu: string }> => {
    const [s0, r0] = [cpuSec(serve.pid), await redisCpu()];
    const out = await part();
    const [s1, r1] = [cpuSec(serve.pid), await redisCpu()];
    const n = out.lat.length;
    return { ...out, cpu: `CPU per submission: server ${(((s1 - s0) * 1000) / n).toFixed(2)} ms, Redis ${(((r1 - r0) * 1000) / n).toFixed(2)} ms` };
  };
  const p = (x: number) => x.toFixed(1);
  try {
    console.log(`# bench/queue.ts --trivial — ${machine()}; server ${serve.base} (pid ${serve.pid}), redis-server ${redis.url}`);
    const warm = await closedLoop(serve.base, 200, 8); // warm-up (JIT, connections); these jobs stay queued until the worker starts
    const rss0 = statusKiB(serve.pid, 'VmRSS');
    const redis0 = await usedMemory();

    // finished: --finish jobs through the trivial worker (--finish 0: skipped)
    if (o.finish > 0) {
      const worker = await startTrivialWorker(redis.url, 50);
      const t0 = performance.now();
      const sub = await closedLoop(serve.base, o.finish, o.inFlight);
      // every ACCEPTED job must complete (a refused or dropped POST is reported with the line below, not waited
      // for); a job that failed for good (its lock lost on a starved machine, retries used up) is counted apart
      const accepted = warm.lat.length + sub.lat.length;
      let failedForGood = 0;
      while (worker.completed() + failedForGood < accepted) {
        if (performance.now() - t0 > 300_000) {
          throw new Error(`only ${worker.completed()} of ${accepted} accepted jobs completed (${failedForGood} failed) in 5 min; waiting ${await r.llen(`bull:${QUEUE_NAME}:wait`)}, active ${await r.llen(`bull:${QUEUE_NAME}:active`)}${takeErrors()}`);
        }
        await new Promise((res) => setTimeout(res, 100));
        failedForGood = await r.zcard(`bull:${QUEUE_NAME}:failed`);
      }
      if (failedForGood) console.log(`(${failedForGood} jobs failed for good: ${JSON.stringify(await r.zrange(`bull:${QUEUE_NAME}:failed`, 0, 2))})`);
      const finishSec = (performance.now() - t0) / 1000;
      await worker.close();
      await new Promise((res) => setTimeout(res, 2000)); // the server's last events
      const kept = {
        completed: await r.zcard(`bull:${QUEUE_NAME}:completed`),
        failed: await r.zcard(`bull:${QUEUE_NAME}:failed`),
        events: await r.xlen(`bull:${QUEUE_NAME}:events`),
        cancelled: await r.hlen(CANCELLED_KEY),
        keys: await r.dbsize(),
      };
      console.log(`\n## ${accepted} jobs finished (${o.finish} submitted ${o.inFlight} at a time, plus 200 warm-up; ${o.finish + 200 - accepted} not accepted)`);
      console.log(`submitted and completed in ${finishSec.toFixed(1)} s (submissions ${sub.perSec.toFixed(0)}/s, p50 ${p(pct(sub.lat, 50))} ms, p99 ${p(pct(sub.lat, 99))} ms); load ${o.load()}${takeErrors()}`);
      console.log(`server RSS ${mib(rss0)} → ${mib(statusKiB(serve.pid, 'VmRSS'))} MiB (peak ${mib(statusKiB(serve.pid, 'VmHWM'))} MiB); Redis used_memory ${(redis0 / 2 ** 20).toFixed(1)} → ${((await usedMemory()) / 2 ** 20).toFixed(1)} MiB`);
      console.log(`Redis keeps ${kept.completed} completed, ${kept.failed} failed, ${kept.cancelled} cancelled-while-queued jobs, ${kept.events} events, ${kept.keys} keys`);

    }
    // sustained: an offered rate, open loop, no worker (the jobs stay queued; --max-queued is 10 000)
    const open = await cpuPer(() => openLoop(serve.base, o.rate, o.seconds));
    console.log(`\n## sustained: ${o.rate}/s offered for ${o.seconds} s`);
    console.log(`achieved ${open.perSec.toFixed(0)}/s, p50 ${p(pct(open.lat, 50))} ms, p99 ${p(pct(open.lat, 99))} ms, max ${p(Math.max(...open.lat))} ms (client behind schedule at ${open.late} ticks); ${open.cpu}; load ${o.load()}${takeErrors()}`);
    // make room under --max-queued for the next part: the waiting jobs removed
    const q = new Queue(QUEUE_NAME, { connection: r });
    await q.drain();
    await q.close();

    // saturated: always --in-flight outstanding
    const sat = await cpuPer(() => closedLoop(serve.base, Infinity, o.inFlight, o.seconds * 1000));
    console.log(`\n## saturated: ${o.inFlight} in flight for ${o.seconds} s`);
    console.log(`${sat.perSec.toFixed(0)}/s, p50 ${p(pct(sat.lat, 50))} ms, p99 ${p(pct(sat.lat, 99))} ms; ${sat.cpu}; load ${o.load()}${takeErrors()}`);
  } finally {
    r.disconnect();
    await serve.stop();
    await redis.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
