// Rotary position embedding, diffusers `apply_rotary_emb(use_real=True, unbind_dim=-1)`: for each pair (2k, 2k+1),
//   out[2k]   = x[2k]·cos − x[2k+1]·sin
//   out[2k+1] = x[2k+1]·cos + x[2k]·sin
// written as x·cos + swap(x)·sin± with swap exchanging the two members of every pair and sin± = (−sin, +sin).
import * as tf from '@tensorflow/tfjs-core';

/** x [..., N, d]; cos/sin [N, d] (pairs share a frequency). */
export function applyRotary<T extends tf.Tensor>(x: T, cos: tf.Tensor2D, sin: tf.Tensor2D): T {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1]!;
    const swapped = tf.reshape(tf.reverse(tf.reshape(x, [...x.shape.slice(0, -1), d / 2, 2]), -1), x.shape);
    const sign = tf.tensor1d(Float32Array.from({ length: d }, (_, i) => (i % 2 === 0 ? -1 : 1)));
    return tf.add(tf.mul(x, cos), tf.mul(swapped, tf.mul(sin, sign))) as T;
  });
}
