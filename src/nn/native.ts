// The optional native addon (src/nn/native/addon.cc, built by `npm run setup:native`): kernels the tensorflow
// backend's TensorFlow 2.21 CPU ops do slower than PyTorch — fused attention (no score tensor) and the GEMM of linear
// layers. Absent (no compiler at setup) → TensorFlow ops, same numbers up to summation order.
//   COGVIDEOX_NATIVE_ATTENTION=0 / COGVIDEOX_NATIVE_GEMM=0 turn either off.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAttention {
  /** out [BH, Sq, d] = softmax(scale·q·kᵀ)·v for q [BH, Sq, d], k/v [BH, Sk, d] (Float32Arrays). */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, BH: number, Sq: number, Sk: number, d: number, scale: number, out: Float32Array, threads: number): void;
  /**
   * [B·S, H·hd] rows → [B, H, S, hd]; with `norm` a per-head LayerNorm (w, b optional), with cos/sin ([S − Lt, hd])
   * the rotary embedding on rows s ≥ Lt.
   */
  splitHeads(src: Float32Array, B: number, S: number, H: number, hd: number, norm: boolean, w: Float32Array | null, b: Float32Array | null, eps: number, Lt: number, cos: Float32Array | null, sin: Float32Array | null, dst: Float32Array, threads: number): void;
  /** [B, H, S, hd] → [B·S, H·hd] rows. */
  mergeHeads(src: Float32Array, B: number, S: number, H: number, hd: number, dst: Float32Array, threads: number): void;
  /** "avx512" or "portable" */
  readonly simd: string;
}

export interface NativeLinear {
  /**
   * out [M, N] = x [M, K] · w[N, K]ᵀ + bias, w's rows `ldw` floats apart (ldw ≥ K: a column slice of a wider weight);
   * then GELU (tanh form) when `gelu`.
   */
  linear(x: Float32Array, M: number, K: number, w: Float32Array, ldw: number, N: number, bias: Float32Array | null, out: Float32Array, threads: number, gelu?: boolean): void;
  /**
   * LayerNorm (affine w, b optional) then AdaLN modulation, ·(1 + scale[b]) + shift[b], of x [B, R, D] into rows
   * outOffset … outOffset+R of out [B, outRows, D] (text and video rows of one sequence, say).
   */
  adaLayerNorm(x: Float32Array, B: number, R: number, D: number, eps: number, w: Float32Array | null, b: Float32Array | null, scale: Float32Array, shift: Float32Array, out: Float32Array, outRows: number, outOffset: number, threads: number): void;
}

type Addon = NativeAttention & Partial<NativeLinear>;

/** build/native/cogvideox_native.node, from src/nn (tsx) or dist/nn (built) alike. */
export const NATIVE_ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'native', 'cogvideox_native.node');

let cached: Addon | null | undefined;

function addon(): Addon | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (fs.existsSync(NATIVE_ADDON_PATH)) {
    try {
      cached = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as Addon;
    } catch (e) {
      process.stderr.write(`cogvideox-fun-tfjs: ${NATIVE_ADDON_PATH} does not load (${(e as Error).message}); using TensorFlow ops\n`);
    }
  }
  return cached;
}

/** The fused attention kernel, or null when the addon is not built or it is turned off. */
export function nativeAttention(): NativeAttention | null {
  return process.env.COGVIDEOX_NATIVE_ATTENTION === '0' ? null : addon();
}

/** The linear-layer GEMM and its modulated LayerNorm (AVX-512 builds only), or null when absent or turned off. */
export function nativeLinear(): NativeLinear | null {
  if (process.env.COGVIDEOX_NATIVE_GEMM === '0') return null;
  const a = addon();
  return a?.linear && a.adaLayerNorm ? (a as NativeLinear) : null;
}

/**
 * A Float32Array that a native kernel will fill completely: not zero-filled (Buffer.allocUnsafeSlow), which saves a
 * pass over hundreds of MB per transformer block. Small arrays are ordinary ones.
 */
export function hostFloats(n: number): Float32Array {
  if (n < 16_384) return new Float32Array(n);
  const b = Buffer.allocUnsafeSlow(n * 4);
  return new Float32Array(b.buffer, b.byteOffset, n);
}

/** Threads the kernels use: all the CPUs Node may use. */
export function nativeThreads(): number {
  return Math.max(1, os.availableParallelism());
}
