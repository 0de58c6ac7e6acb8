// The operations a joint text+video transformer block (CogVideoX's DiT) is written in, and the contract every execution
// strategy implements (strategies: TensorFlow ops, the native host kernels, wasm head-wise attention, offloaded row
// chunks; plan.ts picks one per forward). The block itself lives in src/models/transformer/block.ts and names none.
import type * as tf from '@tensorflow/tfjs-core';
import type { HostRows, Linear } from '../linear.js';

/** LayerNorm affine parameters (either may be absent). */
export interface NormWeights {
  readonly w: tf.Tensor1D | null;
  readonly b: tf.Tensor1D | null;
}

/** Multi-head self-attention with a LayerNorm on each head's q and k (diffusers `Attention(qk_norm="layer_norm")`). */
export interface AttentionWeights {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly normQ: NormWeights;
  readonly normK: NormWeights;
  /** eps of the q/k LayerNorms */
  readonly qkEps: number;
  readonly out: Linear;
}

/** Values for the text stream and the video stream (CogVideoX's "expert" modulation: one per stream). */
export interface PerStream<T> {
  readonly text: T;
  readonly video: T;
}

/** AdaLN modulation of one stream: LayerNorm(x)·(1 + scale) + shift; each [B, 1, D]. */
export interface ShiftScale {
  readonly shift: tf.Tensor;
  readonly scale: tf.Tensor;
}

/** RoPE tables [N, headDim] for the video tokens (text tokens are not rotated). */
export interface Rotary {
  readonly cos: tf.Tensor2D;
  readonly sin: tf.Tensor2D;
}

export type Emit = (name: string, t: tf.Tensor) => void;

/** Rows of every sequence, text rows first ([B, L_text + N, D]): a tensor or the same rows in host memory. */
export type Rows = tf.Tensor3D | HostRows;

/** Sizes of one forward: batch, text tokens, video tokens, heads, head width. */
export interface DitShape {
  readonly B: number;
  readonly Lt: number;
  readonly N: number;
  readonly heads: number;
  readonly headDim: number;
}

/**
 * How a block's operations run. `S` is the residual stream (text and video rows of every sequence), `R` the rows an
 * operation hands to the next. Ownership: `jointAttention` and `feedForward` consume their input rows,
 * `gatedResidual` consumes both the stream and the rows it adds and returns the new stream; `modulatedNorm` reads the
 * stream without consuming it. Modulation / gate tensors stay the caller's.
 */
export interface BlockOps<S, R = unknown> {
  readonly name: string;
  /** True when `videoRows` hands f row chunks rather than all rows (per-row dumps of f are then partial). */
  readonly chunked: boolean;
  /**
   * The stream from the embedded text rows and video rows: `text(b0, nb)` → [nb, Lt, D], `video(b0, nb, r0, n)` →
   * video rows r0…r0+n of sequences b0…b0+nb, [nb, n, D] (a strategy may ask for any split).
   */
  embed(text: (b0: number, nb: number) => tf.Tensor3D, video: (b0: number, nb: number, r0: number, n: number) => tf.Tensor3D): S;
  /** Expert AdaLN: one LayerNorm (eps), each stream with its own shift/scale. */
  modulatedNorm(s: S, norm: NormWeights, eps: number, mod: PerStream<ShiftScale>): R;
  /**
   * Full attention over text + video tokens of each sequence: q, k, v projections, LayerNorm on q and k per head,
   * RoPE on the video rows of q and k, softmax(q·kᵀ/√d)·v, output projection. Emits `${prefix}.q/k` [B, H, S, hd] and
   * `${prefix}.out` [B, S, D] when `emit` is given.
   */
  jointAttention(x: R, w: AttentionWeights, rope: Rotary | null, emit: Emit | null, prefix: string): R;
  /** down(GELU_tanh(up(x))). */
  feedForward(x: R, up: Linear, down: Linear): R;
  /** s + gate·y, each stream with its own gate ([B, 1, D]). */
  gatedResidual(s: S, y: R, gate: PerStream<tf.Tensor>): S;
  /** f applied to the video rows of sequences b0…b0+nb ([nb, n, D] → [nb, n, P]), assembled as [B, N, P]. */
  videoRows(s: S, f: (x: tf.Tensor3D, b0: number, nb: number) => tf.Tensor3D): tf.Tensor3D;
  /** The stream as tensors (for intermediate dumps): text [B, Lt, D], video [B, N, D]; the caller disposes them. */
  view(s: S): PerStream<tf.Tensor3D>;
  /** Blocks until the stream's pending work is done (for timings). */
  sync(s: S): void;
  /** Frees the stream. */
  release(s: S): void;
  /**
   * The stream as one [B, Lt + N, D] tensor, text rows first (consumes s), and back (`split` does not consume x): what
   * a block recomputed in the backward pass (src/nn/checkpoint.ts) takes and returns. In-heap strategies only.
   */
  join?(s: S): tf.Tensor3D;
  split?(x: tf.Tensor3D): S;
}
