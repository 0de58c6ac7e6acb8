// Checkpoint names and shapes of `CogVideoXTransformer3DModel` (diffusers models/transformers/cogvideox_transformer_3d.py,
// CogVideoX-Fun cogvideox/models/transformer3d.py: the same state-dict layout).
export interface TransformerConfig {
  num_attention_heads: number;
  attention_head_dim: number;
  in_channels: number;
  out_channels: number;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  time_embed_dim: number;
  ofs_embed_dim?: number | null;
  text_embed_dim: number;
  num_layers: number;
  attention_bias: boolean;
  sample_width: number;
  sample_height: number;
  sample_frames: number;
  patch_size: number;
  patch_size_t?: number | null;
  temporal_compression_ratio: number;
  max_text_seq_length: number;
  activation_fn: string;
  timestep_activation_fn: string;
  norm_elementwise_affine: boolean;
  norm_eps: number;
  spatial_interpolation_scale: number;
  temporal_interpolation_scale: number;
  use_rotary_positional_embeddings: boolean;
  use_learned_positional_embeddings: boolean;
  patch_bias?: boolean;
  /** CogVideoX-Fun inpaint models: noise-augment the masked video (σ 0.0563) before encoding it. */
  add_noise_in_inpaint_model?: boolean;
}

export const TRANSFORMER_DEFAULTS: Partial<TransformerConfig> = {
  num_attention_heads: 30,
  attention_head_dim: 64,
  in_channels: 16,
  out_channels: 16,
  flip_sin_to_cos: true,
  freq_shift: 0,
  time_embed_dim: 512,
  ofs_embed_dim: null,
  text_embed_dim: 4096,
  num_layers: 30,
  attention_bias: true,
  sample_width: 90,
  sample_height: 60,
  sample_frames: 49,
  patch_size: 2,
  patch_size_t: null,
  temporal_compression_ratio: 4,
  max_text_seq_length: 226,
  activation_fn: 'gelu-approximate',
  timestep_activation_fn: 'silu',
  norm_elementwise_affine: true,
  norm_eps: 1e-5,
  spatial_interpolation_scale: 1.875,
  temporal_interpolation_scale: 1.0,
  use_rotary_positional_embeddings: false,
  use_learned_positional_embeddings: false,
  patch_bias: true,
};

export function blockNames(i: number) {
  const p = `transformer_blocks.${i}`;
  return {
    norm1Linear: `${p}.norm1.linear`,
    norm1Norm: `${p}.norm1.norm`,
    q: `${p}.attn1.to_q`,
    k: `${p}.attn1.to_k`,
    v: `${p}.attn1.to_v`,
    normQ: `${p}.attn1.norm_q`,
    normK: `${p}.attn1.norm_k`,
    out: `${p}.attn1.to_out.0`,
    norm2Linear: `${p}.norm2.linear`,
    norm2Norm: `${p}.norm2.norm`,
    ff1: `${p}.ff.net.0.proj`,
    ff2: `${p}.ff.net.2`,
  };
}

/** Every tensor of the model and the shape its config implies. */
export function transformerExpectedShapes(c: TransformerConfig): Map<string, number[]> {
  const D = c.num_attention_heads * c.attention_head_dim;
  const hd = c.attention_head_dim;
  const p = c.patch_size;
  const pt = c.patch_size_t ?? null;
  const m = new Map<string, number[]>();
  const lin = (name: string, out: number, inp: number, bias = true) => {
    m.set(`${name}.weight`, [out, inp]);
    if (bias) m.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, dim: number) => {
    m.set(`${name}.weight`, [dim]);
    m.set(`${name}.bias`, [dim]);
  };
  if (pt === null) {
    m.set('patch_embed.proj.weight', [D, c.in_channels, p, p]);
    if (c.patch_bias !== false) m.set('patch_embed.proj.bias', [D]);
  } else {
    lin('patch_embed.proj', D, c.in_channels * p * p * pt);
  }
  lin('patch_embed.text_proj', D, c.text_embed_dim);
  if (c.use_learned_positional_embeddings) {
    const tokens = (c.sample_height / p) * (c.sample_width / p) * ((c.sample_frames - 1) / c.temporal_compression_ratio + 1);
    m.set('patch_embed.pos_embedding', [1, c.max_text_seq_length + tokens, D]);
  }
  lin('time_embedding.linear_1', c.time_embed_dim, D);
  lin('time_embedding.linear_2', c.time_embed_dim, c.time_embed_dim);
  if (c.ofs_embed_dim) {
    lin('ofs_embedding.linear_1', c.ofs_embed_dim, c.ofs_embed_dim);
    lin('ofs_embedding.linear_2', c.ofs_embed_dim, c.ofs_embed_dim);
  }
  for (let i = 0; i < c.num_layers; i++) {
    const n = blockNames(i);
    lin(n.norm1Linear, 6 * D, c.time_embed_dim);
    norm(n.norm1Norm, D);
    lin(n.q, D, D, c.attention_bias);
    lin(n.k, D, D, c.attention_bias);
    lin(n.v, D, D, c.attention_bias);
    norm(n.normQ, hd);
    norm(n.normK, hd);
    lin(n.out, D, D);
    lin(n.norm2Linear, 6 * D, c.time_embed_dim);
    norm(n.norm2Norm, D);
    lin(n.ff1, 4 * D, D);
    lin(n.ff2, D, 4 * D);
  }
  norm('norm_final', D);
  lin('norm_out.linear', 2 * D, c.time_embed_dim);
  norm('norm_out.norm', D);
  lin('proj_out', p * p * (pt ?? 1) * c.out_channels, D);
  return m;
}
