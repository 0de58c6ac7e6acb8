// The optional native addon (src/nn/native/addon.cc, built by `npm run setup:native`): kernels the tensorflow
// backend's TensorFlow 2.21 CPU ops do slower than PyTorch — fused attention (no score tensor) and the GEMM of linear
// layers. Absent (no compiler at setup) → TensorFlow ops, same numbers up to summation order.
// One build runs on any x86-64: the addon picks AVX-512, AVX2 + FMA or portable kernels for the CPU it loads on.
// With portable kernels only (no AVX2: old x86, arm64) the GEMM is absent and TensorFlow's ops are used for
// attention too (TensorFlow 2.21's unfused attention is faster there: 8.9 s vs 11.9 s on [2, 30, 4258, 64]).
//   COGVIDEOX_NATIVE_ATTENTION=0 / COGVIDEOX_NATIVE_GEMM=0 turn either off (=1 keeps the portable attention kernel).
//   COGVIDEOX_NATIVE_ISA=avx512|avx2|portable forces an ISA (an error if this CPU cannot execute it).
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
  /** the ISA of the kernels in use: "avx512", "avx2" or "portable" */
  readonly simd: string;
}

export type NativeIsa = 'avx512' | 'avx2' | 'portable';

/** What the addon runs: its ISA, this CPU's features, the ISA each kernel uses ('none': TensorFlow's ops). */
export interface NativeInfo {
  isa: NativeIsa;
  /** ISAs this CPU can execute, best first */
  isas: NativeIsa[];
  /** e.g. "avx512f avx2 fma" */
  cpuFeatures: string;
  kernels: { attention: string; linear: string; adaLayerNorm: string; splitHeads: string; mergeHeads: string };
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

/** The addon itself: every kernel, whatever the ISA (linear / adaLayerNorm throw with the portable one). */
export type NativeAddon = NativeAttention &
  NativeLinear & {
    readonly isas: NativeIsa[];
    readonly cpuFeatures: string;
    setIsa(isa: NativeIsa): void;
    info(): Omit<NativeInfo, 'isas'>;
  };
type Addon = NativeAddon;

/** build/native/cogvideox_native.node, from src/nn (tsx) or dist/nn (built) alike. */
export const NATIVE_ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'native', 'cogvideox_native.node');

let cached: Addon | null | undefined;
let forcedError: Error | null = null;

function addon(): Addon | null {
  if (forcedError) throw forcedError;
  if (cached !== undefined) return cached;
  cached = null;
  if (fs.existsSync(NATIVE_ADDON_PATH)) {
    try {
      const loaded = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as Partial<Addon>;
      if (typeof loaded.setIsa !== 'function') throw new Error('built from an older source: run npm run setup:native');
      cached = loaded as Addon;
    } catch (e) {
      process.stderr.write(`cogvideox-fun-tfjs: ${NATIVE_ADDON_PATH} does not load (${(e as Error).message}); using TensorFlow ops\n`);
    }
  }
  const forced = process.env.COGVIDEOX_NATIVE_ISA;
  if (forced) {
    // A forced ISA that cannot run is an error every time, not a silent fallback.
    if (!cached) forcedError = new Error(`COGVIDEOX_NATIVE_ISA=${forced}: ${NATIVE_ADDON_PATH} is not built or does not load (npm run setup:native)`);
    else {
      try {
        cached.setIsa(forced as NativeIsa);
      } catch (e) {
        forcedError = new Error(`COGVIDEOX_NATIVE_ISA=${forced}: ${(e as Error).message}`);
      }
    }
    if (forcedError) throw forcedError;
  }
  return cached;
}

/** The addon with every kernel whatever the ISA, or null when it is not built (tests, benchmarks). */
export function nativeAddon(): NativeAddon | null {
  return addon();
}

/** The ISA, this CPU's features and each kernel's ISA; null without the addon. */
export function nativeInfo(): NativeInfo | null {
  const a = addon();
  return a ? { ...a.info(), isas: [...a.isas] } : null;
}

/**
 * Uses `isa`'s kernels from now on in this process (as COGVIDEOX_NATIVE_ISA does at load); throws when the addon is
 * absent or this CPU cannot execute them.
 */
export function setNativeIsa(isa: NativeIsa): void {
  const a = addon();
  if (!a) throw new Error(`setNativeIsa(${isa}): ${NATIVE_ADDON_PATH} is not built (npm run setup:native)`);
  a.setIsa(isa);
}

/**
 * The fused attention kernel, or null when the addon is not built, it is turned off, or only its portable kernel
 * runs here (TensorFlow's ops are faster; COGVIDEOX_NATIVE_ATTENTION=1 keeps it).
 */
export function nativeAttention(): NativeAttention | null {
  const flag = process.env.COGVIDEOX_NATIVE_ATTENTION;
  if (flag === '0') return null;
  const a = addon();
  return a && (a.simd !== 'portable' || flag === '1') ? a : null;
}

/** The linear-layer GEMM and its modulated LayerNorm (AVX2 or AVX-512 CPUs), or null when absent or turned off. */
export function nativeLinear(): NativeLinear | null {
  if (process.env.COGVIDEOX_NATIVE_GEMM === '0') return null;
  const a = addon();
  return a && a.simd !== 'portable' ? a : null;
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

/** `into` (a caller's scratch, at least n floats) viewed as n floats, or a new host array when none is given. */
export function hostOut(into: Float32Array | undefined, n: number, what: string): Float32Array {
  if (!into) return hostFloats(n);
  if (into.length < n) throw new Error(`${what}: the output array holds ${into.length} floats, ${n} needed`);
  return into.length === n ? into : into.subarray(0, n);
}

/** Threads the kernels use: all the CPUs Node may use. */
export function nativeThreads(): number {
  return Math.max(1, os.availableParallelism());
}
