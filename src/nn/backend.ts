// Backend selection: tfjs-node(-gpu) ('tensorflow') when installed, else threaded-SIMD wasm.
// This is the only module that knows how backends are loaded. Kernel choices per backend live in src/nn (the
// transformer's execution strategies: src/nn/dit/plan.ts); src/models names no backend.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { nativeAttention, nativeLinear } from './native.js';

const require = createRequire(import.meta.url);

export type BackendName = 'tensorflow' | 'wasm';

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

let nativePackage: string | null | undefined; // undefined = not probed yet
let wasmRegistered = false;
let announced = false;

/** Loads tfjs-node-gpu or tfjs-node if one is installed and its binding works; returns its package name. */
export function loadNative(): string | null {
  if (nativePackage !== undefined) return nativePackage;
  nativePackage = null;
  for (const pkg of NATIVE_PACKAGES) {
    try {
      require.resolve(pkg);
    } catch {
      continue;
    }
    process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
    try {
      require(pkg);
      nativePackage = pkg;
      break;
    } catch (e) {
      process.stderr.write(`cogvideox-fun-tfjs: ${pkg} is installed but failed to load (${(e as Error).message.split('\n')[0]})\n`);
    }
  }
  return nativePackage;
}

/**
 * Threaded wasm in Node needs a shim (tfjs-backend-wasm's Emscripten glue targets browsers): pthread workers are created from
 * blob: URLs that worker_threads cannot load, the worker is handed the main script as a Blob, and the C++ side caps
 * threads at cpus/2. Patch those before the backend module loads.
 */
function installWasmThreadShim(wasmDir: string): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const wt = require('node:worker_threads') as typeof import('node:worker_threads');
  const { wasmWorkerContents } = require(path.join(wasmDir, 'wasm-out/tfjs-backend-wasm-threaded-simd.worker.js')) as {
    wasmWorkerContents: string;
  };
  const workerFile = path.join(os.tmpdir(), `cogvideox-tfjs-wasm-worker-${process.pid}.cjs`);
  fs.writeFileSync(workerFile, wasmWorkerContents.replace(/\n/g, '\\n'));
  process.once('exit', () => fs.rmSync(workerFile, { force: true }));
  const mainJs = path.join(wasmDir, 'wasm-out/tfjs-backend-wasm-threaded-simd.js');
  const Base = wt.Worker;
  class ShimWorker extends Base {
    constructor(file: string | URL, options?: import('node:worker_threads').WorkerOptions) {
      super(typeof file === 'string' && file.startsWith('blob:') ? workerFile : file, options);
    }
    override postMessage(message: unknown, transfer?: readonly import('node:worker_threads').TransferListItem[]): void {
      const m = message as { cmd?: string; urlOrBlob?: unknown } | null;
      if (m && m.cmd === 'load' && typeof m.urlOrBlob !== 'string') message = { ...m, urlOrBlob: mainJs };
      super.postMessage(message, transfer);
    }
  }
  (wt as { Worker: typeof Base }).Worker = ShimWorker;
}

async function registerWasm(threads: number): Promise<void> {
  if (wasmRegistered) return;
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  if (threads > 1) installWasmThreadShim(wasmDir);
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  if (threads > 1) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(threads);
  }
  const { registerWasmKernels } = await import('./wasm_kernels.js');
  registerWasmKernels();
  wasmRegistered = true;
}

function wasmThreads(): number {
  const env = Number(process.env.COGVIDEOX_WASM_THREADS);
  if (Number.isInteger(env) && env >= 1) return env;
  return Math.max(1, Math.min(os.cpus().length, 8));
}

async function activateWasm(): Promise<void> {
  const threads = wasmThreads();
  await registerWasm(threads);
  // The C++ side caps the pool at cpus/2; widen os.cpus() only while the backend initialises.
  const osModule = require('node:os') as { cpus: typeof os.cpus }; // the CJS object the wasm glue reads
  const cpus = osModule.cpus;
  osModule.cpus = () => {
    const c = cpus();
    return [...c, ...c, ...c, ...c];
  };
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
  } finally {
    osModule.cpus = cpus;
  }
}

/** Backends usable in this process, fastest first. */
export function availableBackends(): BackendName[] {
  const out: BackendName[] = [];
  if (loadNative()) out.push('tensorflow');
  out.push('wasm');
  return out;
}

/**
 * Activates a backend: the argument, else env COGVIDEOX_BACKEND, else the fastest available
 * (tfjs-node-gpu, tfjs-node, wasm). Prints the running backend once unless `quiet`.
 */
export async function setBackend(name?: string, opts: { quiet?: boolean } = {}): Promise<BackendName> {
  const wanted = name ?? process.env.COGVIDEOX_BACKEND ?? availableBackends()[0];
  switch (wanted) {
    case 'tensorflow':
    case 'node':
      if (!loadNative()) {
        throw new Error(
          'backend "tensorflow" requested but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node loads here ' +
            '(run `npm run setup:tfjs-node` to build it from the TensorFlow wheel, or use --backend wasm)',
        );
      }
      if (!(await tf.setBackend('tensorflow'))) throw new Error('the tensorflow backend failed to initialise');
      break;
    case 'wasm':
      await activateWasm();
      break;
    default:
      throw new Error(`unknown backend "${wanted}" (expected tensorflow or wasm)`);
  }
  await tf.ready();
  const active = tf.getBackend() as BackendName;
  if (!opts.quiet && !announced) {
    announced = true;
    process.stderr.write(`cogvideox-fun-tfjs: backend ${describeBackend()}\n`);
  }
  return active;
}

/** Human-readable name of the running backend, e.g. "tensorflow (@tensorflow/tfjs-node, TF 2.21.0)". */
export function describeBackend(): string {
  const name = tf.getBackend();
  if (name === 'tensorflow') {
    const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
    const fused = nativeAttention();
    const kernels = [fused ? `fused attention ${fused.simd}` : '', nativeLinear() ? 'native GEMM' : ''].filter(Boolean);
    return `tensorflow (${nativePackage}, TF ${binding?.TF_Version ?? '?'}${kernels.map((k) => `, ${k}`).join('')})`;
  }
  if (name === 'wasm') {
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    return `wasm (${wasm.getThreadsCount()} thread${wasm.getThreadsCount() === 1 ? '' : 's'}, SIMD)`;
  }
  return name;
}

export function isWasm(): boolean {
  return tf.getBackend() === 'wasm';
}

let gcFn: (() => void) | null | undefined;

/**
 * Runs a full garbage collection now. Released models leave gigabytes of JS typed arrays (host-resident weights)
 * that V8 only collects under heap pressure, which a big typed-array allocation elsewhere does not create; the next
 * stage would then run with both in memory (measured: +3.4 GB RSS after a host-resident Fun-2b). The memory plan
 * assumes this runs at stage ends.
 */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    try {
      v8.setFlagsFromString('--expose_gc');
      gcFn = vm.runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}

/**
 * tfjs-node copies a new tensor's values into TensorFlow only when an op first reads it and keeps the JS array until
 * then, so weights uploaded ahead of use exist twice (measured: a resident Fun-2b transformer peaked at about twice
 * its fp32 size). This makes the copy now, leaving the JS array to the garbage collector. No-op on other backends.
 */
export function commitToDevice<T extends tf.Tensor>(t: T): T {
  const b = tf.backend() as unknown as { getInputTensorIds?: (ts: tf.Tensor[]) => unknown };
  if (typeof b.getInputTensorIds === 'function' && tf.getBackend() === 'tensorflow') b.getInputTensorIds([t]);
  return t;
}

/**
 * Releases backend resources so the process can exit (threaded wasm keeps its workers alive otherwise).
 * Call once when all work is done: wasm cannot be re-activated in the same process afterwards.
 */
export function shutdownBackend(): void {
  if (tf.findBackend('wasm')) tf.removeBackend('wasm');
}
