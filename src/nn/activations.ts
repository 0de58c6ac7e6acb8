import * as tf from '@tensorflow/tfjs-core';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh approximation (torch `gelu(approximate="tanh")`, HF `gelu_new`):
 * 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), computed as x·sigmoid(2·√(2/π)(x + 0.044715x³)) — the same function
 * (0.5(1+tanh z) = sigmoid(2z)); sigmoid is ~8× faster than tanh on wasm.
 */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), 2 * SQRT_2_OVER_PI);
    return tf.mul(x, tf.sigmoid(inner));
  });
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}
