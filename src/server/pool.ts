// Generation worker threads: each runs one job at a time. Cancelling a running job raises its shared stop word,
// which the job polls at every denoising step and stage boundary; a job that has not stopped after `cancelGraceMs`
// (a step of a large model can take minutes) is stopped by terminating its thread, and a fresh thread takes its place.
// The terminated thread's tensors are released (bench/server_terminate.ts: RSS flat over repeated terminations, on
// tensorflow and wasm).
import type { Worker } from 'node:worker_threads';
import type { JobEvent } from '../cli/protocol.js';
import { removePartial, STOP_NONE, STOP_REQUESTED } from './job.js';
import { spawnWorker } from './spawn.js';
import type { JobResult, JobSpec, WorkerMemory, WorkerMessage } from './types.js';

export type RunOutcome =
  | { ok: true; result: JobResult; memory?: WorkerMemory }
  | { ok: false; error: string; interrupted: boolean; memory?: WorkerMemory; stepsAfterCancel?: number };

export interface PoolOptions {
  size?: number;
  backend?: 'tensorflow' | 'wasm';
  cancelGraceMs?: number;
}

interface Slot {
  worker: Worker;
  ready: Promise<void>;
  backend?: string;
  backendName?: string;
  current?: { spec: JobSpec; stop: Int32Array; onEvent: (e: JobEvent) => void; resolve: (o: RunOutcome) => void };
  lastMemory?: WorkerMemory;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private closed = false;
  readonly cancelGraceMs: number;
  /** the backend the workers run ('tensorflow' / 'wasm') and its description, once a worker is ready */
  backend = '';
  backendName = '';
  /** workers replaced after a crash or a forced cancel */
  restarts = 0;

  constructor(private readonly opts: PoolOptions = {}) {
    this.cancelGraceMs = opts.cancelGraceMs ?? 10_000;
    // size 0: no threads (a server whose jobs run on remote workers keeps the pool only to describe them)
    for (let i = 0; i < Math.max(0, opts.size ?? 1); i++) this.slots.push(this.start());
  }

  private start(): Slot {
    process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
    const worker = spawnWorker('worker', { backend: this.opts.backend });
    const slot: Slot = { worker, ready: Promise.resolve() };
    slot.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') {
          slot.backend = this.backend = m.backend;
          slot.backendName = this.backendName = m.backendName;
          resolve();
        } else if (m.type === 'event') {
          if (slot.current?.spec.id === m.id) slot.current.onEvent(m.event);
        } else if (m.type === 'finished') {
          const cur = slot.current;
          if (cur?.spec.id !== m.id) return;
          slot.current = undefined;
          slot.lastMemory = m.memory;
          cur.resolve(m.ok ? { ok: true, result: m.result, memory: m.memory } : { ok: false, error: m.error, interrupted: m.interrupted, memory: m.memory, stepsAfterCancel: m.stepsAfterCancel });
          this.wakeIdle();
        }
      });
      worker.on('error', (e) => reject(e));
      worker.on('exit', (code) => {
        reject(new Error(`generation worker exited (code ${code}) before it was ready`));
        this.onExit(slot, code);
      });
    });
    slot.ready.catch(() => {}); // observed by ready(); a late rejection after exit is expected
    return slot;
  }

  /** A worker ended (terminated for a cancel, or crashed): its job ends and a fresh worker takes the slot. */
  private onExit(slot: Slot, code: number): void {
    const cur = slot.current;
    slot.current = undefined;
    if (cur) {
      removePartial(cur.spec.workDir);
      const cancelled = Atomics.load(cur.stop, 0) === STOP_REQUESTED;
      cur.resolve({ ok: false, interrupted: cancelled, error: cancelled ? 'cancelled' : `the generation worker stopped (exit code ${code})` });
    }
    const i = this.slots.indexOf(slot);
    if (i >= 0 && !this.closed) {
      this.restarts++;
      this.slots[i] = this.start();
      this.wakeIdle();
    }
  }

  private wakeIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves when every worker has its backend up. */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.ready));
  }

  get size(): number {
    return this.slots.length;
  }

  /** Number of workers with no job. */
  get idle(): number {
    return this.slots.filter((s) => !s.current).length;
  }

  /** Waits until a worker is free (for the queue's dispatcher). */
  async waitIdle(): Promise<void> {
    while (!this.closed && this.idle === 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** The last memory report of the workers (tf.memory and RSS after their last job). */
  memory(): (WorkerMemory | undefined)[] {
    return this.slots.map((s) => s.lastMemory);
  }

  /**
   * Runs a job on a free worker; resolves when it is committed, failed or cancelled. `opts.commit` false: resolves
   * with the complete output still in spec.workDir, for the caller to commit (executeJob's JobHooks).
   */
  async run(spec: JobSpec, onEvent: (e: JobEvent) => void, opts: { commit?: boolean; run?: string } = {}): Promise<RunOutcome> {
    const slot = this.slots.find((s) => !s.current);
    if (!slot) throw new Error('internal: no idle worker');
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const done = new Promise<RunOutcome>((resolve) => (slot.current = { spec, stop, onEvent, resolve }));
    try {
      await slot.ready;
    } catch {
      // the worker died during start-up: its exit handler settles `done` and replaces the worker
      return done;
    }
    slot.worker.postMessage({ type: 'run', spec, stop, commit: opts.commit, run: opts.run });
    return done;
  }

  /**
   * Asks a running job to stop. Returns false when it is already committing (too late: it will be done). The job's
   * run() promise settles when it has stopped, by itself or by the thread's termination after the grace period.
   */
  cancel(id: string): boolean {
    const slot = this.slots.find((s) => s.current?.spec.id === id);
    if (!slot?.current) return false;
    const { stop } = slot.current;
    if (Atomics.compareExchange(stop, 0, STOP_NONE, STOP_REQUESTED) !== STOP_NONE) return Atomics.load(stop, 0) === STOP_REQUESTED;
    const timer = setTimeout(() => {
      if (slot.current?.spec.id === id) void slot.worker.terminate();
    }, this.cancelGraceMs);
    timer.unref();
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeIdle();
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.current) Atomics.store(s.current.stop, 0, STOP_REQUESTED);
        await s.worker.terminate();
      }),
    );
  }
}
