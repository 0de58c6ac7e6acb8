// The DiT block's operations on TensorFlow ops: whole [B, S, D] tensors, batched multi-head attention. Every op here
// has a gradient, so this strategy is the differentiable one (with `fusedAttention` off: the native attention kernel
// has none). It is also the inference strategy where no faster one applies.
import * as tf from '@tensorflow/tfjs-core';
import { attention } from '../attention.js';
import { feedForward, linear, type Linear } from '../linear.js';
import { layerNorm } from '../norm.js';
import { applyRotary } from '../rope.js';
import type { AttentionWeights, BlockOps, DitShape, Emit, NormWeights, PerStream, Rotary, ShiftScale } from './types.js';

/** The in-heap residual stream: text [B, Lt, D] and video [B, N, D] tensors. */
export type TensorStream = PerStream<tf.Tensor3D>;

export interface TensorOpsOptions {
  shape: DitShape;
  /** Attention score scratch bound in bytes (query blocks). */
  attentionScratchBytes: number;
  /** Feed-forward intermediate bound in bytes (row chunks). */
  ffScratchBytes: number;
  /** Allow the native fused attention kernel (no gradient). */
  fusedAttention: boolean;
}

/** LayerNorm(x)·(1 + scale) + shift. */
export function modulate(x: tf.Tensor, norm: NormWeights, eps: number, m: ShiftScale): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(layerNorm(x, norm.w, norm.b, eps), tf.add(m.scale, 1)), m.shift));
}

/** q or k of every head, [B, H, S, hd]: projection, per-head LayerNorm, RoPE on the video rows (s ≥ Lt). */
export function projectHeads(x: tf.Tensor, lin: Linear, norm: NormWeights | null, eps: number, rope: Rotary | null, shape: DitShape): tf.Tensor4D {
  const { B, Lt, N, heads: H, headDim: hd } = shape;
  const S = Lt + N;
  return tf.tidy(() => {
    let t = tf.transpose(tf.reshape(linear(x, lin), [B, S, H, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
    if (norm) t = layerNorm(t, norm.w, norm.b, eps) as tf.Tensor4D;
    if (norm && rope) {
      const text = tf.slice(t, [0, 0, 0, 0], [B, H, Lt, hd]);
      const video = applyRotary(tf.slice(t, [0, 0, Lt, 0], [B, H, N, hd]) as tf.Tensor4D, rope.cos, rope.sin);
      t = tf.concat([text, video], 2) as tf.Tensor4D;
    }
    return t;
  });
}

/** Batched joint attention on a [B, S, D] tensor → the output projection [B, S, D]. */
export function jointAttentionTensor(x: tf.Tensor, w: AttentionWeights, rope: Rotary | null, emit: Emit | null, prefix: string, o: TensorOpsOptions): tf.Tensor3D {
  const { B, Lt, N, heads: H, headDim: hd } = o.shape;
  const S = Lt + N;
  return tf.tidy(() => {
    const q = projectHeads(x, w.q, w.normQ, w.qkEps, rope, o.shape);
    const k = projectHeads(x, w.k, w.normK, w.qkEps, rope, o.shape);
    emit?.(`${prefix}.q`, q);
    emit?.(`${prefix}.k`, k);
    const v = projectHeads(x, w.v, null, 0, null, o.shape);
    const a = attention(q, k, v, { scale: 1 / Math.sqrt(hd), scratchBytes: o.attentionScratchBytes, fused: o.fusedAttention });
    const out = linear(tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [B, S, H * hd]), w.out) as tf.Tensor3D;
    emit?.(`${prefix}.out`, out);
    return out;
  });
}

/** The tensor-stream operations every in-heap strategy shares. */
export function tensorStreamOps(o: TensorOpsOptions): Omit<BlockOps<TensorStream, tf.Tensor3D>, 'name' | 'jointAttention' | 'modulatedNorm' | 'feedForward'> {
  const { B, Lt, N } = o.shape;
  return {
    chunked: false,
    embed(text, video) {
      return { text: text(0, B), video: video(0, B, 0, N) };
    },
    gatedResidual(s, y, gate) {
      const D = s.text.shape[2];
      const next = tf.tidy(() => ({
        text: tf.add(s.text, tf.mul(gate.text, tf.slice(y, [0, 0, 0], [B, Lt, D]))) as tf.Tensor3D,
        video: tf.add(s.video, tf.mul(gate.video, tf.slice(y, [0, Lt, 0], [B, N, D]))) as tf.Tensor3D,
      }));
      tf.dispose([s.text, s.video, y]);
      return next;
    },
    videoRows(s, f) {
      return f(s.video, 0, B);
    },
    view(s) {
      return { text: tf.clone(s.text), video: tf.clone(s.video) };
    },
    sync(s) {
      s.video.dataSync();
    },
    release(s) {
      tf.dispose([s.text, s.video]);
    },
    join(s) {
      const x = tf.concat([s.text, s.video], 1) as tf.Tensor3D;
      tf.dispose([s.text, s.video]);
      return x;
    },
    split(x) {
      const D = x.shape[2];
      return { text: tf.slice(x, [0, 0, 0], [B, Lt, D]), video: tf.slice(x, [0, Lt, 0], [B, N, D]) };
    },
  };
}

/** Rows per feed-forward chunk for a byte bound on its 4D-wide intermediate (and its GELU). */
export function ffRowsPerChunk(ffScratchBytes: number, D: number): number {
  return Math.max(1, Math.floor(ffScratchBytes / (2 * 4 * 4 * D)));
}

/** TensorFlow ops throughout: [B, S, D] tensors, batched attention. */
export function tensorOps(o: TensorOpsOptions): BlockOps<TensorStream, tf.Tensor3D> {
  return {
    name: o.fusedAttention ? 'tensorflow ops' : 'tensorflow ops (differentiable)',
    ...tensorStreamOps(o),
    modulatedNorm(s, norm, eps, mod) {
      return tf.tidy(() => tf.concat([modulate(s.text, norm, eps, mod.text), modulate(s.video, norm, eps, mod.video)], 1) as tf.Tensor3D);
    },
    jointAttention(x, w, rope, emit, prefix) {
      try {
        return jointAttentionTensor(x, w, rope, emit, prefix, o);
      } finally {
        x.dispose();
      }
    },
    feedForward(x, up, down) {
      try {
        return feedForward(x, up, down, ffRowsPerChunk(o.ffScratchBytes, x.shape[2])) as tf.Tensor3D;
      } finally {
        x.dispose();
      }
    },
  };
}
