// The DiT block's operations with the native addon on the tensorflow backend (src/nn/native.ts): the modulated
// LayerNorms write host rows (text then video rows of each sequence) that the native GEMM reads directly; q/k/v,
// their per-head LayerNorm and RoPE, the head layout and the fused attention stay in host arrays; only the projected
// outputs enter TensorFlow. One feed-forward GEMM over both streams' rows (faster than two smaller ones).
// Weights not in the host layout (loaded before the addon was turned on/off) fall back to TensorFlow ops per call.
import * as tf from '@tensorflow/tfjs-core';
import { attentionHost, mergeHeadsHost, splitHeadsHost } from '../attention.js';
import { feedForward, isHostLinear, linear, linearToHost, type HostRows } from '../linear.js';
import { hostFloats, nativeAttention } from '../native.js';
import { modulatedLayerNormInto } from '../norm.js';
import { ffRowsPerChunk, jointAttentionTensor, tensorStreamOps, type TensorOpsOptions, type TensorStream } from './tf_ops.js';
import type { AttentionWeights, BlockOps, Emit, Rotary, Rows } from './types.js';

function rowsTensor(x: Rows, shape: { B: number; S: number; D: number }): tf.Tensor3D {
  if (x instanceof tf.Tensor) return x;
  return tf.tensor3d(x.data.subarray(0, x.rows * x.cols), [shape.B, shape.S, shape.D]);
}

/**
 * Rows per chunk of the native feed-forward. Its one intermediate (a chunk's [rows, 4D], GELU applied in place by the
 * GEMM) is the largest allocation of a block: for a whole CFG batch of Fun-2b at 384×672×49 (26 660 rows) 0.76 GiB,
 * which set the block's peak RSS (bench/transformer.ts (b)). Chunks of ≤ 256 MiB still have thousands of rows
 * (8 738 at D = 1920), where the GEMM runs at its full rate.
 */
export function nativeFfRows(D: number): number {
  return Math.max(1, Math.floor(NATIVE_FF_SCRATCH_BYTES / (4 * 4 * D)));
}

const NATIVE_FF_SCRATCH_BYTES = 256 * 2 ** 20;

export function nativeOps(o: TensorOpsOptions): BlockOps<TensorStream, Rows> {
  const { B, Lt, N, heads: H, headDim: hd } = o.shape;
  const S = Lt + N;
  const D = H * hd;
  const base = tensorStreamOps(o);

  const attentionOnHost = (x: HostRows, w: AttentionWeights, rope: Rotary | null, emit: Emit | null, prefix: string): tf.Tensor3D => {
    const ropeOpt = rope ? { cos: rope.cos, sin: rope.sin, offset: Lt } : undefined;
    // Host arrays are freed only when the garbage collector runs, so each [B, S, D] array is reused as soon as it is
    // dead (one projection buffer for q, k and v; x for the attention output; q for the merged heads): 5 new arrays
    // instead of 9 keep the block's peak RSS down.
    const proj = hostFloats(B * S * D);
    const q = splitHeadsHost(linearToHost(x, w.q, proj), B, S, H, hd, { norm: { ...w.normQ, eps: w.qkEps }, rope: ropeOpt });
    const k = splitHeadsHost(linearToHost(x, w.k, proj), B, S, H, hd, { norm: { ...w.normK, eps: w.qkEps }, rope: ropeOpt });
    const v = splitHeadsHost(linearToHost(x, w.v, proj), B, S, H, hd);
    if (emit) {
      const [qt, kt] = [q, k].map((a) => tf.tensor4d(a, [B, H, S, hd]));
      emit(`${prefix}.q`, qt!);
      emit(`${prefix}.k`, kt!);
      tf.dispose([qt!, kt!]);
    }
    const a = attentionHost(q, k, v, B * H, S, hd, 1 / Math.sqrt(hd), x.data);
    // (not over q when it was emitted: a tensor the hook kept may still read it)
    const out = tf.tidy(() => tf.reshape(linear(mergeHeadsHost(a, B, S, H, hd, emit ? undefined : q), w.out), [B, S, D]) as tf.Tensor3D);
    emit?.(`${prefix}.out`, out);
    return out;
  };

  return {
    name: 'native kernels',
    ...base,
    modulatedNorm(s, norm, eps, mod) {
      const data = hostFloats(B * S * D); // every row written below
      modulatedLayerNormInto(s.text, norm.w, norm.b, eps, mod.text.scale, mod.text.shift, data, S, 0);
      modulatedLayerNormInto(s.video, norm.w, norm.b, eps, mod.video.scale, mod.video.shift, data, S, Lt);
      return { data, rows: B * S, cols: D };
    },
    jointAttention(x, w, rope, emit, prefix) {
      const host = [w.q, w.k, w.v, w.out].every(isHostLinear) && nativeAttention() !== null;
      if (host && !(x instanceof tf.Tensor)) return attentionOnHost(x, w, rope, emit, prefix);
      const t = rowsTensor(x, { B, S, D });
      try {
        return jointAttentionTensor(t, w, rope, emit, prefix, o);
      } finally {
        t.dispose();
      }
    },
    feedForward(x, up, down) {
      const rows = Math.min(ffRowsPerChunk(o.ffScratchBytes, D), nativeFfRows(D));
      const y = tf.tidy(() => tf.reshape(feedForward(x, up, down, rows), [B, S, D]) as tf.Tensor3D);
      if (x instanceof tf.Tensor) x.dispose();
      return y;
    },
    gatedResidual(s, y, gate) {
      return base.gatedResidual(s, rowsTensor(y, { B, S, D }), gate);
    },
  };
}
