// The CogVideoX transformer block and output head, written once (diffusers cogvideox_transformer_3d.py:117-153
// CogVideoXBlock.forward, :505-535 the model's tail; CogVideoX-Fun cogvideox/models/transformer3d.py keeps both). `nn`
// is the execution strategy chosen for this forward (src/nn/dit/plan.ts): it decides where rows live and which
// kernels run; the order of operations is here.
import * as tf from '@tensorflow/tfjs-core';
import { silu } from '../../nn/activations.js';
import { collectTensors, mapTensors, recompute } from '../../nn/checkpoint.js';
import { linear, type Linear } from '../../nn/linear.js';
import { layerNorm } from '../../nn/norm.js';
import type { BlockOps, Emit, NormWeights, PerStream, Rotary, ShiftScale } from '../../nn/dit/types.js';
import type { BlockWeights } from './weights.js';

/** Expert AdaLN modulation (CogVideoXLayerNormZero): Linear(SiLU(emb)) → shift, scale, gate for video and text. */
interface ExpertModulation {
  norm: PerStream<ShiftScale>;
  gate: PerStream<tf.Tensor>;
  all: tf.Tensor[];
}

function expertModulation(emb: tf.Tensor2D, lin: Linear, emit: Emit | null, name: string): ExpertModulation {
  const [B] = emb.shape;
  const m = tf.tidy(() => linear(silu(emb), lin)); // [B, 6D]
  emit?.(name, m);
  const D = m.shape[1]! / 6;
  const [shift, scale, gate, eShift, eScale, eGate] = tf.tidy(() => tf.split(tf.reshape(m, [B, 6, D]), 6, 1) as tf.Tensor3D[]); // each [B, 1, D]
  m.dispose();
  return {
    norm: { video: { shift: shift!, scale: scale! }, text: { shift: eShift!, scale: eScale! } },
    gate: { video: gate!, text: eGate! },
    all: [shift!, scale!, gate!, eShift!, eScale!, eGate!],
  };
}

/**
 * One CogVideoXBlock on the stream `s` (consumed; the new stream is returned):
 *   expert AdaLN → joint attention over text + video (QK-LayerNorm, RoPE on video) → gated residual
 *   expert AdaLN → feed-forward (GELU-tanh) on both streams → gated residual
 */
export function cogVideoXBlock<S, R>(nn: BlockOps<S, R>, w: BlockWeights, s: S, emb: tf.Tensor2D, rope: Rotary | null, eps: number, emit: Emit | null, name: string): S {
  const m1 = expertModulation(emb, w.norm1, emit, `${name}.norm1`);
  try {
    const x = nn.modulatedNorm(s, w.norm1Norm, eps, m1.norm);
    const a = nn.jointAttention(x, w.attn, rope, emit, `${name}.attn`);
    s = nn.gatedResidual(s, a, m1.gate);
  } finally {
    tf.dispose(m1.all);
  }
  const m2 = expertModulation(emb, w.norm2, null, `${name}.norm2`);
  try {
    const x = nn.modulatedNorm(s, w.norm2Norm, eps, m2.norm);
    const f = nn.feedForward(x, w.ff1, w.ff2);
    return nn.gatedResidual(s, f, m2.gate);
  } finally {
    tf.dispose(m2.all);
  }
}

/**
 * cogVideoXBlock with its activations recomputed in the backward pass instead of kept (gradient checkpointing, as
 * CogVideoX-Fun cogvideox/models/transformer3d.py:598-613 / diffusers cogvideox_transformer_3d.py:485-500 wrap each
 * block in torch.utils.checkpoint): `x` is the stream joined as [B, Lt + N, D] (nn.join; not consumed), the result the
 * next one. Gradients flow to x, emb and the weight tensors `trainable` accepts (the parameters being trained, or
 * tensors computed from them); the other weights and the RoPE tables are constants kept for the recomputation.
 */
export function checkpointedBlock<S, R>(
  nn: BlockOps<S, R>,
  w: BlockWeights,
  x: tf.Tensor3D,
  emb: tf.Tensor2D,
  rope: Rotary | null,
  eps: number,
  trainable: (t: tf.Tensor) => boolean,
): tf.Tensor3D {
  const { join, split } = nn;
  if (!join || !split) throw new Error(`gradient checkpointing needs a strategy with an in-heap stream, not "${nn.name}"`);
  const weights = [...new Set(collectTensors(w))];
  const params = weights.filter(trainable);
  const fixed = weights.filter((t) => !trainable(t));
  const constants = rope ? [...fixed, rope.cos, rope.sin] : fixed;
  const y = recompute(
    ([xi, embi, ...ps], cs) => {
      const sub = new Map<tf.Tensor, tf.Tensor>();
      params.forEach((p, i) => sub.set(p, ps[i]!));
      fixed.forEach((p, i) => sub.set(p, cs[i]!));
      const r = rope ? { cos: cs[fixed.length] as tf.Tensor2D, sin: cs[fixed.length + 1] as tf.Tensor2D } : null;
      const s = cogVideoXBlock(nn, mapTensors(w, (t) => sub.get(t)!), split.call(nn, xi as tf.Tensor3D), embi as tf.Tensor2D, r, eps, null, '');
      return join.call(nn, s);
    },
    [x, emb, ...params],
    constants,
  );
  return y as tf.Tensor3D;
}

export interface HeadWeights {
  normFinal: NormWeights;
  normOut: Linear;
  normOutNorm: NormWeights;
  projOut: Linear;
}

/**
 * The output head on video rows x [B, n, D]: LayerNorm → AdaLayerNorm (Linear(SiLU(emb)) → shift, scale: shift first,
 * chunk_dim 1) → proj_out, [B, n, C·pt·p·p]. (The RoPE models apply norm_final to text rows too and drop them after:
 * per row the same.)
 */
export function outputHead(x: tf.Tensor3D, w: HeadWeights, emb: tf.Tensor2D, eps: number, emit: Emit | null): tf.Tensor3D {
  return tf.tidy(() => {
    const B = emb.shape[0];
    const D = x.shape[2];
    const nf = layerNorm(x, w.normFinal.w, w.normFinal.b, eps);
    emit?.('norm_final.output', nf);
    const mod = linear(silu(emb), w.normOut); // [B, 2D]
    const shift = tf.reshape(tf.slice(mod, [0, 0], [B, D]), [B, 1, D]);
    const scale = tf.reshape(tf.slice(mod, [0, D], [B, D]), [B, 1, D]);
    const no = tf.add(tf.mul(layerNorm(nf, w.normOutNorm.w, w.normOutNorm.b, eps), tf.add(scale, 1)), shift);
    emit?.('norm_out.output', no);
    const y = linear(no, w.projOut) as tf.Tensor3D;
    emit?.('proj_out.output', y);
    return y;
  });
}
