// CogVideoXEncoder3D / CogVideoXDecoder3D (spec §3.2, §3.3): one call on one temporal chunk, the conv caches threaded
// through `caches` from call to call. Inputs and outputs are FrameSeqs of channels-last frames.
import * as tf from '@tensorflow/tfjs-core';
import type { CausalConv3d } from '../../nn/conv.js';
import type { ConvNames, DecoderLayout, EncoderLayout, ResnetNames } from '../../weights/vae_names.js';
import {
  causalConvLayer,
  disposeNorm,
  disposeResample,
  disposeResnet,
  downsampleSeq,
  loadCausalConv,
  loadGroupNorm,
  loadResample,
  loadResnet,
  loadSpatialNorm,
  normSilu,
  resnetSeq,
  timed,
  upsampleSeq,
  type ConvCaches,
  type NormW,
  type ResampleW,
  type ResnetW,
  type RunContext,
  type SpatialNormW,
  type UpsampleMode,
  type WeightGetter,
} from './blocks.js';
import { FrameSeq } from './frames.js';
import { disposeCausalConv3d } from '../../nn/conv.js';

/**
 * A part of the weights, uploaded when a call needs it. Resident parts stay on the backend after their first use;
 * per-block parts are uploaded for each use and freed right after (so a wasm heap holds one block's weights — and
 * XNNPACK's packed copy of them — at a time).
 */
export interface Part<T> {
  use<R>(fn: (w: T) => R): R;
  release(): void;
}

export function part<T>(load: () => T, dispose: (w: T) => void, resident: boolean): Part<T> {
  let kept: T | null = null;
  return {
    use<R>(fn: (w: T) => R): R {
      if (resident) {
        kept ??= load();
        return fn(kept);
      }
      const w = load();
      try {
        return fn(w);
      } finally {
        dispose(w);
      }
    },
    release() {
      if (kept !== null) dispose(kept);
      kept = null;
    },
  };
}

export interface EncoderW {
  convIn: Part<CausalConv3d>;
  down: { resnets: Part<ResnetW>[]; downsample: Part<ResampleW> | null }[];
  mid: Part<ResnetW>[];
  normOut: NormW;
  convOut: Part<CausalConv3d>;
}

export interface DecoderW {
  convIn: Part<CausalConv3d>;
  mid: Part<ResnetW>[];
  up: { resnets: Part<ResnetW>[]; upsample: Part<ResampleW> | null }[];
  normOut: Part<SpatialNormW>;
  convOut: Part<CausalConv3d>;
}

/** Receives a block's output sequence (module name as in the reference, e.g. 'down_blocks.1'); do not consume it. */
export type OnSeq = (name: string, seq: FrameSeq) => void;

export function loadEncoder(l: EncoderLayout, get: WeightGetter, groups: number, eps: number, resident: boolean): EncoderW {
  const conv = (n: ConvNames) => part(() => loadCausalConv(n, get), disposeCausalConv3d, resident);
  const resnet = (n: ResnetNames) => part(() => loadResnet(n, get, groups, eps), disposeResnet, resident);
  return {
    convIn: conv(l.convIn),
    down: l.down.map((b) => ({
      resnets: b.resnets.map(resnet),
      downsample: b.downsample ? part(() => loadResample(b.downsample!, get), disposeResample, resident) : null,
    })),
    mid: l.mid.map(resnet),
    // the encoder's norm_out is nn.GroupNorm(norm_num_groups, C, eps=1e-6): eps fixed in the reference (host arrays)
    normOut: loadGroupNorm(l.normOut, get, groups, 1e-6),
    convOut: conv(l.convOut),
  };
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
    // SpatialNorm3D's GroupNorm has eps=1e-6 in the reference, whatever norm_eps says
    normOut: part(() => loadSpatialNorm(l.normOut, get, groups, 1e-6), disposeNorm, resident),
    convOut: conv(l.convOut),
  };
}

export function disposeEncoder(w: EncoderW): void {
  w.convIn.release();
  for (const b of w.down) {
    b.resnets.forEach((r) => r.release());
    b.downsample?.release();
  }
  w.mid.forEach((r) => r.release());
  w.convOut.release();
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

/** One encoder call: pixel frames (consumed) → moments frames [mean ‖ logvar] (2·latent channels). */
export function encoderCall(ctx: RunContext, w: EncoderW, x: FrameSeq, caches: ConvCaches, onSeq?: OnSeq): FrameSeq {
  let h = w.convIn.use((c) => causalConvLayer(ctx, c, x, null, caches, 'conv_in', true));
  onSeq?.('conv_in', h);
  w.down.forEach((b, i) => {
    b.resnets.forEach((r, j) => {
      h = r.use((rw) => resnetSeq(ctx, rw, h, caches, `down_blocks.${i}.resnets.${j}`, null));
    });
    b.downsample?.use((ds) => {
      h = timed(ctx, 'downsample', () => downsampleSeq(ctx, ds, h));
    });
    onSeq?.(`down_blocks.${i}`, h);
  });
  w.mid.forEach((r, j) => {
    h = r.use((rw) => resnetSeq(ctx, rw, h, caches, `mid_block.resnets.${j}`, null));
  });
  onSeq?.('mid_block', h);
  const n = normSilu(w.normOut, h, null);
  try {
    h = w.convOut.use((c) => causalConvLayer(ctx, c, h, n.act, caches, 'conv_out', false));
  } finally {
    n.dispose();
  }
  onSeq?.('conv_out', h);
  return h;
}

/**
 * One decoder call: the latent chunk z [t, h, w, latent] (borrowed; every SpatialNorm3D reads it) → pixel frames.
 * `mode` is how the time-compressing Upsample3Ds repeat frames in this call.
 */
export function decoderCall(
  ctx: RunContext,
  w: DecoderW,
  z: tf.Tensor4D,
  caches: ConvCaches,
  mode: UpsampleMode,
  onSeq?: OnSeq,
): FrameSeq {
  const zq = { z };
  const input = new FrameSeq(ctx.pool, z.shape[3], false);
  input.push(tf.clone(z));
  let h = w.convIn.use((c) => causalConvLayer(ctx, c, input, null, caches, 'conv_in', true));
  onSeq?.('conv_in', h);
  w.mid.forEach((r, j) => {
    h = r.use((rw) => resnetSeq(ctx, rw, h, caches, `mid_block.resnets.${j}`, zq));
  });
  onSeq?.('mid_block', h);
  w.up.forEach((b, i) => {
    b.resnets.forEach((r, j) => {
      h = r.use((rw) => resnetSeq(ctx, rw, h, caches, `up_blocks.${i}.resnets.${j}`, zq));
    });
    b.upsample?.use((us) => {
      h = timed(ctx, 'upsample', () => upsampleSeq(ctx, us, h, mode));
    });
    onSeq?.(`up_blocks.${i}`, h);
  });
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
  return h;
}
