// CogVideoXEncoder3D (diffusers/.../autoencoder_kl_cogvideox.py:666-822) on the streaming path: one call on one
// temporal chunk, the conv caches threaded through `caches` from call to call. A generator: it yields after every
// block so that a caller can hand the event loop back (and stop) between blocks; returning it early disposes
// everything it holds.
import { disposeCausalConv3d, type CausalConv3d } from '../../nn/conv.js';
import type { ConvNames, EncoderLayout, ResnetNames } from '../../weights/vae_names.js';
import { causalConvLayer, timed, type ConvCaches, type RunContext } from './causal_conv.js';
import type { FrameSeq } from './frames.js';
import { normSilu } from './norms.js';
import { downsampleSeq } from './resample.js';
import { resnetSeq } from './resnet.js';
import {
  disposeResample,
  disposeResnet,
  loadCausalConv,
  loadGroupNorm,
  loadResample,
  loadResnet,
  part,
  type NormW,
  type Part,
  type ResampleW,
  type ResnetW,
  type WeightGetter,
} from './weights.js';

export interface EncoderW {
  convIn: Part<CausalConv3d>;
  down: { resnets: Part<ResnetW>[]; downsample: Part<ResampleW> | null }[];
  mid: Part<ResnetW>[];
  normOut: NormW;
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
    // norm_out is nn.GroupNorm(norm_num_groups, C, eps=1e-6) whatever norm_eps says (autoencoder_kl_cogvideox.py:755)
    normOut: loadGroupNorm(l.normOut, get, groups, 1e-6),
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

/** One encoder call: pixel frames (consumed) → moments frames [mean ‖ logvar] (2·latent channels). */
export function* encoderCall(ctx: RunContext, w: EncoderW, x: FrameSeq, caches: ConvCaches, onSeq?: OnSeq): Generator<void, FrameSeq> {
  let h = x; // the one live sequence: every step consumes it and returns the next
  let done = false;
  try {
    h = w.convIn.use((c) => causalConvLayer(ctx, c, h, null, caches, 'conv_in', true));
    onSeq?.('conv_in', h);
    for (const [i, b] of w.down.entries()) {
      for (const [j, r] of b.resnets.entries()) {
        yield;
        h = r.use((rw) => resnetSeq(ctx, rw, h, caches, `down_blocks.${i}.resnets.${j}`, null));
      }
      if (b.downsample) h = b.downsample.use((ds) => timed(ctx, 'downsample', () => downsampleSeq(ctx, ds, h)));
      onSeq?.(`down_blocks.${i}`, h);
    }
    for (const [j, r] of w.mid.entries()) {
      yield;
      h = r.use((rw) => resnetSeq(ctx, rw, h, caches, `mid_block.resnets.${j}`, null));
    }
    onSeq?.('mid_block', h);
    yield;
    const n = normSilu(w.normOut, h, null);
    try {
      h = w.convOut.use((c) => causalConvLayer(ctx, c, h, n.act, caches, 'conv_out', false));
    } finally {
      n.dispose();
    }
    onSeq?.('conv_out', h);
    done = true;
    return h;
  } finally {
    if (!done) h.dispose();
  }
}
