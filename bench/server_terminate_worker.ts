// Worker of bench/server_terminate.ts (part 2): sets up the backend as the server's worker does, allocates `mib` MiB
// of tensors, reports, then computes without end and without looking at any flag — a job that ignores its stop word —
// until the parent terminates the thread.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { setBackend } from '../src/nn/backend.js';

const { backend, mib } = workerData as { backend: 'tensorflow' | 'wasm'; mib: number };
await setBackend(backend, { quiet: true });
const keep: tf.Tensor[] = [];
for (let left = mib; left > 0; left -= 64) keep.push(tf.fill([(Math.min(64, left) * 2 ** 20) / 4], 1.5)); // live to the end
tf.tidy(() => keep.map((t) => tf.sum(t)).reduce((a, b) => tf.add(a, b)).dataSync());
parentPort!.postMessage({ type: 'allocated', numBytes: tf.memory().numBytes, numTensors: tf.memory().numTensors });
const x = keep[0]!;
for (;;) tf.tidy(() => tf.sum(tf.add(tf.mul(x, 1.0001), 0.5)).dataSync());
