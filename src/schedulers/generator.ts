// Randomness for sampling: every normal draw a pipeline or scheduler makes (initial latents, DPM_Cog / Euler A step
// noise, VAE posterior sample, inpaint noise augmentation) goes through one `Generator`, so a test can inject the
// reference's draws and a seed gives the same video on every backend.
//
// `PhiloxGenerator` computes its numbers in JS (Philox4x32-10 counter-based PRNG + Box–Muller in float64, rounded to
// float32), so they do not depend on the tfjs backend. Seeds are NOT compatible with torch's generators (torch's CUDA
// Philox stream layout and CPU Mersenne Twister are not reproduced): the same seed gives a different video than the
// PyTorch reference. Parity tests replay the reference's draws with `InjectedGenerator`.
import * as tf from '@tensorflow/tfjs-core';

export interface Generator {
  /** Standard-normal float32 values for `shape`, row-major, as host memory. */
  randnHost(shape: readonly number[]): Float32Array;
  /** The same draw as a float32 tensor the caller owns. */
  randn(shape: readonly number[]): tf.Tensor;
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`Generator: invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; constants from Random123).
const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32 (exact: every partial product fits in a double). */
function mulhi32(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const lohi = aLo * bHi;
  const hilo = aHi * bLo;
  const mid = (lolo >>> 16) + (lohi & 0xffff) + (hilo & 0xffff);
  return (aHi * bHi + (lohi >>> 16) + (hilo >>> 16) + (mid >>> 16)) >>> 0;
}

/** One Philox4x32-10 block: 4 uint32 counter words and 2 key words → 4 uint32 outputs (written into `out`). */
export function philox4x32(counter: readonly number[], key: readonly number[], out: Uint32Array = new Uint32Array(4)): Uint32Array {
  let c0 = counter[0]! >>> 0;
  let c1 = counter[1]! >>> 0;
  let c2 = counter[2]! >>> 0;
  let c3 = counter[3]! >>> 0;
  let k0 = key[0]! >>> 0;
  let k1 = key[1]! >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi32(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulhi32(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + PHILOX_W0) >>> 0;
    k1 = (k1 + PHILOX_W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;
const TWO_POW_32 = 4294967296;

/**
 * Seeded, deterministic normal generator. Block i of the stream is Philox(counter = [i mod 2³², ⌊i / 2³²⌋, 0, 0],
 * key = seed as two uint32 words); each block gives two 53-bit uniforms and, by Box–Muller, two normals. Every `randn`
 * call starts at a fresh block, so the numbers depend only on the seed and the sequence of requested sizes.
 */
export class PhiloxGenerator implements Generator {
  readonly seed: bigint;
  private readonly key: [number, number];
  private blockIndex = 0;
  private readonly scratch = new Uint32Array(4);

  constructor(seed: number | bigint) {
    const s = typeof seed === 'bigint' ? seed : Number.isSafeInteger(seed) ? BigInt(seed) : -1n;
    if (s < 0n || s >= 1n << 64n) throw new Error(`PhiloxGenerator: seed must be an integer in [0, 2^64), got ${String(seed)}`);
    this.seed = s;
    this.key = [Number(s & 0xffffffffn), Number(s >> 32n)];
  }

  /** Number of Philox blocks consumed so far (the stream position). */
  get offset(): number {
    return this.blockIndex;
  }

  /**
   * Moves the stream to block `offset` (counter-based: O(1)), as if that many blocks had been drawn. Training resume
   * restores its saved position this way; drawing the skipped normals instead needs 8 bytes per block (15 GB at the
   * demo run's step 4700).
   */
  seek(offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`PhiloxGenerator.seek: offset must be a non-negative safe integer, got ${offset}`);
    this.blockIndex = offset;
  }

  randnHost(shape: readonly number[]): Float32Array {
    const n = numel(shape);
    const out = new Float32Array(n);
    const w = this.scratch;
    const counter = [0, 0, 0, 0];
    for (let i = 0; i < n; i += 2) {
      const b = this.blockIndex++;
      counter[0] = b % TWO_POW_32;
      counter[1] = Math.floor(b / TWO_POW_32);
      philox4x32(counter, this.key, w);
      // u1 ∈ (0, 1] (never 0: log), u2 ∈ [0, 1), 53 bits each
      const u1 = ((w[0]! >>> 5) * TWO_POW_26 + (w[1]! >>> 6) + 1) / TWO_POW_53;
      const u2 = ((w[2]! >>> 5) * TWO_POW_26 + (w[3]! >>> 6)) / TWO_POW_53;
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      out[i] = r * Math.cos(theta);
      if (i + 1 < n) out[i + 1] = r * Math.sin(theta);
    }
    return out;
  }

  randn(shape: readonly number[]): tf.Tensor {
    return tf.tensor(this.randnHost(shape), shape.slice(), 'float32');
  }
}

/** One recorded draw: row-major float32 values and their shape. */
export interface RecordedDraw {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/**
 * Replays given draws in order (parity tests: the reference's noise tensors). Fails clearly when asked for more draws
 * than it holds or for a shape that differs from the next recorded one. Tensors passed in are copied at construction.
 */
export class InjectedGenerator implements Generator {
  private readonly draws: RecordedDraw[];
  private next = 0;

  constructor(draws: ReadonlyArray<RecordedDraw | tf.Tensor>) {
    this.draws = draws.map((d) => {
      if (d instanceof tf.Tensor) return { data: d.dataSync() as Float32Array, shape: d.shape.slice() };
      if (d.data.length !== numel(d.shape)) {
        throw new Error(`InjectedGenerator: a draw has ${d.data.length} values but shape [${d.shape.join(', ')}]`);
      }
      return { data: d.data, shape: d.shape.slice() };
    });
  }

  /** Draws not yet consumed. */
  get remaining(): number {
    return this.draws.length - this.next;
  }

  randnHost(shape: readonly number[]): Float32Array {
    const index = this.next;
    const d = this.draws[index];
    if (!d) {
      throw new Error(
        `InjectedGenerator: draw #${index + 1} (shape [${shape.join(', ')}]) requested, but only ${this.draws.length} draw(s) were injected`,
      );
    }
    if (d.shape.length !== shape.length || d.shape.some((s, i) => s !== shape[i])) {
      throw new Error(
        `InjectedGenerator: draw #${index + 1} requested with shape [${shape.join(', ')}], but the injected tensor has shape [${d.shape.join(', ')}]`,
      );
    }
    this.next++;
    return d.data.slice();
  }

  randn(shape: readonly number[]): tf.Tensor {
    return tf.tensor(this.randnHost(shape), shape.slice(), 'float32');
  }
}
