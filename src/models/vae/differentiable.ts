// AutoencoderKLCogVideoX as whole-chunk tensor ops, as the original computes it (diffusers/.../
// autoencoder_kl_cogvideox.py, CogVideoX-Fun autoencoder_magvit.py): every activation of a call is one tensor
// [B, t, H, W, C] (channels last), GroupNorm statistics come from tf.moments, weights are tensors in torch layout
// looked up by checkpoint name. Everything here has a gradient on every backend, so tf.grad / tf.variableGrads run
// through it, including through the conv caches carried from chunk to chunk (the original does not detach them).
// The streaming path (encoder.ts / decoder.ts) computes the same numbers frame by frame, in bounded memory, for
// inference; this path holds a whole chunk and is for training and gradient checks.
import * as tf from '@tensorflow/tfjs-core';
import { silu } from '../../nn/activations.js';
import { conv3dOps } from '../../nn/conv.js';
import { groupNormOps } from '../../nn/group_norm.js';
import { resizeNearest } from '../../nn/resize.js';
import type { ConvNames, DecoderLayout, EncoderLayout, NormNames, ResampleNames, ResnetNames, SpatialNormNames } from '../../weights/vae_names.js';
import { decodeCalls, encodeChunks, upsampleRepeats, type DecodeChunking, type UpsampleMode } from './chunking.js';

/** A parameter by checkpoint name, torch layout, fp32. */
export type ParamLookup = (name: string) => tf.Tensor;
/** Receives a block's output [B, C, t, H, W] of call `call` (disposed after the callback). */
export type OnBlock = (name: string, call: number, t: tf.Tensor5D) => void;

type Video = tf.Tensor5D; // [B, t, H, W, C]

interface Ctx {
  p: ParamLookup;
  groups: number;
  eps: number; // norm_eps of the ResNet GroupNorms
  caches: Map<string, Video>;
  hook: (name: string, t: Video) => void;
}

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

/**
 * CogVideoXCausalConv3d (autoencoder_magvit.py:122-145): time padded in front with the previous call's last k−1
 * padded frames (conv_cache) or, in the first call, k−1 copies of frame 0; H and W zero-padded by (k−1)/2.
 */
function causalConv(ctx: Ctx, n: ConvNames, x: Video, key: string): Video {
  const w = ctx.p(n.weight);
  const [, , kt, kh] = w.shape as number[];
  let input = x;
  if (kt! > 1) {
    const front = ctx.caches.get(key) ?? tf.concat(new Array<Video>(kt! - 1).fill(frames(x, 0, 1)), 1);
    input = tf.concat([front, x], 1);
    ctx.caches.set(key, frames(input, input.shape[1] - (kt! - 1), kt! - 1));
  }
  const p = (kh! - 1) / 2;
  return conv3dOps(input, w, ctx.p(n.bias), { pad: [[p, p], [p, p]] });
}

function groupNorm(ctx: Ctx, n: NormNames, x: Video, eps: number): Video {
  return groupNormOps(x, ctx.groups, eps, ctx.p(n.weight), ctx.p(n.bias)) as Video;
}

/**
 * CogVideoXSpatialNorm3D (autoencoder_magvit.py:175-196): zq nearest-resized to f's (t, H, W) — frame 0 on its own
 * when t > 1 is odd — then GroupNorm(f)·conv_y(zq) + conv_b(zq). Its GroupNorm has eps 1e-6 whatever norm_eps says.
 */
function spatialNorm(ctx: Ctx, n: SpatialNormNames, f: Video, zq: Video): Video {
  const [, t, H, W] = f.shape;
  let z: Video;
  if (t > 1 && t % 2 === 1) {
    const first = resizeNearest(frames(zq, 0, 1), [1, H, W]) as Video;
    const rest = resizeNearest(frames(zq, 1, zq.shape[1] - 1), [t - 1, H, W]) as Video;
    z = tf.concat([first, rest], 1);
  } else {
    z = resizeNearest(zq, [t, H, W]) as Video;
  }
  const y = conv3dOps(z, ctx.p(n.convY.weight), ctx.p(n.convY.bias));
  const b = conv3dOps(z, ctx.p(n.convB.weight), ctx.p(n.convB.bias));
  return tf.add(tf.mul(groupNorm(ctx, n.norm, f, 1e-6), y), b);
}

/**
 * CogVideoXResnetBlock3D (autoencoder_magvit.py:361-402): conv1(silu(norm1(x))), conv2(silu(norm2(·))) plus x or the
 * 1×1×1 conv_shortcut(x). Norms are GroupNorms in the encoder, SpatialNorm3Ds of the latent zq in the decoder.
 */
function resnet(ctx: Ctx, n: ResnetNames, x: Video, zq: Video | null, key: string): Video {
  const norm = (nn: NormNames | SpatialNormNames, h: Video) =>
    zq ? spatialNorm(ctx, nn as SpatialNormNames, h, zq) : groupNorm(ctx, nn as NormNames, h, ctx.eps);
  let h = causalConv(ctx, n.conv1, silu(norm(n.norm1, x)) as Video, `${key}.conv1`);
  h = causalConv(ctx, n.conv2, silu(norm(n.norm2, h)) as Video, `${key}.conv2`);
  const short = n.shortcut ? conv3dOps(x, ctx.p(n.shortcut.weight), ctx.p(n.shortcut.bias)) : x;
  return tf.add(h, short);
}

/**
 * CogVideoXDownsample3D (diffusers/.../downsampling.py): with compress_time, frames averaged in pairs
 * (avg_pool1d; an odd count keeps frame 0 as it is), then zero padding (0, 1, 0, 1) and a 3×3 conv with stride 2.
 */
function downsample(ctx: Ctx, n: ResampleNames, x: Video): Video {
  let h = x;
  const t = x.shape[1];
  if (n.compressTime && t > 1) {
    const pairMean = (v: Video): Video => {
      const [B, T, H, W, C] = v.shape;
      return tf.reshape(tf.div(tf.sum(tf.reshape(v, [B, T / 2, 2, H * W * C]), 2), 2), [B, T / 2, H, W, C]);
    };
    h = t % 2 === 1 ? tf.concat([frames(x, 0, 1), pairMean(frames(x, 1, t - 1))], 1) : pairMean(x);
  }
  return conv3dOps(h, ctx.p(n.conv.weight), ctx.p(n.conv.bias), { stride: 2, pad: [[0, 1], [0, 1]] });
}

/**
 * CogVideoX-Fun's CogVideoXUpsample3D (autoencoder_magvit.py:235-271): nearest ×2 in H and W, in time per `mode`,
 * then a 3×3 conv per frame. The conv of a repeated frame is the conv of the frame, so it is applied before repeating.
 */
function upsample(ctx: Ctx, n: ResampleNames, x: Video, mode: UpsampleMode): Video {
  const [, t, H, W] = x.shape;
  const up = resizeNearest(x, [t, 2 * H, 2 * W]) as Video;
  const y = conv3dOps(up, ctx.p(n.conv.weight), ctx.p(n.conv.bias), { pad: [[1, 1], [1, 1]] });
  return repeatFrames(y, upsampleRepeats(t, n.compressTime, mode));
}

/** CogVideoXEncoder3D.forward (diffusers/.../autoencoder_kl_cogvideox.py:763-822): one chunk → moments [mean ‖ logvar]. */
function encoder(ctx: Ctx, l: EncoderLayout, x: Video): Video {
  let h = causalConv(ctx, l.convIn, x, 'conv_in');
  ctx.hook('conv_in', h);
  l.down.forEach((b, i) => {
    b.resnets.forEach((r, j) => (h = resnet(ctx, r, h, null, `down_blocks.${i}.resnets.${j}`)));
    if (b.downsample) h = downsample(ctx, b.downsample, h);
    ctx.hook(`down_blocks.${i}`, h);
  });
  l.mid.forEach((r, j) => (h = resnet(ctx, r, h, null, `mid_block.resnets.${j}`)));
  ctx.hook('mid_block', h);
  // norm_out is nn.GroupNorm(norm_num_groups, C, eps=1e-6) whatever norm_eps says
  h = causalConv(ctx, l.convOut, silu(groupNorm(ctx, l.normOut, h, 1e-6)) as Video, 'conv_out');
  ctx.hook('conv_out', h);
  return h;
}

/** CogVideoXDecoder3D.forward (diffusers/.../autoencoder_kl_cogvideox.py:929-989): one latent chunk → pixels. */
function decoder(ctx: Ctx, l: DecoderLayout, z: Video, mode: UpsampleMode): Video {
  let h = causalConv(ctx, l.convIn, z, 'conv_in');
  ctx.hook('conv_in', h);
  l.mid.forEach((r, j) => (h = resnet(ctx, r, h, z, `mid_block.resnets.${j}`)));
  ctx.hook('mid_block', h);
  l.up.forEach((b, i) => {
    b.resnets.forEach((r, j) => (h = resnet(ctx, r, h, z, `up_blocks.${i}.resnets.${j}`)));
    if (b.upsample) h = upsample(ctx, b.upsample, h, mode);
    ctx.hook(`up_blocks.${i}`, h);
  });
  h = causalConv(ctx, l.convOut, silu(spatialNorm(ctx, l.normOut, h, z)) as Video, 'conv_out');
  ctx.hook('conv_out', h);
  return h;
}

export interface OpsRun {
  p: ParamLookup;
  groups: number;
  eps: number;
  onBlock?: OnBlock;
}

const toLast = (x: tf.Tensor5D) => tf.transpose(x, [0, 2, 3, 4, 1]) as Video;
const toFirst = (x: Video) => tf.transpose(x, [0, 4, 1, 2, 3]) as tf.Tensor5D;

function context(run: OpsRun, call: () => number): Ctx {
  const hook = run.onBlock
    ? (name: string, t: Video) => {
        const v = toFirst(t);
        try {
          run.onBlock!(name, call(), v);
        } finally {
          v.dispose();
        }
      }
    : () => undefined;
  return { p: run.p, groups: run.groups, eps: run.eps, caches: new Map(), hook };
}

/** x [B, C, F, H, W] → moments [B, 2·latent, T, H/8, W/8], encoded in the chunks of `encodeChunks`. */
export function encodeOps(l: EncoderLayout, x: tf.Tensor5D, run: OpsRun): tf.Tensor5D {
  return tf.tidy(() => {
    const xl = toLast(x);
    let k = 0;
    const ctx = context(run, () => k);
    const out: Video[] = [];
    for (const [start, end] of encodeChunks(xl.shape[1])) {
      out.push(encoder(ctx, l, frames(xl, start, end - start)));
      k++;
    }
    return toFirst(out.length === 1 ? out[0]! : tf.concat(out, 1));
  });
}

/** z [B, latent, T, h, w] → pixels [B, C, F, 8h, 8w], decoded in the calls of `decodeCalls`. */
export function decodeOps(l: DecoderLayout, z: tf.Tensor5D, chunking: DecodeChunking, run: OpsRun): tf.Tensor5D {
  return tf.tidy(() => {
    const zl = toLast(z);
    let k = 0;
    const ctx = context(run, () => k);
    const out: Video[] = [];
    for (const [start, end, mode] of decodeCalls(zl.shape[1], chunking)) {
      out.push(decoder(ctx, l, frames(zl, start, end - start), mode));
      k++;
    }
    return toFirst(out.length === 1 ? out[0]! : tf.concat(out, 1));
  });
}
