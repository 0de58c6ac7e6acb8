// The VAE's differentiable strategy: every activation of a call is one tensor [B, t, H, W, C] (channels last),
// GroupNorm statistics come from tf.moments, weights are tensors in torch layout looked up by checkpoint name (so a
// caller may override them, e.g. with tf.Variables). Everything here has a gradient on every backend, so tf.grad /
// tf.variableGrads run through it, including through the conv caches carried from call to call (the original does
// not detach them: CogVideoX-Fun autoencoder_magvit.py:122-145). It holds whole chunks: for training and gradient
// checks; inference streams (stream_ops.ts).
import * as tf from '@tensorflow/tfjs-core';
import { silu } from '../activations.js';
import { conv3dOps } from '../conv.js';
import { groupNormOps } from '../group_norm.js';
import { resizeNearest } from '../resize.js';
import type { VaeOps } from './types.js';

/** A parameter by checkpoint name, torch layout, fp32. */
export type ParamLookup = (name: string) => tf.Tensor;

export interface TensorConv {
  weight: string;
  bias: string;
}
export interface TensorNorm {
  weight: string;
  bias: string;
  groups: number;
  eps: number;
}
export interface TensorSpatialNorm {
  norm: TensorNorm;
  convY: TensorConv;
  convB: TensorConv;
}
export interface TensorResample {
  conv: TensorConv;
  compressTime: boolean;
}
export interface TensorW {
  conv: TensorConv;
  norm: TensorNorm;
  snorm: TensorSpatialNorm;
  resample: TensorResample;
}

export type Video = tf.Tensor5D; // [B, t, H, W, C]

const frames = (x: Video, start: number, n: number): Video => tf.slice(x, [0, start], [-1, n]);

/** Frame i of x repeated reps[i] times along time. */
function repeatFrames(x: Video, reps: number[]): Video {
  if (reps.every((r) => r === 1)) return x;
  const parts: Video[] = [];
  reps.forEach((r, i) => {
    for (let k = 0; k < r; k++) parts.push(frames(x, i, 1));
  });
  return tf.concat(parts, 1);
}

/** Run inside a tf.tidy (tensors are immutable, so sharing and freeing are no-ops). */
export class TensorOps implements VaeOps<Video, Video, Video, TensorW> {
  private readonly caches = new Map<string, Video>();

  constructor(
    private readonly p: ParamLookup,
    private readonly hook: (name: string, x: Video) => void = () => undefined,
  ) {}

  share(x: Video): Video {
    return x;
  }

  free(): void {}

  latent(z: Video): Video {
    return z;
  }

  raw(x: Video): Video {
    return x;
  }

  normSilu(x: Video, n: TensorNorm | TensorSpatialNorm, zq: Video | null): Video {
    if (!('convY' in n)) return silu(this.groupNorm(n, x)) as Video;
    if (!zq) throw new Error('SpatialNorm3D without a latent (zq)');
    return silu(this.spatialNorm(n, x, zq)) as Video;
  }

  causalConv(x: Video, n: TensorConv, key: string, residual?: Video): Video {
    const w = this.p(n.weight);
    const [, , kt, kh] = w.shape as number[];
    let input = x;
    if (kt! > 1) {
      const front = this.caches.get(key) ?? tf.concat(new Array<Video>(kt! - 1).fill(frames(x, 0, 1)), 1);
      input = tf.concat([front, x], 1);
      this.caches.set(key, frames(input, input.shape[1] - (kt! - 1), kt! - 1));
    }
    const p = (kh! - 1) / 2;
    const y = conv3dOps(input, w, this.p(n.bias), { pad: [[p, p], [p, p]] });
    return residual ? tf.add(y, residual) : y;
  }

  pointwise(x: Video, n: TensorConv): Video {
    return conv3dOps(x, this.p(n.weight), this.p(n.bias));
  }

  downsample(x: Video, n: TensorResample): Video {
    let h = x;
    const t = x.shape[1];
    if (n.compressTime && t > 1) {
      const pairMean = (v: Video): Video => {
        const [B, T, H, W, C] = v.shape;
        return tf.reshape(tf.div(tf.sum(tf.reshape(v, [B, T / 2, 2, H * W * C]), 2), 2), [B, T / 2, H, W, C]);
      };
      h = t % 2 === 1 ? tf.concat([frames(x, 0, 1), pairMean(frames(x, 1, t - 1))], 1) : pairMean(x);
    }
    return conv3dOps(h, this.p(n.conv.weight), this.p(n.conv.bias), { stride: 2, pad: [[0, 1], [0, 1]] });
  }

  upsample(x: Video, n: TensorResample, repeats: (t: number, compressTime: boolean) => number[]): Video {
    const [, t, H, W] = x.shape;
    const reps = repeats(t, n.compressTime);
    // the conv of a repeated frame is the conv of the frame, so it is applied before repeating
    const up = resizeNearest(x, [t, 2 * H, 2 * W]) as Video;
    const y = conv3dOps(up, this.p(n.conv.weight), this.p(n.conv.bias), { pad: [[1, 1], [1, 1]] });
    return repeatFrames(y, reps);
  }

  emit(name: string, x: Video): void {
    this.hook(name, x);
  }

  private groupNorm(n: TensorNorm, x: Video): Video {
    return groupNormOps(x, n.groups, n.eps, this.p(n.weight), this.p(n.bias)) as Video;
  }

  /** GroupNorm(f)·conv_y(zq) + conv_b(zq), zq nearest-resized to f's (t, H, W) — frame 0 alone when t > 1 is odd. */
  private spatialNorm(n: TensorSpatialNorm, f: Video, zq: Video): Video {
    const [, t, H, W] = f.shape;
    let z: Video;
    if (t > 1 && t % 2 === 1) {
      const first = resizeNearest(frames(zq, 0, 1), [1, H, W]) as Video;
      const rest = resizeNearest(frames(zq, 1, zq.shape[1] - 1), [t - 1, H, W]) as Video;
      z = tf.concat([first, rest], 1);
    } else {
      z = resizeNearest(zq, [t, H, W]) as Video;
    }
    const y = conv3dOps(z, this.p(n.convY.weight), this.p(n.convY.bias));
    const b = conv3dOps(z, this.p(n.convB.weight), this.p(n.convB.bias));
    return tf.add(tf.mul(this.groupNorm(n.norm, f), y), b);
  }
}
