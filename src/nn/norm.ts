import * as tf from '@tensorflow/tfjs-core';

/** T5 RMSNorm: x·rsqrt(mean(x²) + eps)·g over the last axis; no mean subtraction, no bias (fp32 throughout). */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
  });
}

/** LayerNorm over the last axis (biased variance, as torch), optional affine. */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D | null, bias: tf.Tensor1D | null, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    if (weight) y = tf.mul(y, weight);
    if (bias) y = tf.add(y, bias);
    return y;
  });
}
