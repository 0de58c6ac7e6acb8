// `serve --redis` + `cogvideox-fun worker` on a real Redis (Debian's redis-server, started here on a free port):
// 30 concurrent jobs over 2 workers each finished once with its own output; a worker killed with SIGKILL mid-job
// and its job finished by the other; a restarted server reporting and serving what the old one queued; Redis
// stopped (the API answers 503 naming Redis) and back; cancel of a queued and of a running job; a job run again
// (at-least-once) whose second output replaces the first, with Redis's result and the served file both the newest;
// a run that lost its lock, whose output is dropped.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANCELLED_KEY, CANCELLED_ORDER_KEY, connect, QUEUE_NAME } from '../src/server/redis.js';
import { RedisQueue, type QueueData, type QueueResult } from '../src/server/redis_queue.js';
import type { JobSpec } from '../src/server/types.js';
import { createServer } from '../src/server/server.js';
import { startRedis, redisServerPath, startWorker, type TestRedis, type TestWorker } from './redis_helpers.js';
import { call, DEMO_MODEL, readEvents, waitFinished, type TestServer } from './server_helpers.js';

const HAVE_REDIS = redisServerPath() !== undefined;
// CI installs redis-server and sets this: a missing one fails there instead of skipping the suite
const EXPECT_REDIS = process.env.COGVIDEOX_EXPECT_REDIS === '1';
// small so that a killed worker's job is retried within seconds (the default is 30 s)
const LOCK_MS = 3000;

it.runIf(EXPECT_REDIS)('redis-server is installed (COGVIDEOX_EXPECT_REDIS=1)', () => {
  expect(HAVE_REDIS, 'redis-server not found on PATH').toBe(true);
});

describe.skipIf(!HAVE_REDIS)('job queue on Redis (BullMQ), remote workers', () => {
  let redis: TestRedis;
  let tmp: string;
  let outputDir: string;
  let modelsDir: string;
  let t: TestServer;
  const workers: TestWorker[] = [];

  async function startServer(): Promise<TestServer> {
    const server = await createServer({ outputDir, modelsDir, log: null, redis: redis.url, retries: 2 });
    const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
    return { server, base, outputDir, modelsDir, close: () => server.close() };
  }
  const workerArgs = () => ['--redis', redis.url, '--output-dir', outputDir, '--models-dir', modelsDir, '--lock-ms', String(LOCK_MS), '--stalled-ms', '500'];
  /** Output folder entries that are not finished job folders. */
  const strays = () => fs.readdirSync(outputDir).filter((n) => n.startsWith('.'));
  const submit = async (body: Record<string, unknown>) => {
    const r = await call(t, 'POST', '/v1/jobs', body);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body.id as string;
  };
  const waitState = async (id: string, state: string, ms = 60_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const r = await call(t, 'GET', `/v1/jobs/${id}`);
      if (r.body.state === state) return r.body;
      if (Date.now() > end) throw new Error(`job ${id} is ${r.body.state}, not ${state}, after ${ms} ms`);
      await new Promise((res) => setTimeout(res, 50));
    }
  };

  beforeAll(async () => {
    redis = await startRedis();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-redis-serve-'));
    outputDir = path.join(tmp, 'samples');
    modelsDir = path.join(tmp, 'models');
    fs.mkdirSync(outputDir, { recursive: true });
    fs.mkdirSync(path.join(modelsDir, 'Diffusion_Transformer'), { recursive: true });
    fs.symlinkSync(DEMO_MODEL, path.join(modelsDir, 'Diffusion_Transformer', 'demo'));
    t = await startServer();
    workers.push(...(await Promise.all([startWorker(workerArgs()), startWorker(workerArgs())])));
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    await Promise.all(workers.map((w) => w.stop()));
    await redis?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  it('30 concurrent jobs on 2 workers: each done once, with its own output, split across both', async () => {
    const ids = await Promise.all(Array.from({ length: 30 }, (_, k) => submit({ prompt: `job ${k}`, frames: 1, steps: 1, seed: k })));
    expect(new Set(ids).size).toBe(30);
    const events = readEvents(t, ids[0]!);
    const done = await Promise.all(ids.map((id) => waitFinished(t, id, 150_000)));
    for (const d of done) expect(d.state, d.error).toBe('done');
    expect((await events).map((e) => e.type).at(-1)).toBe('done');
    // every output is its own job's: the record names the job and its seed
    for (const [k, id] of ids.entries()) {
      const record = JSON.parse(fs.readFileSync(path.join(outputDir, id, 'record.json'), 'utf8'));
      expect(record.id).toBe(id);
      expect(record.settings.seed).toBe(String(k));
      const res = await call(t, 'GET', `/v1/jobs/${id}/result`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/png');
    }
    expect(fs.readdirSync(outputDir).filter((n) => !n.startsWith('.')).sort()).toEqual([...ids].sort());
    expect(new Set(done.map((d) => d.worker)).size).toBe(2);
    expect(strays()).toEqual([]);
    const list = (await call(t, 'GET', '/v1/jobs')).body.jobs as { id: string; seq: number }[];
    expect(list.filter((j) => ids.includes(j.id))).toHaveLength(30);
    const health = await call(t, 'GET', '/v1/health');
    expect(health.body).toMatchObject({ ok: true, queue: 'redis', workers: 2 });
  }, 200_000);

  it('a worker killed (SIGKILL) mid-job: the other worker runs the job again and it completes, written once', async () => {
    const id = await submit({ prompt: 'long', steps: 40, seed: 1 });
    await waitState(id, 'running');
    // wait for a step, so the job has work under way when its worker dies
    const end = Date.now() + 60_000;
    let running = (await call(t, 'GET', `/v1/jobs/${id}`)).body;
    while ((running.step ?? 0) < 1 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      running = (await call(t, 'GET', `/v1/jobs/${id}`)).body;
    }
    expect(running.state).toBe('running');
    const victim = workers.find((w) => running.worker?.endsWith(`:${w.pid}`))!;
    expect(victim, `worker ${running.worker}`).toBeDefined();
    const exited = new Promise((r) => victim.proc.once('exit', r));
    victim.proc.kill('SIGKILL');
    await exited;
    const done = await waitFinished(t, id, 150_000);
    expect(done.state, done.error).toBe('done');
    expect(done.worker).not.toBe(running.worker);
    expect(fs.readdirSync(path.join(outputDir, id)).sort()).toEqual(['record.json', 'sample.mp4']);
    expect(strays()).toEqual([]); // the killed attempt's partial folder is gone
    workers.splice(workers.indexOf(victim), 1, await startWorker(workerArgs()));
  }, 240_000);

  it('a restarted server reports the old jobs and serves their results; jobs queued meanwhile are not lost', async () => {
    const first = await submit({ prompt: 'before', frames: 1, steps: 1 });
    expect((await waitFinished(t, first)).state).toBe('done');
    await t.close();
    t = await startServer();
    const again = await call(t, 'GET', `/v1/jobs/${first}`);
    expect(again.body).toMatchObject({ id: first, state: 'done' });
    expect((await call(t, 'GET', `/v1/jobs/${first}/result`)).status).toBe(200);

    // jobs submitted, then the server goes away before they are done
    const queued = await Promise.all([1, 2, 3, 4].map((k) => submit({ prompt: `during ${k}`, frames: 1, steps: 2 })));
    // an open event stream does not hold the stopping server
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    const stream = readEvents(t, queued[3]!, () => opened());
    await open;
    await t.close();
    expect((await stream)[0]!.type).toBe('state');
    await new Promise((r) => setTimeout(r, 300));
    t = await startServer();
    for (const id of queued) expect((await waitFinished(t, id, 120_000)).state).toBe('done');
  }, 240_000);

  it('Redis stopped: the API answers 503 naming Redis at once; back up, the queue goes on', async () => {
    const id = await submit({ prompt: 'x', frames: 1, steps: 1 });
    expect((await waitFinished(t, id)).state).toBe('done');
    await redis.stop();
    const t0 = performance.now();
    for (const [method, url, body] of [['GET', `/v1/jobs/${id}`], ['GET', '/v1/jobs'], ['POST', '/v1/jobs', { prompt: 'y', frames: 1, steps: 1 }], ['GET', '/v1/health']] as const) {
      const r = await call(t, method, url, body);
      expect(r.status, `${method} ${url}: ${JSON.stringify(r.body)}`).toBe(503);
      expect(r.body.field).toBe('redis');
      expect(r.headers.get('retry-after')).toBe('5');
      expect(r.body.error).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+.* unavailable/);
    }
    expect(performance.now() - t0).toBeLessThan(15_000); // no hang
    expect(strays()).toEqual([]); // the refused submission left nothing
    await new Promise((r) => setTimeout(r, 1000));
    await redis.start();
    const end = Date.now() + 30_000;
    while ((await call(t, 'GET', `/v1/jobs/${id}`)).status !== 200) {
      if (Date.now() > end) throw new Error('the server did not reconnect to Redis');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await call(t, 'GET', `/v1/jobs/${id}`)).body.state).toBe('done');
    const after = await submit({ prompt: 'after', frames: 1, steps: 1 });
    expect((await waitFinished(t, after, 120_000)).state).toBe('done');
  }, 240_000);

  it('cancels a queued job and a running one: both end cancelled, no output', async () => {
    // both workers busy with long jobs, a third waits
    const long = [await submit({ prompt: 'busy a', steps: 200 }), await submit({ prompt: 'busy b', steps: 200 })];
    await Promise.all(long.map((id) => waitState(id, 'running')));
    const queued = await submit({ prompt: 'waits', frames: 1, steps: 1 });
    expect((await call(t, 'GET', `/v1/jobs/${queued}`)).body).toMatchObject({ state: 'queued', position: 1 });
    // back-pressure: a second server on the same queue, limited to one waiting job, refuses with 429 + Retry-After
    const small = await createServer({ outputDir, modelsDir, log: null, redis: redis.url, maxQueued: 1 });
    const full = await small.app.inject({ method: 'POST', url: '/v1/jobs', payload: { prompt: 'one too many', frames: 1, steps: 1 } });
    await small.close();
    expect(full.statusCode, full.body).toBe(429);
    expect(full.headers['retry-after']).toBe('5');
    expect(full.json().error).toMatch(/queue is full \(1 jobs waiting, --max-queued 1\)/);
    const c1 = await call(t, 'DELETE', `/v1/jobs/${queued}`);
    expect(c1.status, JSON.stringify(c1.body)).toBe(200);
    expect(c1.body.state).toBe('cancelled');
    expect((await call(t, 'GET', `/v1/jobs/${queued}`)).body.state).toBe('cancelled');
    expect((await call(t, 'DELETE', `/v1/jobs/${queued}`)).status).toBe(409);

    const events = readEvents(t, long[0]!);
    for (const id of long) {
      const c = await call(t, 'DELETE', `/v1/jobs/${id}`);
      expect(c.status, JSON.stringify(c.body)).toBe(200);
      expect(c.body.state).toBe('cancelled');
    }
    expect((await events).map((e) => e.type).at(-1)).toBe('cancelled');
    for (const id of [queued, ...long]) {
      expect((await call(t, 'GET', `/v1/jobs/${id}/result`)).status).toBe(409);
      expect(fs.existsSync(path.join(outputDir, id))).toBe(false);
    }
    expect(strays()).toEqual([]);
  }, 180_000);

  it('a job run again: its second output replaces the first atomically; Redis reports it and the server serves it', async () => {
    const pngSize = (b: Buffer) => ({ width: b.readUInt32BE(16), height: b.readUInt32BE(20) }); // IHDR
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const id = await submit({ prompt: 'twice', frames: 1, steps: 1, seed: 5, width: 96, height: 64 });
    expect((await waitFinished(t, id, 120_000)).state).toBe('done');
    const first = (await call(t, 'GET', `/v1/jobs/${id}/result`)).body as Buffer;
    expect(pngSize(first)).toEqual({ width: 96, height: 64 });
    const firstRecord = JSON.parse(fs.readFileSync(path.join(outputDir, id, 'record.json'), 'utf8'));

    // BullMQ delivers the job again (as after a worker that died between its commit and "completed"); the second run
    // is made to differ (another seed and size) so that which output is kept shows in the file itself
    const conn = connect(redis.url, false);
    const queue = new Queue(QUEUE_NAME, { connection: conn });
    try {
      const job = (await queue.getJob(id))!;
      const data = job.data as QueueData;
      const r1 = job.returnvalue as QueueResult;
      expect(r1.run).toBe(firstRecord.run);
      await job.updateData({ ...data, spec: { ...data.spec, job: { ...data.spec.job, seed: '6', width: 64, height: 96 } } });
      await job.retry('completed');
      // readers while the second run computes and commits: each gets one whole output, the first or the second
      const bodies: Buffer[] = [];
      let reading = true;
      const reader = (async () => {
        while (reading) {
          const r = await call(t, 'GET', `/v1/jobs/${id}/result`);
          if (r.status === 200) bodies.push(r.body as Buffer);
          await new Promise((res) => setTimeout(res, 5));
        }
      })();
      const again = await waitFinished(t, id, 120_000);
      reading = false;
      await reader;
      expect(again.state, again.error).toBe('done');
      const second = (await call(t, 'GET', `/v1/jobs/${id}/result`)).body as Buffer;
      expect(sha(second)).not.toBe(sha(first));
      // the reported result is the file served: the size the second run made, in Redis, in the API and in the PNG
      expect(pngSize(second)).toEqual({ width: 64, height: 96 });
      expect(again.result).toMatchObject({ width: 64, height: 96, frames: 1 });
      const r2 = (await queue.getJob(id))!.returnvalue as QueueResult;
      expect(r2).toMatchObject({ width: 64, height: 96 });
      const record = JSON.parse(fs.readFileSync(path.join(outputDir, id, 'record.json'), 'utf8'));
      expect(record.run).toBe(r2.run);
      expect(r2.run).not.toBe(r1.run);
      expect(record.output).toEqual({ file: 'sample.png', width: 64, height: 96, frames: 1 });
      expect(sha(fs.readFileSync(path.join(outputDir, id, 'sample.png')))).toBe(sha(second));
      for (const b of bodies) expect([sha(first), sha(second)]).toContain(sha(b));
      expect(fs.readdirSync(path.join(outputDir, id)).sort()).toEqual(['record.json', 'sample.png']); // no temporaries
      expect(strays()).toEqual([]);
    } finally {
      await queue.close();
      conn.disconnect();
    }
  }, 240_000);

  it('a run that lost its lock drops its output; the run that holds the lock commits, and Redis names that run', async () => {
    const id = await submit({ prompt: 'stolen lock', frames: 1, steps: 30, seed: 9 });
    await waitState(id, 'running');
    const end = Date.now() + 60_000;
    let running = (await call(t, 'GET', `/v1/jobs/${id}`)).body;
    while ((running.step ?? 0) < 1 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
      running = (await call(t, 'GET', `/v1/jobs/${id}`)).body;
    }
    expect(running.state).toBe('running');
    const first = workers.find((w) => running.worker?.endsWith(`:${w.pid}`))!;
    const conn = connect(redis.url, false);
    const queue = new Queue(QUEUE_NAME, { connection: conn });
    try {
      // as if this worker had stalled past its lock and another had taken the job: the lock is someone else's now
      await conn.set(`bull:${QUEUE_NAME}:${id}:lock`, 'another-worker-token', 'PX', LOCK_MS);
      const lost = Date.now() + 60_000;
      while (!first.log().includes(`job ${id}: this run`)) {
        if (Date.now() > lost) throw new Error(`the first run did not finish: ${first.log()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(first.log()).toContain("lost the job's lock");
      expect(fs.existsSync(path.join(outputDir, id))).toBe(false); // its finished output was not committed
      // the lock lapses, a stalled check puts the job back, a run that holds the lock completes it
      const done = await waitFinished(t, id, 150_000);
      expect(done.state, done.error).toBe('done');
      const record = JSON.parse(fs.readFileSync(path.join(outputDir, id, 'record.json'), 'utf8'));
      const result = (await queue.getJob(id))!.returnvalue as QueueResult;
      expect(record.run).toBe(result.run);
      const dropped = /job \S+: this run \(([^)]+)\)/.exec(first.log())![1];
      expect(result.run).not.toBe(dropped);
      expect(fs.readdirSync(path.join(outputDir, id)).sort()).toEqual(['record.json', 'sample.png']);
      expect(strays()).toEqual([]);
    } finally {
      await queue.close();
      conn.disconnect();
    }
  }, 240_000);
});

describe.skipIf(!HAVE_REDIS)('Redis queue history is bounded', () => {
  it('jobs cancelled while queued: only the newest historyLimit are kept (hash and order), the API lists those', async () => {
    const redis = await startRedis();
    const outputDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-redis-history-'));
    const q = new RedisQueue({ url: redis.url, outputDir, resultUrl: (id) => `/v1/jobs/${id}/result`, historyLimit: 3 });
    const conn = connect(redis.url, false);
    try {
      await q.ready();
      const spec = (k: number): JobSpec => {
        const id = `20261202-000000-${k.toString(16).padStart(6, '0')}`;
        const workDir = path.join(outputDir, `.${id}.partial`);
        const settings = { model: 'demo', prompt: 'p', format: 'png' } as JobSpec['settings'];
        return { id, job: { model: DEMO_MODEL, loras: [], outTmp: path.join(workDir, 'sample.png') } as unknown as JobSpec['job'], settings, workDir, finalDir: path.join(outputDir, id), resultName: 'sample.png', submittedAt: new Date().toISOString() };
      };
      const ids: string[] = [];
      for (let k = 0; k < 7; k++) {
        const info = await q.submit(spec(k));
        ids.push(info.id);
        expect((await q.cancel(info.id)).state).toBe('cancelled');
      }
      expect(await conn.hlen(CANCELLED_KEY)).toBe(3);
      expect(await conn.zcard(CANCELLED_ORDER_KEY)).toBe(3);
      expect((await q.list()).map((j) => j.id)).toEqual(ids.slice(4).reverse());
      expect(await q.get(ids[0]!)).toBeUndefined();
      expect((await q.get(ids[6]!))?.state).toBe('cancelled');
    } finally {
      conn.disconnect();
      await q.close();
      await redis.close();
      fs.rmSync(outputDir, { recursive: true, force: true });
    }
  }, 60_000);
});
