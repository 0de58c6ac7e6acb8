// Main-thread side of the upload checker thread (probe_worker.ts).
import type { Worker } from 'node:worker_threads';
import type { ProbeReply, ProbeRequest } from './probe_worker.js';
import { spawnWorker } from './spawn.js';

export class UploadProbe {
  private worker: Worker | null = null;
  private seq = 0;
  private readonly pending = new Map<number, (r: ProbeReply) => void>();

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = spawnWorker('probe_worker', null);
    w.on('message', (r: ProbeReply) => {
      this.pending.get(r.seq)?.(r);
      this.pending.delete(r.seq);
    });
    w.on('exit', () => {
      this.worker = null;
      for (const [seq, resolve] of this.pending) resolve({ seq, ok: false, error: 'the upload checker stopped' });
      this.pending.clear();
    });
    w.unref();
    this.worker = w;
    return w;
  }

  /** Starts the thread now (it takes a moment to load the decoders), so the first upload is not slowed by it. */
  start(): void {
    this.ensure();
  }

  /** Decodes the file; resolves with its size or the decoder's error. */
  probe(kind: ProbeRequest['kind'], file: string): Promise<ProbeReply> {
    const w = this.ensure();
    const seq = ++this.seq;
    return new Promise((resolve) => {
      this.pending.set(seq, resolve);
      w.postMessage({ seq, kind, file } satisfies ProbeRequest);
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
  }
}
