// Checkpoint names of HF `T5EncoderModel` (no biases anywhere; relative attention bias only in block 0).
export interface T5Config {
  vocab_size: number;
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_layers: number;
  num_heads: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  layer_norm_epsilon: number;
  feed_forward_proj: string;
  dense_act_fn?: string;
  is_gated_act?: boolean;
}

export const T5_EMBEDDING_NAMES = ['shared.weight', 'encoder.embed_tokens.weight'] as const;
export const T5_RELATIVE_BIAS = 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight';
export const T5_FINAL_NORM = 'encoder.final_layer_norm.weight';

export function t5BlockNames(l: number) {
  const p = `encoder.block.${l}.layer`;
  return {
    ln0: `${p}.0.layer_norm.weight`,
    q: `${p}.0.SelfAttention.q.weight`,
    k: `${p}.0.SelfAttention.k.weight`,
    v: `${p}.0.SelfAttention.v.weight`,
    o: `${p}.0.SelfAttention.o.weight`,
    ln1: `${p}.1.layer_norm.weight`,
    wi0: `${p}.1.DenseReluDense.wi_0.weight`,
    wi1: `${p}.1.DenseReluDense.wi_1.weight`,
    wo: `${p}.1.DenseReluDense.wo.weight`,
  };
}

/** Every tensor the encoder needs (except the embedding, which may be stored under either name) and its shape. */
export function t5ExpectedShapes(c: T5Config): Map<string, number[]> {
  const inner = c.num_heads * c.d_kv;
  const m = new Map<string, number[]>();
  m.set(T5_RELATIVE_BIAS, [c.relative_attention_num_buckets, c.num_heads]);
  m.set(T5_FINAL_NORM, [c.d_model]);
  for (let l = 0; l < c.num_layers; l++) {
    const n = t5BlockNames(l);
    m.set(n.ln0, [c.d_model]);
    m.set(n.q, [inner, c.d_model]);
    m.set(n.k, [inner, c.d_model]);
    m.set(n.v, [inner, c.d_model]);
    m.set(n.o, [c.d_model, inner]);
    m.set(n.ln1, [c.d_model]);
    m.set(n.wi0, [c.d_ff, c.d_model]);
    m.set(n.wi1, [c.d_ff, c.d_model]);
    m.set(n.wo, [c.d_model, c.d_ff]);
  }
  return m;
}
