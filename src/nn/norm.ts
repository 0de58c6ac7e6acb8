import * as tf from '@tensorflow/tfjs-core';
import { nativeLinear, nativeThreads } from './native.js';

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

/**
 * The DiT's modulated LayerNorm, layerNorm(x)·(1 + scale) + shift for x [B, R, D] and scale/shift [B, 1, D], by the
 * native kernel straight into rows offset … offset+R of each batch item's block of `out` (host [B, outRows, D]),
 * where the native GEMM reads it. Same operation order as layerNorm() and the transformer's modulate().
 * Needs the addon (nativeLinear() non-null).
 */
export function modulatedLayerNormInto(
  x: tf.Tensor3D,
  weight: tf.Tensor1D | null,
  bias: tf.Tensor1D | null,
  eps: number,
  scale: tf.Tensor,
  shift: tf.Tensor,
  out: Float32Array,
  outRows: number,
  offset: number,
): void {
  const native = nativeLinear();
  if (!native) throw new Error('modulatedLayerNormInto needs the native addon (npm run setup:native)');
  const [B, R, D] = x.shape;
  if (scale.size !== B * D || shift.size !== B * D) {
    throw new Error(`modulatedLayerNormInto: scale [${scale.shape.join(', ')}] / shift [${shift.shape.join(', ')}] for x [${x.shape.join(', ')}]`);
  }
  const f32 = (t: tf.Tensor | null) => (t ? (t.dataSync() as Float32Array) : null);
  native.adaLayerNorm(f32(x)!, B, R, D, eps, f32(weight), f32(bias), f32(scale)!, f32(shift)!, out, outRows, offset, nativeThreads());
}
