// The activation in front of every conv of a ResNet block, silu(norm(x)), for the streaming path: the norm is a
// GroupNorm (encoder) or CogVideoX-Fun's CogVideoXSpatialNorm3D (decoder, autoencoder_magvit.py:175-196:
// GroupNorm(f)·conv_y(zq) + conv_b(zq) with zq the latent chunk nearest-resized to f's size). The GroupNorm's
// scale/shift comes from the statistics of the whole chunk (FrameSeq.moments), then is applied frame by frame.
import * as tf from '@tensorflow/tfjs-core';
import { silu } from '../../nn/activations.js';
import { pointwiseConv } from '../../nn/conv.js';
import { groupNormScaleShift, type ScaleShift } from '../../nn/group_norm.js';
import { nearestIndices, resizeNearest } from '../../nn/resize.js';
import type { Act } from './causal_conv.js';
import type { FrameSeq } from './frames.js';
import { isSpatial, type NormW, type SpatialNormW } from './weights.js';

/** Applies fns in order, disposing each intermediate (not x) as soon as the next exists. */
function chain(x: tf.Tensor4D, ...fns: ((t: tf.Tensor4D) => tf.Tensor)[]): tf.Tensor4D {
  let y = x;
  for (const fn of fns) {
    const next = fn(y) as tf.Tensor4D;
    if (y !== x) y.dispose();
    y = next;
  }
  return y;
}

export interface NormAct {
  act: Act;
  dispose: () => void;
}

/** silu(GroupNorm(x)) with the chunk's scale/shift. */
function groupNormSilu(ss: ScaleShift): NormAct {
  const scale = tf.tensor1d(ss.scale);
  const shift = tf.tensor1d(ss.shift);
  const act: Act = (x) =>
    chain(
      x,
      (t) => tf.mul(t, scale),
      (t) => tf.add(t, shift),
      (t) => silu(t),
    );
  return { act, dispose: () => (scale.dispose(), shift.dispose()) };
}

/**
 * The zq maps of one SpatialNorm3D for a feature chunk of t frames at H×W: conv_y / conv_b of the latent chunk z,
 * nearest-resized to (t, H, W) — with the first frame resized separately when t > 1 is odd. The 1×1×1 convs are
 * applied at latent resolution (a pointwise conv commutes with nearest resizing), then each frame's map is
 * upsampled when it is needed (the last one is kept: consecutive frames usually share a latent frame).
 */
export class ZqMaps {
  private readonly lowY: tf.Tensor4D;
  private readonly lowB: tf.Tensor4D;
  private readonly index: number[];
  private last: { i: number; y: tf.Tensor4D; b: tf.Tensor4D } | null = null;

  constructor(
    z: tf.Tensor4D,
    sn: SpatialNormW,
    t: number,
    private readonly H: number,
    private readonly W: number,
  ) {
    const tz = z.shape[0];
    if (t > 1 && t % 2 === 1) {
      if (tz < 2) throw new Error(`SpatialNorm3D: ${t} feature frames (odd) but only ${tz} latent frame(s) to split`);
      this.index = [0, ...Array.from(nearestIndices(tz - 1, t - 1), (i) => i + 1)];
    } else {
      this.index = Array.from(nearestIndices(tz, t));
    }
    this.lowY = pointwiseConv(z, sn.convY);
    this.lowB = pointwiseConv(z, sn.convB);
  }

  /** The maps of feature frame i ([1, H, W, C]; borrowed until the next call). */
  frame(i: number): { y: tf.Tensor4D; b: tf.Tensor4D } {
    const zi = this.index[i]!;
    if (this.last?.i !== zi) {
      this.dropLast();
      const up = (low: tf.Tensor4D) => tf.tidy(() => resizeNearest(tf.slice(low, [zi], [1]), [this.H, this.W]) as tf.Tensor4D);
      this.last = { i: zi, y: up(this.lowY), b: up(this.lowB) };
    }
    return this.last!;
  }

  private dropLast(): void {
    if (this.last) {
      this.last.y.dispose();
      this.last.b.dispose();
      this.last = null;
    }
  }

  dispose(): void {
    this.dropLast();
    this.lowY.dispose();
    this.lowB.dispose();
  }
}

/** silu(SpatialNorm3D(x, zq)) = silu((x·scale + shift)·y + b). */
function spatialNormSilu(ss: ScaleShift, maps: ZqMaps): NormAct {
  const scale = tf.tensor1d(ss.scale);
  const shift = tf.tensor1d(ss.shift);
  const act: Act = (x, index) => {
    const { y, b } = maps.frame(index);
    return chain(
      x,
      (t) => tf.mul(t, scale),
      (t) => tf.add(t, shift),
      (t) => tf.mul(t, y),
      (t) => tf.add(t, b),
      (t) => silu(t),
    );
  };
  return { act, dispose: () => (scale.dispose(), shift.dispose(), maps.dispose()) };
}

/** The latent chunk a decoder call is conditioned on (every SpatialNorm3D reads it). */
export interface ZqSource {
  z: tf.Tensor4D; // [t_z, h, w, zc]
}

/** silu(norm(x)) for a GroupNorm or a SpatialNorm3D, from x's chunk statistics. */
export function normSilu(n: NormW | SpatialNormW, x: FrameSeq, zq: ZqSource | null): NormAct {
  const gn = isSpatial(n) ? n.norm : n;
  if (!x.moments) throw new Error('normSilu: the input sequence has no statistics');
  const ss = groupNormScaleShift(x.moments, gn.groups, gn.eps, gn.gamma, gn.beta);
  if (!isSpatial(n)) return groupNormSilu(ss);
  if (!zq) throw new Error('SpatialNorm3D without a latent (zq)');
  return spatialNormSilu(ss, new ZqMaps(zq.z, n, x.length, x.height, x.width));
}
