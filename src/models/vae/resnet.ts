// CogVideoXResnetBlock3D (CogVideoX-Fun autoencoder_magvit.py:361-402) on the streaming path: each conv runs frame by
// frame over the chunk, after the whole chunk's statistics of its input are known.
import * as tf from '@tensorflow/tfjs-core';
import { pointwiseConv } from '../../nn/conv.js';
import { convSeq, threadCache, type ConvCaches, type RunContext } from './causal_conv.js';
import { FrameSeq } from './frames.js';
import { normSilu, type ZqSource } from './norms.js';
import type { ResnetW } from './weights.js';

/**
 * CogVideoXResnetBlock3D: h = conv1(silu(norm1(x))); out = conv2(silu(norm2(h))) + (x or conv_shortcut(x)).
 * Consumes x; threads the conv caches under `key`.
 */
export function resnetSeq(ctx: RunContext, w: ResnetW, x: FrameSeq, caches: ConvCaches, key: string, zq: ZqSource | null): FrameSeq {
  const h = new FrameSeq(ctx.pool, w.cout, true);
  const short = w.shortcut ? new FrameSeq(ctx.pool, w.cout, false) : null;
  const out = new FrameSeq(ctx.pool, w.cout, true);
  try {
    const n1 = normSilu(w.norm1, x, zq);
    try {
      threadCache(caches, `${key}.conv1`, (cache) =>
        convSeq(ctx, {
          input: x,
          conv: w.conv1,
          act: n1.act,
          cache,
          out: h,
          onInput: short ? (xt) => short.push(pointwiseConv(xt, w.shortcut!)) : undefined,
          releaseInput: short !== null,
        }),
      );
    } finally {
      n1.dispose();
    }
    const residual = short ?? x;
    const n2 = normSilu(w.norm2, h, zq);
    try {
      threadCache(caches, `${key}.conv2`, (cache) =>
        convSeq(ctx, {
          input: h,
          conv: w.conv2,
          act: n2.act,
          cache,
          out,
          epilogue: (y, start) => {
            const r = residual.range(start, y.shape[0]);
            try {
              return tf.add(y, r.t) as tf.Tensor4D;
            } finally {
              if (r.owned) r.t.dispose();
              for (let k = 0; k < y.shape[0]; k++) residual.release(start + k);
            }
          },
          releaseInput: true,
        }),
      );
    } finally {
      n2.dispose();
    }
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    x.dispose();
    h.dispose();
    short?.dispose();
  }
}
