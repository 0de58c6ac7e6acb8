// The down / up samplers between VAE blocks on the streaming path, frame by frame.
import * as tf from '@tensorflow/tfjs-core';
import { conv2d } from '../../nn/conv.js';
import { upsampleNearest2d } from '../../nn/resize.js';
import type { RunContext } from './causal_conv.js';
import { upsampleRepeats, type UpsampleMode } from './chunking.js';
import { FrameSeq, withFrames } from './frames.js';
import type { ResampleW } from './weights.js';

/**
 * CogVideoXDownsample3D (diffusers/.../downsampling.py): with compress_time, frames are averaged in pairs over time
 * (avg_pool1d; an odd count keeps frame 0 as it is); then each frame is zero-padded by 1 at the bottom and right and
 * convolved 3×3 with stride 2. Consumes x.
 */
export function downsampleSeq(ctx: RunContext, w: ResampleW, x: FrameSeq): FrameSeq {
  const T = x.length;
  const groups: number[][] = [];
  if (!w.compressTime) {
    for (let i = 0; i < T; i++) groups.push([i]);
  } else {
    let i = 0;
    if (T % 2 === 1) groups.push([i++]);
    for (; i + 1 < T; i += 2) groups.push([i, i + 1]);
  }
  const out = new FrameSeq(ctx.pool, x.channels, true);
  const averaged = (g: number[]): tf.Tensor4D =>
    g.length === 1
      ? withFrames([x.at(g[0]!)], ([t]) => tf.clone(t!))
      : withFrames([x.at(g[0]!), x.at(g[1]!)], ([a, b]) => tf.tidy(() => tf.div(tf.add(a!, b!), 2) as tf.Tensor4D));
  try {
    for (const g of groups) {
      const a = averaged(g);
      const y = conv2d(a, w.conv, { stride: 2, pad: [[0, 1], [0, 1]] });
      a.dispose();
      g.forEach((i) => x.release(i));
      out.push(y);
    }
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    x.dispose();
  }
}

/**
 * CogVideoX-Fun's CogVideoXUpsample3D (autoencoder_magvit.py:235-271): nearest ×2 in H and W (and in time per
 * `mode`), then a 3×3 conv per frame. Consumes x.
 */
export function upsampleSeq(ctx: RunContext, w: ResampleW, x: FrameSeq, mode: UpsampleMode): FrameSeq {
  const T = x.length;
  const reps = upsampleRepeats(T, w.compressTime, mode);
  const out = new FrameSeq(ctx.pool, x.channels, true);
  try {
    for (let i = 0; i < T; i++) {
      const y = withFrames([x.at(i)], ([t]) => tf.tidy(() => conv2d(upsampleNearest2d(t!, 2), w.conv)));
      x.release(i);
      // the conv of a repeated frame is the conv of the frame: compute once, store twice
      const m = out.push(y);
      if (reps[i] === 2) out.pushRepeat(out.at(out.length - 1), m);
    }
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    x.dispose();
  }
}
