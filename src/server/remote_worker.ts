// `cogvideox-fun worker`: takes jobs from the Redis queue (BullMQ) and runs them through the same job function as the
// server's own threads (executeJob in a WorkerPool thread), so this process's event loop stays free to renew the
// job locks while a step computes for minutes.
//
// Outputs go to --output-dir, which must be the folder the server serves (one shared filesystem: NFS, SMB, a cloud
// volume). Why a folder and not Redis: a video is megabytes, Redis holds everything in memory and a result would be
// copied twice (worker → Redis → server disk); the job's uploads arrive the same way (the server stages them in
// <out>/.<id>.partial/inputs). Each attempt works in its own <out>/.<id>.partial/.attempt-… folder; BullMQ is
// at-least-once (a worker that dies or loses its lock has its job run again), so when an attempt has finished it
// first renews its lock — proof that no other worker has taken the job over, and a lease of --lock-ms for the commit
// — and only then commits: one rename to <out>/<id>, or, when an earlier run of the job committed already, each file
// renamed over the earlier one (job.ts commitOutput). The run that commits is the one BullMQ then marks completed, so
// the result in Redis describes the newest output; an attempt that lost its lock drops its output, and a killed
// attempt's partial output is never seen.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';
import { commitOutput, removePartial } from './job.js';
import { applyJobEvent } from './live.js';
import { WorkerPool } from './pool.js';
import { fromPortableSpec, rebaseSpec, type Roots } from './portable.js';
import { CANCEL_CHANNEL, cancelKey, checkRedisUrl, connect, hangUp, QUEUE_NAME, redisTlsOptions, untilReady } from './redis.js';
import type { QueueData, QueueProgress, QueueResult } from './redis_queue.js';
import type { JobSpec } from './types.js';

export interface RemoteWorkerOptions extends Roots {
  url: string;
  /** rediss://: the CA certificate file (PEM) that signed Redis's certificate (--redis-ca); default: Node's trust */
  ca?: string;
  /** jobs at once (one generation thread each) */
  concurrency?: number;
  backend?: 'tensorflow' | 'wasm';
  cancelGraceMs?: number;
  /** BullMQ lock of a running job; renewed every half of it. A dead worker's job is retried after about this long. */
  lockDurationMs?: number;
  /** how often this worker looks for jobs whose worker died (BullMQ's stalled check) */
  stalledIntervalMs?: number;
  log?: (line: string) => void;
}

export class RemoteWorker {
  readonly name = `${os.hostname()}:${process.pid}`;
  readonly safeUrl: string;
  private readonly pool: WorkerPool;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private worker?: Worker;
  private workerConn?: Redis;
  private readonly running = new Set<string>();
  private readonly tls: RedisOptions;

  constructor(private readonly o: RemoteWorkerOptions) {
    this.safeUrl = checkRedisUrl(o.url);
    this.tls = redisTlsOptions(o.url, o.ca);
    this.pool = new WorkerPool({ size: o.concurrency ?? 1, backend: o.backend, cancelGraceMs: o.cancelGraceMs });
    this.cmd = connect(o.url, false, this.tls);
    this.sub = connect(o.url, false, this.tls);
  }

  /**
   * Connects (a Redis that does not answer within 5 s, or whose TLS certificate is refused, ends the worker with the
   * reason: its commands would otherwise wait in ioredis's offline queue for ever), starts the generation threads,
   * then takes jobs.
   */
  async start(): Promise<void> {
    await untilReady(this.cmd, this.safeUrl);
    await this.pool.ready();
    await this.sub.subscribe(CANCEL_CHANNEL);
    this.sub.on('message', (_channel: string, id: string) => {
      if (this.running.has(id)) this.pool.cancel(id);
    });
    const lock = this.o.lockDurationMs ?? 30_000;
    this.worker = new Worker(QUEUE_NAME, (job, token) => this.process(job, token, lock), {
      connection: (this.workerConn = connect(this.o.url, false, this.tls)),
      concurrency: this.pool.size,
      lockDuration: lock,
      stalledInterval: this.o.stalledIntervalMs ?? lock,
      maxStalledCount: 1,
      name: this.name,
    });
    this.worker.on('error', (e) => this.o.log?.(`redis: ${e.message}`));
    await this.worker.waitUntilReady();
  }

  get backendName(): string {
    return this.pool.backendName;
  }

  private async process(job: Job, token: string | undefined, lockMs: number): Promise<QueueResult> {
    const id = job.id!;
    const data = job.data as QueueData;
    let spec: JobSpec;
    try {
      spec = fromPortableSpec(data.spec, this.o); // refuses paths outside this worker's folders
    } catch (e) {
      throw new UnrecoverableError((e as Error).message); // the same job would be refused again: no retry
    }
    const staging = spec.workDir;
    if (await this.cmd.get(cancelKey(id))) {
      removePartial(staging);
      throw new UnrecoverableError('cancelled');
    }
    const state: QueueProgress = { warnings: [], worker: this.name };
    const clock: { denoiseStart?: number } = {};
    await job.updateProgress(state);

    const runName = `attempt-${job.attemptsStarted}-${randomBytes(4).toString('hex')}`;
    const attempt = path.join(staging, `.${runName}`);
    fs.mkdirSync(attempt, { recursive: true });
    const inputs = path.join(staging, 'inputs');
    if (fs.existsSync(inputs)) fs.cpSync(inputs, path.join(attempt, 'inputs'), { recursive: true });
    const local = rebaseSpec(spec, staging, attempt);
    const run = `${this.name}/${runName}`;

    this.running.add(id);
    try {
      const pending = this.pool.run(
        local,
        (ev) => {
          const out = applyJobEvent(state, clock, ev);
          if (out) job.updateProgress({ ...state, event: out }).catch(() => {});
        },
        { commit: false, run },
      );
      if (await this.cmd.get(cancelKey(id))) this.pool.cancel(id); // cancelled while the inputs were copied
      const outcome = await pending;
      if (outcome.ok) {
        // still ours? (a lock that lapsed while this worker was stalled or cut off may belong to another run now)
        const owned = token !== undefined && (await job.extendLock(token, lockMs)) === 1;
        if (!owned) {
          const why = `this run (${run}) lost the job's lock (another worker may run it now); its output is dropped`;
          this.o.log?.(`job ${id}: ${why}`);
          throw new Error(why);
        }
        commitOutput(attempt, spec.finalDir);
        removePartial(staging); // uploads and abandoned attempts of this job
        this.o.log?.(`job ${id} done (attempt ${job.attemptsStarted})`);
        const r = outcome.result;
        return { width: r.width, height: r.height, frames: r.frames, seconds: r.seconds, worker: this.name, run };
      }
      const last = job.attemptsStarted >= (job.opts.attempts ?? 1);
      if (outcome.interrupted || last) removePartial(staging);
      this.o.log?.(`job ${id} ${outcome.interrupted ? 'cancelled' : `failed: ${outcome.error}`}`);
      if (outcome.interrupted) throw new UnrecoverableError('cancelled');
      throw new Error(outcome.error);
    } finally {
      this.running.delete(id);
      removePartial(attempt); // gone already when committed
    }
  }

  /** Stops taking jobs; `force` also stops the running ones (their locks lapse and another worker retries them). */
  async close(force = false): Promise<void> {
    await this.worker?.close(force);
    await this.pool.close();
    if (this.workerConn) hangUp(this.workerConn);
    hangUp(this.sub);
    hangUp(this.cmd);
  }
}
