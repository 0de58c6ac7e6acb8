// AutoencoderKLCogVideoX's blocks, written once: the ResNet block, one encoder call and one decoder call
// (diffusers/.../autoencoder_kl_cogvideox.py CogVideoXEncoder3D / CogVideoXDecoder3D, with CogVideoX-Fun's
// Upsample3D: cogvideox/models/autoencoder_magvit.py). `o` is the execution strategy (src/nn/vae: streaming frames for
// inference, whole-chunk tensor ops for gradients); the order of operations is here. The calls are generators that
// yield before every block, so a caller can hand the event loop back (and stop) between blocks; returning one early
// releases what it holds.
import type { DecoderOf, EncoderOf, ResnetOf, VaeOps, VaeWeightKinds } from '../../nn/vae/types.js';
import { upsampleRepeats, type UpsampleMode } from './chunking.js';

/**
 * CogVideoXResnetBlock3D (autoencoder_magvit.py:361-402): conv2(silu(norm2(conv1(silu(norm1(x)))))) plus x or the
 * 1×1×1 conv_shortcut(x). Norms are GroupNorms in the encoder, SpatialNorm3Ds of the latent zq in the decoder.
 */
export function resnetBlock<X, A, Z, W extends VaeWeightKinds>(o: VaeOps<X, A, Z, W>, w: ResnetOf<W>, x: X, zq: Z | null, key: string): X {
  let residual = o.share(x);
  let h = x;
  try {
    if (w.shortcut) residual = o.pointwise(residual, w.shortcut);
    h = o.causalConv(o.normSilu(h, w.norm1, zq), w.conv1, `${key}.conv1`);
    return o.causalConv(o.normSilu(h, w.norm2, zq), w.conv2, `${key}.conv2`, residual);
  } catch (e) {
    o.free(h);
    o.free(residual);
    throw e;
  }
}

/** CogVideoXEncoder3D.forward (autoencoder_kl_cogvideox.py:763-822): one chunk of pixels → moments [mean ‖ logvar]. */
export function* encoderCall<X, A, Z, W extends VaeWeightKinds>(o: VaeOps<X, A, Z, W>, w: EncoderOf<W>, x: X): Generator<void, X> {
  let h = x; // the one live activation: every step consumes it and returns the next
  let done = false;
  try {
    h = w.convIn.use((c) => o.causalConv(o.raw(h), c, 'conv_in'));
    o.emit('conv_in', h);
    for (const [i, b] of w.down.entries()) {
      for (const [j, r] of b.resnets.entries()) {
        yield;
        h = r.use((rw) => resnetBlock(o, rw, h, null, `down_blocks.${i}.resnets.${j}`));
      }
      if (b.downsample) h = b.downsample.use((ds) => o.downsample(h, ds));
      o.emit(`down_blocks.${i}`, h);
    }
    for (const [j, r] of w.mid.entries()) {
      yield;
      h = r.use((rw) => resnetBlock(o, rw, h, null, `mid_block.resnets.${j}`));
    }
    o.emit('mid_block', h);
    yield;
    // norm_out is nn.GroupNorm(norm_num_groups, C, eps=1e-6) whatever norm_eps says (weights.ts builds it so)
    h = w.convOut.use((c) => o.causalConv(o.normSilu(h, w.normOut, null), c, 'conv_out'));
    o.emit('conv_out', h);
    done = true;
    return h;
  } finally {
    if (!done) o.free(h);
  }
}

/**
 * CogVideoXDecoder3D.forward (autoencoder_kl_cogvideox.py:929-989): one latent chunk z (the caller's; every
 * SpatialNorm3D reads it) → pixels. `mode` is how the time-compressing Upsample3Ds repeat frames in this call.
 */
export function* decoderCall<X, A, Z, W extends VaeWeightKinds>(o: VaeOps<X, A, Z, W>, w: DecoderOf<W>, z: Z, mode: UpsampleMode): Generator<void, X> {
  let h = o.latent(z);
  let done = false;
  try {
    h = w.convIn.use((c) => o.causalConv(o.raw(h), c, 'conv_in'));
    o.emit('conv_in', h);
    for (const [j, r] of w.mid.entries()) {
      yield;
      h = r.use((rw) => resnetBlock(o, rw, h, z, `mid_block.resnets.${j}`));
    }
    o.emit('mid_block', h);
    for (const [i, b] of w.up.entries()) {
      for (const [j, r] of b.resnets.entries()) {
        yield;
        h = r.use((rw) => resnetBlock(o, rw, h, z, `up_blocks.${i}.resnets.${j}`));
      }
      if (b.upsample) h = b.upsample.use((us) => o.upsample(h, us, (t, compressTime) => upsampleRepeats(t, compressTime, mode)));
      o.emit(`up_blocks.${i}`, h);
    }
    yield;
    // the norm's 1×1×1 convs are held for the norm and the conv it feeds
    h = w.normOut.use((nw) => w.convOut.use((c) => o.causalConv(o.normSilu(h, nw, z), c, 'conv_out')));
    o.emit('conv_out', h);
    done = true;
    return h;
  } finally {
    if (!done) o.free(h);
  }
}
