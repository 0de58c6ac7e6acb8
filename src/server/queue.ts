// The job queue as the HTTP layer sees it, and its in-process implementation: FIFO, jobs handed to the worker
// pool as workers free up, states and progress kept for the status and events endpoints, a bounded history.
// Another implementation (a Redis-backed queue) provides the same interface and runs the same job function.
import type { JobEvent } from '../cli/protocol.js';
import { removePartial } from './job.js';
import { applyJobEvent } from './live.js';
import type { RunOutcome, WorkerPool } from './pool.js';
import { RequestError, type JobInfo, type JobSpec, type ServerJobEvent } from './types.js';

/** A value now (the in-process queue) or later (a queue that asks Redis). */
export type Awaitable<T> = T | Promise<T>;

export interface JobQueue {
  /** Accepts a validated job; it runs after every job submitted before it. */
  submit(spec: JobSpec): Awaitable<JobInfo>;
  get(id: string): Awaitable<JobInfo | undefined>;
  /** Newest first. */
  list(): Awaitable<JobInfo[]>;
  /** Cancels a queued or running job; resolves once it has stopped (nothing written). */
  cancel(id: string): Promise<JobInfo>;
  /** Resolves when the job is done / failed / cancelled. */
  settled(id: string): Promise<JobInfo>;
  /** Live events of one job; returns the unsubscribe function. */
  subscribe(id: string, listener: (e: ServerJobEvent) => void): () => void;
  /** What GET /v1/health reports about the queue; throws a RequestError (503) when the queue cannot answer. */
  health(): Awaitable<Record<string, unknown>>;
  close(): Promise<void>;
}

interface Entry {
  spec: JobSpec;
  info: JobInfo;
  listeners: Set<(e: ServerJobEvent) => void>;
  settled: Promise<void>;
  resolveSettled: () => void;
  denoiseStart?: number;
}

const TERMINAL = new Set(['done', 'failed', 'cancelled']);

export interface InProcessQueueOptions {
  /** finished jobs kept for GET /v1/jobs (oldest dropped first) */
  historyLimit?: number;
  /** URL of a finished job's result */
  resultUrl: (id: string) => string;
  /** called after a job's outcome is recorded (logging) */
  onFinished?: (info: JobInfo, outcome: RunOutcome) => void;
}

export class InProcessQueue implements JobQueue {
  private readonly entries = new Map<string, Entry>();
  private readonly waiting: Entry[] = [];
  private closed = false;
  private pumping = false;
  private seq = 0;

  constructor(
    private readonly pool: WorkerPool,
    private readonly opts: InProcessQueueOptions,
  ) {}

  submit(spec: JobSpec): JobInfo {
    if (this.closed) throw new RequestError(503, undefined, 'the server is shutting down');
    let resolveSettled!: () => void;
    const settled = new Promise<void>((r) => (resolveSettled = r));
    const entry: Entry = {
      spec,
      info: { id: spec.id, seq: ++this.seq, state: 'queued', submittedAt: spec.submittedAt, settings: spec.settings, warnings: [] },
      listeners: new Set(),
      settled,
      resolveSettled,
    };
    this.entries.set(spec.id, entry);
    this.waiting.push(entry);
    this.trimHistory();
    this.publish(entry, { type: 'queued', position: this.waiting.length });
    void this.pump();
    return this.snapshot(entry);
  }

  get(id: string): JobInfo | undefined {
    const e = this.entries.get(id);
    return e && this.snapshot(e);
  }

  list(): JobInfo[] {
    return [...this.entries.values()].reverse().map((e) => this.snapshot(e));
  }

  async settled(id: string): Promise<JobInfo> {
    const e = this.entries.get(id);
    if (!e) throw new RequestError(404, 'id', `no job ${id}`);
    await e.settled;
    return this.snapshot(e);
  }

  subscribe(id: string, listener: (e: ServerJobEvent) => void): () => void {
    const e = this.entries.get(id);
    if (!e) throw new RequestError(404, 'id', `no job ${id}`);
    e.listeners.add(listener);
    return () => e.listeners.delete(listener);
  }

  async cancel(id: string): Promise<JobInfo> {
    const e = this.entries.get(id);
    if (!e) throw new RequestError(404, 'id', `no job ${id}`);
    if (e.info.state === 'queued') {
      this.waiting.splice(this.waiting.indexOf(e), 1);
      removePartial(e.spec.workDir);
      this.finish(e, { ok: false, interrupted: true, error: 'cancelled' });
    } else if (e.info.state === 'running') {
      if (!this.pool.cancel(id)) throw new RequestError(409, 'id', `job ${id} is writing its result; it can no longer be cancelled`);
    } else {
      throw new RequestError(409, 'id', `job ${id} is already ${e.info.state}`);
    }
    await e.settled;
    if ((e.info.state as string) !== 'cancelled') throw new RequestError(409, 'id', `job ${id} finished (${e.info.state}) before it could be cancelled`);
    return this.snapshot(e);
  }

  health(): Record<string, unknown> {
    return { queue: 'in-process', backend: this.pool.backendName, workers: this.pool.size, idle: this.pool.idle };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.waiting.splice(0)) {
      removePartial(e.spec.workDir);
      this.finish(e, { ok: false, interrupted: true, error: 'cancelled' });
    }
    await this.pool.close();
  }

  /** Hands queued jobs to free workers, in submission order. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.waiting.length > 0) {
        await this.pool.waitIdle();
        const e = this.waiting.shift();
        if (!e || this.closed) break;
        this.startJob(e);
        this.publishPositions();
      }
    } finally {
      this.pumping = false;
    }
  }

  private startJob(e: Entry): void {
    e.info.state = 'running';
    e.info.startedAt = new Date().toISOString();
    this.publish(e, { type: 'started' });
    this.pool.run(e.spec, (ev) => this.onWorkerEvent(e, ev)).then(
      (outcome) => {
        this.finish(e, outcome);
        void this.pump();
      },
      (err: unknown) => {
        this.finish(e, { ok: false, interrupted: false, error: String(err) });
        void this.pump();
      },
    );
  }

  private onWorkerEvent(e: Entry, ev: JobEvent): void {
    const out = applyJobEvent(e.info, e, ev);
    if (out) this.publish(e, out);
  }

  private finish(e: Entry, outcome: RunOutcome): void {
    if (TERMINAL.has(e.info.state)) return;
    const i = e.info;
    i.finishedAt = new Date().toISOString();
    i.position = undefined;
    if (outcome.ok) {
      i.state = 'done';
      i.stage = undefined;
      i.etaSeconds = 0;
      const r = outcome.result;
      i.result = { url: this.opts.resultUrl(i.id), width: r.width, height: r.height, frames: r.frames, format: i.settings.format, path: r.file };
      this.publish(e, { type: 'done', result: i.result });
    } else if (outcome.interrupted) {
      i.state = 'cancelled';
      i.stepsAfterCancel = outcome.stepsAfterCancel;
      this.publish(e, { type: 'cancelled' });
    } else {
      i.state = 'failed';
      i.error = outcome.error;
      this.publish(e, { type: 'failed', error: outcome.error });
    }
    e.listeners.clear();
    e.resolveSettled();
    this.opts.onFinished?.(this.snapshot(e), outcome);
  }

  private publishPositions(): void {
    this.waiting.forEach((w, k) => this.publish(w, { type: 'queued', position: k + 1 }));
  }

  private publish(e: Entry, ev: ServerJobEvent): void {
    for (const l of e.listeners) l(ev);
  }

  private trimHistory(): void {
    const limit = this.opts.historyLimit ?? 1000;
    if (this.entries.size <= limit) return;
    for (const [id, e] of this.entries) {
      if (this.entries.size <= limit) break;
      if (TERMINAL.has(e.info.state)) this.entries.delete(id);
    }
  }

  private snapshot(e: Entry): JobInfo {
    const info: JobInfo = { ...e.info, warnings: [...e.info.warnings] };
    if (e.info.state === 'queued') info.position = this.waiting.indexOf(e) + 1;
    return info;
  }
}
