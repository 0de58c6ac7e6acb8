// Inputs to tokens and tokens to output, and the position tables (CogVideoX-Fun cogvideox/models/transformer3d.py,
// diffusers models/embeddings.py CogVideoXPatchEmbed / get_3d_rotary_pos_embed):
//   patchify   [B, T, C, h, w] → [B, N, C·pt·p·p] tokens (t', y, x), features (c, τ, dy, dx): the conv / Linear order
//   time       sinusoid(t) → Linear → SiLU → Linear (+ the same for `ofs`, CogVideoX1.5-I2V)
//   positions  2b: a sincos table added to the tokens; 5b/1.5: RoPE tables applied inside attention
import * as tf from '@tensorflow/tfjs-core';
import { silu } from '../../nn/activations.js';
import { interpolatePositionTable, resizeCropRegion, rotaryTables, sincos3dTable, timestepEmbedding, type RotaryTables } from '../../nn/embeddings.js';
import { linear, type Linear } from '../../nn/linear.js';
import type { Emit } from '../../nn/dit/types.js';
import type { TransformerFlavor } from '../../weights/transformer_kind.js';
import type { TransformerConfig } from '../../weights/transformer_names.js';

/** A timestep / ofs input: one value for all sequences, or one per sequence. */
export type ScalarInput = number | ArrayLike<number> | tf.Tensor;

/** The values of a number, array or tensor input (a tensor is read once; it stays the caller's). */
export function scalarValues(x: ScalarInput): number[] {
  if (typeof x === 'number') return [x];
  if (x instanceof tf.Tensor) return Array.from(x.dataSync());
  return Array.from(x);
}

/** [B, T, C, h, w] → [B, N, C·pt·p·p] tokens (t', y, x), features (c, τ, dy, dx) — the conv/Linear patch order. */
export function patchify(x: tf.Tensor, p: number, pt: number | null): tf.Tensor3D {
  const [B, T, C, h, w] = x.shape as [number, number, number, number, number];
  const gh = h / p;
  const gw = w / p;
  if (pt === null) {
    const r = tf.reshape(x, [B * T, C, gh, p, gw, p]);
    return tf.reshape(tf.transpose(r, [0, 2, 4, 1, 3, 5]), [B, T * gh * gw, C * p * p]);
  }
  const r = tf.reshape(x, [B * (T / pt), pt, C, gh, p, gw, p]);
  return tf.reshape(tf.transpose(r, [0, 3, 5, 2, 1, 4, 6]), [B, (T / pt) * gh * gw, C * pt * p * p]);
}

/** [B, N, C·pt·p·p] → [B, T, C, h, w] (inverse of patchify). */
export function unpatchify(y: tf.Tensor3D, B: number, T: number, gh: number, gw: number, C: number, p: number, pt: number | null): tf.Tensor5D {
  if (pt === null) {
    const r = tf.reshape(y, [B * T, gh, gw, C, p, p]);
    return tf.reshape(tf.transpose(r, [0, 3, 1, 4, 2, 5]), [B, T, C, gh * p, gw * p]);
  }
  const r = tf.reshape(y, [B * (T / pt), gh, gw, C, pt, p, p]);
  return tf.reshape(tf.transpose(r, [0, 4, 3, 1, 5, 2, 6]), [B, T, C, gh * p, gw * p]);
}

/**
 * The conditioning vector [B, time_embed_dim]: TimestepEmbedding(Timesteps(t)), plus the ofs embedding for 1.5-I2V
 * (diffusers passes ofs as a [1] tensor: its embedding broadcasts over the batch).
 */
export function conditioning(
  c: TransformerConfig,
  w: { time1: Linear; time2: Linear; ofs1: Linear | null; ofs2: Linear | null },
  timestep: ScalarInput,
  ofs: ScalarInput | undefined,
  B: number,
  emit: Emit,
): tf.Tensor2D {
  const D = c.num_attention_heads * c.attention_head_dim;
  const t = scalarValues(timestep);
  const ts = t.length === 1 ? new Array<number>(B).fill(t[0]!) : t;
  return tf.tidy(() => {
    const tEmb = tf.tensor2d(timestepEmbedding(ts, D, c.freq_shift), [B, D]);
    emit('time.t_emb', tEmb);
    let emb = linear(silu(linear(tEmb, w.time1)), w.time2);
    emit('time.emb', emb);
    if (w.ofs1 && w.ofs2) {
      const os = scalarValues(ofs ?? 2.0);
      const oT = tf.tensor2d(timestepEmbedding(os, c.ofs_embed_dim!, c.freq_shift), [os.length, c.ofs_embed_dim!]);
      emit('ofs.t_emb', oT);
      const oEmb = linear(silu(linear(oT, w.ofs1)), w.ofs2);
      emit('ofs.emb', oEmb);
      emb = tf.add(emb, oEmb);
    }
    return emb as tf.Tensor2D;
  });
}

/**
 * RoPE tables for a config and latent size, as the reference pipelines' `_prepare_rotary_positional_embeddings`:
 * 1.0 — the grid over the crop region of the base grid (sample size / patch); its positions differ between
 * CogVideoX-Fun (numpy linspace) and diffusers (torch linspace) when the crop is off-origin; 1.5 — the "slice" grid.
 * `latentFrames` is the latent frame count T (before temporal patching).
 */
export function prepareRotaryPositionalEmbeddings(
  c: TransformerConfig,
  latentHeight: number,
  latentWidth: number,
  latentFrames: number,
  flavor: TransformerFlavor = 'fun',
): RotaryTables {
  const p = c.patch_size;
  const gh = latentHeight / p;
  const gw = latentWidth / p;
  const baseW = Math.floor(c.sample_width / p);
  const baseH = Math.floor(c.sample_height / p);
  if (!c.patch_size_t) {
    const crop = resizeCropRegion(gh, gw, baseW, baseH);
    return rotaryTables(c.attention_head_dim, gh, gw, latentFrames, { type: flavor === 'fun' ? 'linspace' : 'torch-linspace', crop });
  }
  const frames = Math.floor((latentFrames + c.patch_size_t - 1) / c.patch_size_t);
  return rotaryTables(c.attention_head_dim, gh, gw, frames, { type: 'slice', maxH: baseH, maxW: baseW });
}

/**
 * The sincos position table's video rows [T·gh·gw, D] (rows t, y, x) for a token grid:
 * 'fun' — the table of the config's sample size, trilinearly resized to (gh, gw) and cut to T frames (CogVideoX-Fun);
 * 'diffusers' — recomputed for the grid (diffusers; identical at the native size).
 */
export function sincosPositionTable(c: TransformerConfig, flavor: TransformerFlavor, T: number, gh: number, gw: number): Float32Array {
  const D = c.num_attention_heads * c.attention_head_dim;
  if (flavor === 'diffusers') return sincos3dTable(D, gw, gh, T, c.spatial_interpolation_scale, c.temporal_interpolation_scale);
  const p = c.patch_size;
  const H0 = c.sample_height / p;
  const W0 = c.sample_width / p;
  const T0 = (c.sample_frames - 1) / c.temporal_compression_ratio + 1;
  if (T > T0) throw new Error(`the position table covers ${T0} latent frames; got ${T}`);
  const base = sincos3dTable(D, W0, H0, T0, c.spatial_interpolation_scale, c.temporal_interpolation_scale);
  const resized = gh === H0 && gw === W0 ? base : interpolatePositionTable(base, D, T0, H0, W0, gh, gw);
  return resized.subarray(0, T * gh * gw * D);
}

/**
 * The table added to the whole sequence, [(L_text + N)·D] (text rows zero unless learned), or null (RoPE only):
 * 2b — sincos (see sincosPositionTable); THUDM 5b-I2V — its stored learned table at the native frame count, else
 * diffusers' recomputed sincos (CogVideoXPatchEmbed.forward, diffusers models/embeddings.py:735-755).
 */
export function positionTable(c: TransformerConfig, flavor: TransformerFlavor, learned: Float32Array | null, T: number, gh: number, gw: number, Lt: number): Float32Array | null {
  if (c.use_rotary_positional_embeddings && !c.use_learned_positional_embeddings) return null;
  const D = c.num_attention_heads * c.attention_head_dim;
  const framesDiffer = (T - 1) * c.temporal_compression_ratio + 1 !== c.sample_frames;
  if (learned && !framesDiffer) return learned.subarray(0, (Lt + T * gh * gw) * D);
  const table = new Float32Array((Lt + T * gh * gw) * D);
  table.set(sincosPositionTable(c, learned ? 'diffusers' : flavor, T, gh, gw), Lt * D);
  return table;
}
