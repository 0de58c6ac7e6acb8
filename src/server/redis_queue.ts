// The job queue on Redis (BullMQ), as `serve --redis` uses it: this server only accepts, reports and serves results;
// `cogvideox-fun worker` processes on any machine run the jobs (remote_worker.ts). Everything a job is lives in Redis
// — its spec (job data), live progress (job progress, stage/step/ETA/warnings), its result or last error — so a
// restarted server, or a second server, reports the same. Outputs travel through the shared --output-dir (see
// remote_worker.ts): the server reads <output-dir>/<id>/ once the job is completed.
import * as path from 'node:path';
import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { removePartial } from './job.js';
import { toPortableSpec, type Roots } from './portable.js';
import type { LiveState } from './live.js';
import type { JobQueue } from './queue.js';
import { CANCEL_CHANNEL, cancelKey, CANCELLED_KEY, CANCELLED_ORDER_KEY, checkRedisUrl, connect, guarded, hangUp, QUEUE_NAME, redisTlsOptions, SEQ_KEY, untilReady } from './redis.js';
import { RequestError, type JobInfo, type JobSpec, type ServerJobEvent } from './types.js';

/** What a job carries in Redis. */
export interface QueueData {
  spec: JobSpec; // portable paths (portable.ts)
  seq: number;
}
/** A running job's live state (job.updateProgress), written by the worker. */
export interface QueueProgress extends LiveState {
  worker?: string;
  /** the event this update publishes */
  event?: ServerJobEvent;
}
/** A completed job's return value. */
export interface QueueResult {
  width: number;
  height: number;
  frames: number;
  seconds: number;
  worker: string;
  /** the run whose output is committed: `<worker>/attempt-<n>-<random>`, also in the output's record.json */
  run: string;
}

export interface RedisQueueOptions extends Roots {
  url: string;
  /** rediss://: the CA certificate file (PEM) that signed Redis's certificate (--redis-ca); default: Node's trust */
  ca?: string;
  resultUrl: (id: string) => string;
  /** runs after the first failure (default 2: three attempts in all) */
  retries?: number;
  /**
   * finished jobs kept in Redis, each of completed, failed and cancelled-while-queued (default 1000; older ones
   * dropped), so Redis's memory is bounded whatever the number of jobs run (bench/queue.ts --trivial measures it)
   */
  historyLimit?: number;
  /** jobs waiting beyond which submissions get 429 (default 10 000) */
  maxQueued?: number;
  onFinished?: (info: JobInfo) => void;
  /** how long DELETE waits for a running job's worker to stop it (default 30 s) */
  cancelWaitMs?: number;
}

const STATE_TYPES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;

// One round trip before the add: the jobs waiting (as BullMQ's getWaitingCount: wait, delayed, prioritized — this
// queue has no parent jobs) and, below --max-queued, the next submission number. Returns [waiting, seq], seq 0 when
// the queue is full (no number is used up by a refused submission).
const ADMIT_LUA = `
local waiting = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
if waiting >= tonumber(ARGV[1]) then return {waiting, 0} end
return {waiting, redis.call('INCR', KEYS[4])}`;
type AdmitConn = Redis & { cogvideoxAdmit(wait: string, delayed: string, prioritized: string, seq: string, max: number): Promise<[number, number]> };

export class RedisQueue implements JobQueue {
  private readonly safeUrl: string;
  private readonly cmd: Redis;
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private readonly eventsConn: Redis;
  private readonly listeners = new Map<string, Set<(e: ServerJobEvent) => void>>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly historyLimit: number;

  constructor(private readonly opts: RedisQueueOptions) {
    this.safeUrl = checkRedisUrl(opts.url);
    this.historyLimit = opts.historyLimit ?? 1000;
    const tls = redisTlsOptions(opts.url, opts.ca);
    // not auto-pipelined: with BullMQ's ~50 scripts defined on the connection, every ioredis Pipeline copies them all,
    // which cost more per submission (server CPU 1.15–1.19 vs 1.00–1.07 ms at 500 requests/s arriving one by one)
    // than the batching saved under load (0.40–0.42 vs 0.42–0.44 ms at 32 in flight) — bench/queue.ts --trivial
    this.cmd = connect(opts.url, true, tls);
    this.cmd.defineCommand('cogvideoxAdmit', { numberOfKeys: 4, lua: ADMIT_LUA });
    this.queue = new Queue(QUEUE_NAME, { connection: this.cmd });
    this.queue.on('error', () => {});
    this.eventsConn = connect(opts.url, false, tls);
    this.events = new QueueEvents(QUEUE_NAME, { connection: this.eventsConn });
    this.events.on('error', () => {});
    this.events.on('waiting', ({ jobId }) => this.onQueued(jobId));
    this.events.on('active', ({ jobId }) => this.publish(jobId, { type: 'started' }));
    this.events.on('progress', ({ jobId, data }) => {
      const ev = (data as QueueProgress).event;
      if (ev) this.publish(jobId, ev);
    });
    this.events.on('completed', ({ jobId }) => void this.onFinished(jobId));
    this.events.on('failed', ({ jobId }) => void this.onFinished(jobId));
  }

  /**
   * Resolves when Redis answers (the server refuses to start otherwise: --redis names a Redis that is not there, or
   * one whose TLS certificate is not trusted).
   */
  async ready(timeoutMs = 5000): Promise<void> {
    await untilReady(this.cmd, this.safeUrl, timeoutMs);
    await this.queue.waitUntilReady();
    await this.events.waitUntilReady();
  }

  private guard<T>(op: () => Promise<T>): Promise<T> {
    return guarded(this.safeUrl, this.cmd, op);
  }

  async submit(spec: JobSpec): Promise<JobInfo> {
    const portable = toPortableSpec(spec, this.opts);
    return this.guard(async () => {
      const max = this.opts.maxQueued ?? 10_000;
      const q = this.queue;
      const [waiting, seq] = await (this.cmd as AdmitConn).cogvideoxAdmit(q.toKey('wait'), q.toKey('delayed'), q.toKey('prioritized'), SEQ_KEY, max);
      if (seq === 0) throw new RequestError(429, undefined, `the queue is full (${waiting} jobs waiting, --max-queued ${max}); retry later`);
      const keep = this.historyLimit;
      const data: QueueData = { spec: portable, seq };
      await this.queue.add('generate', data, {
        jobId: spec.id,
        attempts: 1 + (this.opts.retries ?? 2),
        removeOnComplete: { count: keep },
        removeOnFail: { count: keep },
      });
      return { id: spec.id, seq, state: 'queued', position: waiting + 1, submittedAt: spec.submittedAt, settings: spec.settings, warnings: [] };
    });
  }

  async get(id: string): Promise<JobInfo | undefined> {
    return this.guard(async () => {
      const job = await this.queue.getJob(id);
      if (!job) {
        const gone = await this.cmd.hget(CANCELLED_KEY, id);
        return gone ? (JSON.parse(gone) as JobInfo) : undefined;
      }
      const info = this.info(job, await job.getState());
      if (info.state === 'queued') {
        const seq = (job.data as QueueData).seq;
        const waiting = await this.queue.getWaiting(0, 9999);
        info.position = 1 + waiting.filter((j) => (j.data as QueueData).seq < seq).length;
      }
      return info;
    });
  }

  async list(): Promise<JobInfo[]> {
    return this.guard(async () => {
      const out: JobInfo[] = [];
      for (const t of STATE_TYPES) for (const j of await this.queue.getJobs([t], 0, 999)) if (j) out.push(this.info(j, t));
      for (const v of Object.values(await this.cmd.hgetall(CANCELLED_KEY))) out.push(JSON.parse(v) as JobInfo);
      return out.sort((a, b) => b.seq - a.seq);
    });
  }

  subscribe(id: string, listener: (e: ServerJobEvent) => void): () => void {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(id) === set) this.listeners.delete(id);
    };
  }

  async settled(id: string): Promise<JobInfo> {
    for (;;) {
      // register first, then look: a job finishing in between still wakes us
      const woken = new Promise<void>((resolve) => {
        let set = this.waiters.get(id);
        if (!set) this.waiters.set(id, (set = new Set()));
        set.add(resolve);
      });
      const info = await this.get(id);
      if (!info) throw new RequestError(404, 'id', `no job ${id}`);
      if (info.state === 'done' || info.state === 'failed' || info.state === 'cancelled') {
        this.waiters.delete(id);
        return info;
      }
      // a safety poll: an event missed during a Redis outage still ends the wait
      await Promise.race([woken, new Promise((r) => setTimeout(r, 5000))]);
    }
  }

  async cancel(id: string): Promise<JobInfo> {
    const job = await this.guard(() => this.queue.getJob(id));
    if (!job) {
      const gone = await this.guard(() => this.cmd.hget(CANCELLED_KEY, id));
      if (gone) throw new RequestError(409, 'id', `job ${id} is already cancelled`);
      throw new RequestError(404, 'id', `no job ${id}`);
    }
    const state = await this.guard(() => job.getState());
    const before = this.info(job, state);
    if (before.state !== 'queued' && before.state !== 'running') throw new RequestError(409, 'id', `job ${id} is already ${before.state}`);
    // the mark comes first: a worker taking the job from now on sees it and stops before computing
    await this.guard(() => this.cmd.set(cancelKey(id), '1', 'EX', 7 * 86400));
    if (before.state === 'queued') {
      const removed = await this.guard(() => job.remove().then(() => true, () => false)); // fails once a worker holds it
      if (removed) {
        const info: JobInfo = { ...before, state: 'cancelled', position: undefined, finishedAt: new Date().toISOString() };
        await this.guard(() => this.keepCancelled(info));
        removePartial(path.join(this.opts.outputDir, `.${id}.partial`));
        this.publish(id, { type: 'cancelled' });
        this.wake(id);
        this.opts.onFinished?.(info);
        return info;
      }
    }
    await this.guard(() => this.cmd.publish(CANCEL_CHANNEL, id));
    // a job whose worker died stays active until a living worker's stalled check takes it back (then it sees the
    // mark and ends cancelled); the request does not wait for that
    const after = await Promise.race([this.settled(id), new Promise<undefined>((r) => setTimeout(() => r(undefined), this.opts.cancelWaitMs ?? 30_000).unref())]);
    if (!after) throw new RequestError(409, 'id', `job ${id} is marked cancelled, but its worker has not answered (a dead worker's job ends cancelled once another worker takes it up)`);
    if (after.state !== 'cancelled') throw new RequestError(409, 'id', `job ${id} finished (${after.state}) before it could be cancelled`);
    return after;
  }

  async health(): Promise<Record<string, unknown>> {
    return this.guard(async () => {
      const c = await this.queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
      const workers = await this.queue.getWorkers();
      return { queue: 'redis', redis: this.safeUrl, workers: workers.length, ...c };
    });
  }

  async close(): Promise<void> {
    // queued and running jobs stay in Redis: the workers go on, a restarted server reports them.
    // Not connected (a Redis that never answered, or refused us): BullMQ's close would wait for the connection for
    // ever (measured: a server refused by Redis's certificate did not exit); closing flags its loops, nothing to wait for
    const connected = this.cmd.status === 'ready' && this.eventsConn.status === 'ready';
    const closed = Promise.all([this.events.close().catch(() => {}), this.queue.close().catch(() => {})]);
    if (connected) await closed;
    // connections handed to BullMQ are ours to close (it closes only those it opens)
    hangUp(this.eventsConn);
    hangUp(this.cmd);
  }

  private info(job: Job, state: string): JobInfo {
    const data = job.data as QueueData;
    const p = (typeof job.progress === 'object' && job.progress ? job.progress : { warnings: [] }) as QueueProgress;
    const info: JobInfo = {
      id: job.id!,
      seq: data.seq,
      state: 'queued',
      submittedAt: data.spec.submittedAt,
      settings: data.spec.settings,
      warnings: [...(p.warnings ?? [])],
      attempts: job.attemptsMade,
      worker: p.worker,
    };
    if (state === 'active' || (state !== 'completed' && state !== 'failed' && job.processedOn)) info.startedAt = job.processedOn ? new Date(job.processedOn).toISOString() : undefined;
    if (state === 'active') {
      Object.assign(info, { state: 'running', stage: p.stage, step: p.step, steps: p.steps, secondsPerStep: p.secondsPerStep, etaSeconds: p.etaSeconds });
    } else if (state === 'completed') {
      const r = job.returnvalue as QueueResult;
      const format = data.spec.settings.format;
      info.state = 'done';
      info.worker = r.worker;
      info.result = { url: this.opts.resultUrl(info.id), width: r.width, height: r.height, frames: r.frames, format, path: path.join(this.opts.outputDir, info.id, data.spec.resultName) };
    } else if (state === 'failed') {
      info.state = job.failedReason === 'cancelled' ? 'cancelled' : 'failed';
      if (info.state === 'failed') info.error = job.failedReason;
    }
    if (info.state === 'done' || info.state === 'failed' || info.state === 'cancelled') {
      info.startedAt = job.processedOn ? new Date(job.processedOn).toISOString() : undefined;
      info.finishedAt = job.finishedOn ? new Date(job.finishedOn).toISOString() : undefined;
    }
    return info;
  }

  /** Records a job cancelled while queued; keeps the newest `historyLimit` of them (like BullMQ's removeOn*). */
  private async keepCancelled(info: JobInfo): Promise<void> {
    await this.cmd.multi().hset(CANCELLED_KEY, info.id, JSON.stringify(info)).zadd(CANCELLED_ORDER_KEY, info.seq, info.id).exec();
    const old = await this.cmd.zrange(CANCELLED_ORDER_KEY, 0, -(this.historyLimit + 1));
    if (old.length) await this.cmd.multi().hdel(CANCELLED_KEY, ...old).zrem(CANCELLED_ORDER_KEY, ...old).exec();
  }

  private onQueued(id: string): void {
    if (!this.listeners.has(id)) return;
    void this.get(id).then(
      (i) => i?.state === 'queued' && this.publish(id, { type: 'queued', position: i.position ?? 1 }),
      () => {},
    );
  }

  private async onFinished(id: string): Promise<void> {
    // nobody to tell (no event stream, no waiter, no log): no need to read the job back (a round trip per job)
    if (!this.listeners.has(id) && !this.waiters.has(id) && !this.opts.onFinished) return;
    let info: JobInfo | undefined;
    try {
      info = await this.get(id);
    } catch {
      return; // Redis went away again; settled() polls
    }
    if (!info) return;
    if (info.state === 'done' && info.result) this.publish(id, { type: 'done', result: info.result }); else if (info.state === 'failed') this.publish(id, { type: 'failed', error: info.error ?? 'failed' });
    else if (info.state === 'cancelled') this.publish(id, { type: 'cancelled' });
    else return;
    this.listeners.delete(id);
    this.wake(id);
    this.opts.onFinished?.(info);
  }

  private wake(id: string): void {
    for (const w of this.waiters.get(id) ?? []) w();
    this.waiters.delete(id);
  }

  private publish(id: string, e: ServerJobEvent): void {
    for (const l of this.listeners.get(id) ?? []) l(e);
  }
}
