// Generation worker thread of the server. It starts the backend once, then runs the jobs the pool hands it, one at
// a time, through the job function; the pipelines compute synchronously for long stretches, which is why they live
// here and not on the thread that answers HTTP. After each job it reports tf.memory() and RSS, so a leak shows.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, setBackend } from '../nn/backend.js';
import { oneLine, InterruptedError } from '../cli/errors.js';
import type { JobEvent } from '../cli/protocol.js';
import { executeJob, STOP_REQUESTED } from './job.js';
import type { JobSpec, WorkerMemory, WorkerMessage } from './types.js';

const { backend } = workerData as { backend?: 'tensorflow' | 'wasm' };
const port = parentPort!;
const post = (m: WorkerMessage) => port.postMessage(m);


function memory(): WorkerMemory {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes, rss: process.memoryUsage().rss, listeners: process.listenerCount('uncaughtException') };
}

await setBackend(backend, { quiet: true });
// tfjs-node in a worker thread crashes the process at exit (SIGSEGV) if the thread never ran an op; run one now
tf.tidy(() => void tf.add(tf.scalar(1), tf.scalar(1)));
const backendName = describeBackend();
post({ type: 'ready', backend: tf.getBackend(), backendName });

port.on('message', (msg: { type: 'run'; spec: JobSpec; stop: Int32Array; commit?: boolean; run?: string }) => {
  if (msg.type !== 'run') return;
  const { spec, stop } = msg;
  let stepsAfterCancel = 0;
  const emit = (event: JobEvent) => {
    if (event.type === 'step' && Atomics.load(stop, 0) === STOP_REQUESTED) stepsAfterCancel++;
    post({ type: 'event', id: spec.id, event });
  };
  // jobs arrive one at a time (the pool waits for 'finished'), so no queue is needed here
  executeJob(spec, { emit, stop, backend: backendName, commit: msg.commit, run: msg.run }).then(
    (result) => post({ type: 'finished', id: spec.id, ok: true, result, memory: memory() }),
    (e: unknown) => {
      const interrupted = e instanceof InterruptedError || (e instanceof Error && e.name === 'AbortError') || Atomics.load(stop, 0) === STOP_REQUESTED;
      post({ type: 'finished', id: spec.id, ok: false, error: oneLine(e), interrupted, memory: memory(), stepsAfterCancel });
    },
  );
});
