// The optional native attention kernel (src/nn/native/flash_attention.cc, built by `npm run setup`). TensorFlow's
// CPU ops have no fused attention; this one keeps the scores in cache (online softmax). Absent → TensorFlow ops.
//   COGVIDEOX_NATIVE_ATTENTION=0 turns it off.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAttention {
  /** out [BH, Sq, d] = softmax(scale·q·kᵀ)·v for q [BH, Sq, d], k/v [BH, Sk, d] (Float32Arrays). */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, BH: number, Sq: number, Sk: number, d: number, scale: number, out: Float32Array, threads: number): void;
  /** "avx512" or "portable" */
  readonly simd: string;
}

/** build/native/flash_attention.node, from src/nn (tsx) or dist/nn (built) alike. */
export const NATIVE_ATTENTION_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'native', 'flash_attention.node');

let cached: NativeAttention | null | undefined;

/** The kernel, or null when it is not built or turned off. Loaded once. */
export function nativeAttention(): NativeAttention | null {
  if (process.env.COGVIDEOX_NATIVE_ATTENTION === '0') return null;
  if (cached !== undefined) return cached;
  cached = null;
  if (fs.existsSync(NATIVE_ATTENTION_PATH)) {
    try {
      cached = createRequire(import.meta.url)(NATIVE_ATTENTION_PATH) as NativeAttention;
    } catch (e) {
      process.stderr.write(`cogvideox-fun-tfjs: ${NATIVE_ATTENTION_PATH} does not load (${(e as Error).message}); using TensorFlow ops for attention\n`);
    }
  }
  return cached;
}

/** Threads the kernel uses: all the CPUs Node may use. */
export function nativeThreads(): number {
  return Math.max(1, os.availableParallelism());
}
