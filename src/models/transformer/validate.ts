// Checks of a transformer config and of forward inputs, before any compute, with errors naming the field.
import * as tf from '@tensorflow/tfjs-core';
import type { TransformerFlavor } from '../../weights/transformer_kind.js';
import type { TransformerConfig } from '../../weights/transformer_names.js';
import { scalarValues, type ScalarInput } from './embedding.js';

export function validateConfig(c: TransformerConfig, dir: string): void {
  for (const key of ['num_attention_heads', 'attention_head_dim', 'in_channels', 'out_channels', 'time_embed_dim', 'text_embed_dim', 'num_layers', 'patch_size'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) throw new Error(`${dir}/config.json: "${key}" must be a positive integer, got ${JSON.stringify(c[key])}`);
  }
  if (c.activation_fn !== 'gelu-approximate') throw new Error(`${dir}/config.json: activation_fn "${c.activation_fn}" is not supported (CogVideoX uses "gelu-approximate")`);
  if (c.timestep_activation_fn !== 'silu') throw new Error(`${dir}/config.json: timestep_activation_fn "${c.timestep_activation_fn}" is not supported`);
  if (!c.flip_sin_to_cos) throw new Error(`${dir}/config.json: flip_sin_to_cos=false is not supported`);
  if (c.ofs_embed_dim && c.ofs_embed_dim !== c.time_embed_dim) {
    throw new Error(`${dir}/config.json: ofs_embed_dim (${c.ofs_embed_dim}) must equal time_embed_dim (${c.time_embed_dim})`);
  }
}

export interface ForwardInputsLike {
  hiddenStates: tf.Tensor5D;
  encoderHiddenStates: tf.Tensor3D;
  timestep: ScalarInput;
  inpaintLatents?: tf.Tensor5D;
  ofs?: ScalarInput;
}

/** Checks every input before any compute; returns the sizes. */
export function validateInputs(c: TransformerConfig, flavor: TransformerFlavor, inputs: ForwardInputsLike): { B: number; T: number; h: number; w: number } {
  const x = inputs.hiddenStates;
  if (!(x instanceof tf.Tensor) || x.rank !== 5) {
    throw new Error(`hiddenStates must be a rank-5 tensor [B, T, C, h, w], got ${x instanceof tf.Tensor ? `rank ${x.rank}` : typeof x}`);
  }
  const [B, T, C, h, w] = x.shape;
  const extra = inputs.inpaintLatents ? inputs.inpaintLatents.shape[2] : 0;
  if (inputs.inpaintLatents) {
    const s = inputs.inpaintLatents.shape;
    if (inputs.inpaintLatents.rank !== 5 || s[0] !== B || s[1] !== T || s[3] !== h || s[4] !== w) {
      throw new Error(`inpaintLatents must be [${B}, ${T}, C, ${h}, ${w}], got [${s.join(', ')}]`);
    }
  }
  if (C + extra !== c.in_channels) {
    const latents = (c.in_channels - 1) / 2;
    const hint = flavor === 'fun' && Number.isInteger(latents) && !inputs.inpaintLatents ? ` (${latents} latents + inpaintLatents with ${latents + 1})` : '';
    throw new Error(
      `channels: hiddenStates has ${C}${inputs.inpaintLatents ? ` + inpaintLatents ${extra}` : ''} = ${C + extra}, but this model takes ${c.in_channels}${hint}`,
    );
  }
  if (h % c.patch_size || w % c.patch_size) {
    throw new Error(`latent height/width ${h}×${w} must be multiples of the patch size ${c.patch_size} (pixel H/W multiples of 16)`);
  }
  if (T < 1) throw new Error('hiddenStates has no frames');
  const e = inputs.encoderHiddenStates;
  if (!(e instanceof tf.Tensor) || e.rank !== 3 || e.shape[0] !== B || e.shape[2] !== c.text_embed_dim) {
    throw new Error(`encoderHiddenStates must be [${B}, L, ${c.text_embed_dim}], got ${e instanceof tf.Tensor ? `[${e.shape.join(', ')}]` : typeof e}`);
  }
  const ts = scalarValues(inputs.timestep);
  if (ts.length !== B && ts.length !== 1) throw new Error(`timestep must have ${B} values (one per batch element) or 1, got ${ts.length}`);
  if (ts.some((t) => !Number.isFinite(t))) throw new Error('timestep values must be finite numbers');
  if (c.ofs_embed_dim && inputs.ofs !== undefined) {
    const os = scalarValues(inputs.ofs);
    if (os.length !== 1 && os.length !== B) throw new Error(`ofs must have 1 or ${B} values, got ${os.length}`);
    if (os.some((t) => !Number.isFinite(t))) throw new Error('ofs values must be finite numbers');
  }
  const usesPE = !c.use_rotary_positional_embeddings || c.use_learned_positional_embeddings;
  if (usesPE) {
    const T0 = (c.sample_frames - 1) / c.temporal_compression_ratio + 1;
    if (flavor === 'fun' && !c.use_learned_positional_embeddings && T > T0) {
      throw new Error(`this model's position table covers ${T0} latent frames (${c.sample_frames} video frames); got ${T}`);
    }
    if (c.use_learned_positional_embeddings && (h !== c.sample_height || w !== c.sample_width)) {
      throw new Error(`this model (learned position embeddings) only runs at its native latent size ${c.sample_height}×${c.sample_width}, got ${h}×${w}`);
    }
  }
  return { B, T, h, w };
}
