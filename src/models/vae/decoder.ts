// CogVideoXDecoder3D (diffusers/.../autoencoder_kl_cogvideox.py:825-989, with CogVideoX-Fun's Upsample3D) on the
// streaming path: one call on one latent chunk, the conv caches threaded through `caches` from call to call. A
// generator that yields after every block (see encoder.ts).
import * as tf from '@tensorflow/tfjs-core';
import { disposeCausalConv3d, type CausalConv3d } from '../../nn/conv.js';
import type { ConvNames, DecoderLayout, ResnetNames } from '../../weights/vae_names.js';
import { causalConvLayer, timed, type ConvCaches, type RunContext } from './causal_conv.js';
import type { UpsampleMode } from './chunking.js';
import type { OnSeq } from './encoder.js';
import { FrameSeq } from './frames.js';
import { normSilu } from './norms.js';
import { upsampleSeq } from './resample.js';
import { resnetSeq } from './resnet.js';
import {
  disposeNorm,
  disposeResample,
  disposeResnet,
  loadCausalConv,
  loadResample,
  loadResnet,
  loadSpatialNorm,
  part,
  type Part,
  type ResampleW,
  type ResnetW,
  type SpatialNormW,
  type WeightGetter,
} from './weights.js';

export interface DecoderW {
  convIn: Part<CausalConv3d>;
  mid: Part<ResnetW>[];
  up: { resnets: Part<ResnetW>[]; upsample: Part<ResampleW> | null }[];
  normOut: Part<SpatialNormW>;
  convOut: Part<CausalConv3d>;
}

export function loadDecoder(l: DecoderLayout, get: WeightGetter, groups: number, eps: number, resident: boolean): DecoderW {
  const conv = (n: ConvNames) => part(() => loadCausalConv(n, get), disposeCausalConv3d, resident);
  const resnet = (n: ResnetNames) => part(() => loadResnet(n, get, groups, eps), disposeResnet, resident);
  return {
    convIn: conv(l.convIn),
    mid: l.mid.map(resnet),
    up: l.up.map((b) => ({
      resnets: b.resnets.map(resnet),
      upsample: b.upsample ? part(() => loadResample(b.upsample!, get), disposeResample, resident) : null,
    })),
    normOut: part(() => loadSpatialNorm(l.normOut, get, groups, 1e-6), disposeNorm, resident),
    convOut: conv(l.convOut),
  };
}

export function disposeDecoder(w: DecoderW): void {
  w.convIn.release();
  w.mid.forEach((r) => r.release());
  for (const b of w.up) {
    b.resnets.forEach((r) => r.release());
    b.upsample?.release();
  }
  w.normOut.release();
  w.convOut.release();
}

/**
 * One decoder call: the latent chunk z [t, h, w, latent] (borrowed; every SpatialNorm3D reads it) → pixel frames.
 * `mode` is how the time-compressing Upsample3Ds repeat frames in this call.
 */
export function* decoderCall(
  ctx: RunContext,
  w: DecoderW,
  z: tf.Tensor4D,
  caches: ConvCaches,
  mode: UpsampleMode,
  onSeq?: OnSeq,
): Generator<void, FrameSeq> {
  const zq = { z };
  let h = new FrameSeq(ctx.pool, z.shape[3], false); // the one live sequence (see encoderCall)
  let done = false;
  try {
    h.push(tf.clone(z));
    h = w.convIn.use((c) => causalConvLayer(ctx, c, h, null, caches, 'conv_in', true));
    onSeq?.('conv_in', h);
    for (const [j, r] of w.mid.entries()) {
      yield;
      h = r.use((rw) => resnetSeq(ctx, rw, h, caches, `mid_block.resnets.${j}`, zq));
    }
    onSeq?.('mid_block', h);
    for (const [i, b] of w.up.entries()) {
      for (const [j, r] of b.resnets.entries()) {
        yield;
        h = r.use((rw) => resnetSeq(ctx, rw, h, caches, `up_blocks.${i}.resnets.${j}`, zq));
      }
      if (b.upsample) h = b.upsample.use((us) => timed(ctx, 'upsample', () => upsampleSeq(ctx, us, h, mode)));
      onSeq?.(`up_blocks.${i}`, h);
    }
    yield;
    // the norm's 1×1×1 convs are held for the norm and the conv it feeds
    h = w.normOut.use((nw) => {
      const n = normSilu(nw, h, zq);
      try {
        return w.convOut.use((c) => causalConvLayer(ctx, c, h, n.act, caches, 'conv_out', false));
      } finally {
        n.dispose();
      }
    });
    onSeq?.('conv_out', h);
    done = true;
    return h;
  } finally {
    if (!done) h.dispose();
  }
}
