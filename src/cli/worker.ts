// Worker-thread entry of `generate`. The pipelines compute synchronously for long stretches, which would keep a
// Ctrl-C handler on the same thread from running until the end; here the main thread stays free to take the
// signal and raise a shared flag that this thread polls between steps.
import { parentPort, workerData } from 'node:worker_threads';
import { shutdownBackend } from '../nn/backend.js';
import { InterruptedError, oneLine } from './errors.js';
import { runJob } from './job.js';
import type { GenerateJob, JobEvent } from './protocol.js';

const { job, stopFlag } = workerData as { job: GenerateJob; stopFlag: Int32Array };
const emit = (e: JobEvent) => parentPort!.postMessage(e);

try {
  await runJob(job, emit, () => Atomics.load(stopFlag, 0) !== 0);
} catch (e) {
  const interrupted = e instanceof InterruptedError || (e instanceof Error && e.name === 'AbortError') || Atomics.load(stopFlag, 0) !== 0;
  emit({ type: 'failed', message: oneLine(e), stack: e instanceof Error ? e.stack : undefined, interrupted });
} finally {
  shutdownBackend();
}
