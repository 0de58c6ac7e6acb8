// GroupNorm (torch.nn.GroupNorm) on channels-last tensors, in a form that can be computed in pieces:
//   statistics are accumulated per channel (count, mean, M2) from any number of pieces (e.g. the frames of a video
//   chunk, produced one at a time) and merged in float64 with Chan's formula, then combined per group. The result
//   equals the statistics of the concatenated tensor; the frames never need to exist together.
//   Normalisation is applied as torch's CPU kernel does: per channel scale = rstd·γ, shift = −scale·mean + β,
//   y = x·scale + shift (biased variance, rstd = 1/√(var + eps)).
// Per piece, each row (one H index) is reduced on the device, then rows are combined on the host in float64. Large
// pieces use avgPool over W (channels-last, no transpose: 2× faster than a mean over an inner axis on wasm at 8M
// elements); small ones a mean over W (an avgPool call costs ~0.7 ms of fixed overhead on threaded wasm).
import * as tf from '@tensorflow/tfjs-core';

/** Per-channel element count, mean and sum of squared deviations (M2), merged in float64. */
export class ChannelMoments {
  count = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;

  constructor(readonly channels: number) {
    this.mean = new Float64Array(channels);
    this.m2 = new Float64Array(channels);
  }

  /** Merges moments of `count` more elements per channel (Chan et al.). */
  merge(count: number, mean: ArrayLike<number>, m2: ArrayLike<number>): this {
    if (count === 0) return this;
    if (this.count === 0) {
      this.count = count;
      this.mean.set(mean);
      this.m2.set(m2);
      return this;
    }
    const n = this.count + count;
    const fb = count / n;
    for (let c = 0; c < this.channels; c++) {
      const d = mean[c]! - this.mean[c]!;
      this.mean[c] = this.mean[c]! + d * fb;
      this.m2[c] = this.m2[c]! + m2[c]! + d * d * this.count * fb;
    }
    this.count = n;
    return this;
  }

  add(other: ChannelMoments): this {
    return this.merge(other.count, other.mean, other.m2);
  }
}

const POOL_MIN_SIZE = 1 << 20;

/** Moments per channel of x [..., W, C] over every other axis (rows of W reduced on the device). */
export function channelMoments(x: tf.Tensor): ChannelMoments {
  const C = x.shape[x.rank - 1]!;
  const W = x.rank >= 2 ? x.shape[x.rank - 2]! : 1;
  const R = x.size / (W * C);
  const [rowMean, rowVar] = tf.tidy(() => {
    if (x.size < POOL_MIN_SIZE) {
      const x3 = tf.reshape(x, [R, W, C]);
      const m = tf.mean(x3, 1, true);
      return [m, tf.mean(tf.square(tf.sub(x3, m)), 1)];
    }
    const x4 = tf.reshape(x, [R, 1, W, C]) as tf.Tensor4D;
    const m = tf.avgPool(x4, [1, W], [1, W], 'valid');
    const v = tf.avgPool(tf.square(tf.sub(x4, m)) as tf.Tensor4D, [1, W], [1, W], 'valid');
    return [m, v];
  });
  const rm = rowMean.dataSync() as Float32Array;
  const rv = rowVar.dataSync() as Float32Array;
  rowMean.dispose();
  rowVar.dispose();
  // equal-count rows: mean = Σ rowMean / R; M2 = Σ W·rowVar + W·Σ (rowMean − mean)²
  const out = new ChannelMoments(C);
  const mean = new Float64Array(C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) mean[c] = mean[c]! + rm[r * C + c]!;
  for (let c = 0; c < C; c++) mean[c] = mean[c]! / R;
  const m2 = new Float64Array(C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      const d = rm[r * C + c]! - mean[c]!;
      m2[c] = m2[c]! + W * (rv[r * C + c]! + d * d);
    }
  }
  return out.merge(R * W, mean, m2);
}

export interface ScaleShift {
  scale: Float32Array;
  shift: Float32Array;
}

/**
 * Per-channel scale and shift of GroupNorm(groups, eps, γ, β) for the given statistics, rounded to float32 as torch
 * computes them: mean and var in float32, rstd = 1/√(max(var, 0) + eps), scale = rstd·γ, shift = −scale·mean + β.
 */
export function groupNormScaleShift(
  m: ChannelMoments,
  groups: number,
  eps: number,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
): ScaleShift {
  const C = m.channels;
  if (C % groups !== 0) throw new Error(`GroupNorm: ${C} channels are not divisible into ${groups} groups`);
  if (m.count === 0) throw new Error('GroupNorm: no statistics accumulated');
  const per = C / groups;
  const f = Math.fround;
  const scale = new Float32Array(C);
  const shift = new Float32Array(C);
  for (let g = 0; g < groups; g++) {
    let mean = 0;
    for (let j = 0; j < per; j++) mean += m.mean[g * per + j]!;
    mean /= per;
    let m2 = 0;
    for (let j = 0; j < per; j++) {
      const c = g * per + j;
      const d = m.mean[c]! - mean;
      m2 += m.m2[c]! + m.count * d * d;
    }
    const mean32 = f(mean);
    const var32 = f(m2 / (m.count * per));
    const rstd = f(1 / Math.sqrt(Math.max(var32, 0) + eps));
    for (let j = 0; j < per; j++) {
      const c = g * per + j;
      scale[c] = f(rstd * gamma[c]!);
      shift[c] = f(f(-scale[c]! * mean32) + beta[c]!);
    }
  }
  return { scale, shift };
}

/** y = x·scale + shift over the channel (last) axis. */
export function applyScaleShift(x: tf.Tensor, s: ScaleShift): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, tf.tensor1d(s.scale)), tf.tensor1d(s.shift)));
}

/** GroupNorm of a whole channels-last tensor [N, ..., C], statistics per batch element. */
export function groupNorm(
  x: tf.Tensor,
  groups: number,
  eps: number,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
): tf.Tensor {
  const N = x.shape[0]!;
  const parts: tf.Tensor[] = [];
  try {
    for (let n = 0; n < N; n++) {
      const xn = N === 1 ? x : tf.slice(x, [n], [1]);
      parts.push(applyScaleShift(xn, groupNormScaleShift(channelMoments(xn), groups, eps, gamma, beta)));
      if (xn !== x) xn.dispose();
    }
    return N === 1 ? parts[0]! : tf.concat(parts, 0);
  } finally {
    if (N > 1) parts.forEach((p) => p.dispose());
  }
}

/**
 * torch.nn.GroupNorm of a channels-last tensor [B, ..., C] as differentiable tensor ops (statistics per batch element
 * and group, biased variance, (x − mean)·rsqrt(var + eps)·γ + β). γ and β are tensors, e.g. trainable variables.
 */
export function groupNormOps(x: tf.Tensor, groups: number, eps: number, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const C = x.shape[x.rank - 1]!;
  if (C % groups !== 0) throw new Error(`GroupNorm: ${C} channels are not divisible into ${groups} groups`);
  return tf.tidy(() => {
    const g = tf.reshape(x, [x.shape[0]!, -1, groups, C / groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const y = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps))), x.shape);
    return tf.add(tf.mul(y, gamma), beta);
  });
}
