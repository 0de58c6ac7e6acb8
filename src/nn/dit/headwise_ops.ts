// The DiT block's operations for the wasm backend: attention without any [B, H, S, hd] intermediate (its heap is
// 4 GiB). For each sequence and head, q/k/v come from that head's weight columns, get the q/k LayerNorm and RoPE,
// attend in query blocks, and are projected back through that head's rows of the output weight into one
// accumulator. Same numbers as the batched form. Everything else is tf_ops.ts.
import * as tf from '@tensorflow/tfjs-core';
import { attention } from '../attention.js';
import { addBias, linearColumns, linearRows, type Linear } from '../linear.js';
import { layerNorm } from '../norm.js';
import { applyRotary } from '../rope.js';
import { tensorOps, type TensorOpsOptions, type TensorStream } from './tf_ops.js';
import type { BlockOps, NormWeights } from './types.js';

export function headwiseOps(o: TensorOpsOptions): BlockOps<TensorStream, tf.Tensor3D> {
  const { B, Lt, N, heads: H, headDim: hd } = o.shape;
  const S = Lt + N;
  const D = H * hd;
  return {
    ...tensorOps(o),
    name: 'tensorflow ops, attention head by head',
    jointAttention(s, w, rope, emit, prefix) {
      const outs: tf.Tensor[] = [];
      const qs: tf.Tensor[] = [];
      const ks: tf.Tensor[] = [];
      try {
        for (let b = 0; b < B; b++) {
          let acc: tf.Tensor2D | null = null;
          const sb = tf.tidy(() => tf.reshape(tf.slice(s, [b, 0, 0], [1, S, D]), [S, D]) as tf.Tensor2D);
          for (let h = 0; h < H; h++) {
            const part = tf.tidy(() => {
              const proj = (lin: Linear, norm: NormWeights | null): tf.Tensor2D => {
                let t = linearColumns(sb, lin, h * hd, hd);
                if (norm) t = layerNorm(t, norm.w, norm.b, w.qkEps) as tf.Tensor2D;
                if (norm && rope) t = tf.concat([tf.slice(t, [0, 0], [Lt, hd]), applyRotary(tf.slice(t, [Lt, 0], [N, hd]), rope.cos, rope.sin)], 0);
                return t;
              };
              const q = proj(w.q, w.normQ);
              const k = proj(w.k, w.normK);
              if (emit) {
                qs.push(tf.keep(tf.clone(q)));
                ks.push(tf.keep(tf.clone(k)));
              }
              const v = proj(w.v, null);
              const as4 = (t: tf.Tensor2D) => tf.reshape(t, [1, 1, S, hd]) as tf.Tensor4D;
              const a = attention(as4(q), as4(k), as4(v), { scale: 1 / Math.sqrt(hd), scratchBytes: o.attentionScratchBytes, fused: o.fusedAttention });
              return linearRows(tf.reshape(a, [S, hd]) as tf.Tensor2D, w.out, h * hd, hd);
            });
            const next: tf.Tensor2D = acc ? (tf.add(acc, part) as tf.Tensor2D) : part;
            if (acc) {
              acc.dispose();
              part.dispose();
            }
            acc = next;
          }
          sb.dispose();
          outs.push(addBias(acc!, w.out));
          acc!.dispose();
        }
      } finally {
        s.dispose();
      }
      const out = tf.tidy(() => tf.reshape(tf.concat(outs, 0), [B, S, D])) as tf.Tensor3D;
      tf.dispose(outs);
      if (emit) {
        const gather = (list: tf.Tensor[]) => tf.tidy(() => tf.reshape(tf.stack(list), [B, H, S, hd]));
        const q4 = gather(qs);
        const k4 = gather(ks);
        emit(`${prefix}.q`, q4);
        emit(`${prefix}.k`, k4);
        emit(`${prefix}.out`, out);
        tf.dispose([q4, k4, ...qs, ...ks]);
      }
      return out;
    },
  };
}
