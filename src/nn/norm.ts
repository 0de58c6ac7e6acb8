import * as tf from '@tensorflow/tfjs-core';
import { nativeLinear, nativeThreads } from './native.js';
import { tapeIsRecording } from './tape.js';

/** T5 RMSNorm: x·rsqrt(mean(x²) + eps)·g over the last axis; no mean subtraction, no bias (fp32 throughout). */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
  });
}

/** LayerNorm over the last axis (biased variance, as torch), optional affine. */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D | null, bias: tf.Tensor1D | null, eps: number): tf.Tensor {
  if (tapeIsRecording()) return layerNormWithGrad(eps, weight !== null, bias !== null)(...[x, weight, bias].filter((t): t is tf.Tensor => t !== null));
  return tf.tidy(() => layerNormForward(x, weight, bias, eps).y);
}

function layerNormForward(x: tf.Tensor, weight: tf.Tensor | null, bias: tf.Tensor | null, eps: number): { y: tf.Tensor; xhat: tf.Tensor; rstd: tf.Tensor } {
  const { mean, variance } = tf.moments(x, -1, true);
  const rstd = tf.rsqrt(tf.add(variance, eps));
  const xhat = tf.mul(tf.sub(x, mean), rstd);
  let y = xhat;
  if (weight) y = tf.mul(y, weight);
  if (bias) y = tf.add(y, bias);
  return { y, xhat, rstd };
}

const withGrad = new Map<string, (...inputs: tf.Tensor[]) => tf.Tensor>();

/**
 * layerNorm under a gradient tape: the same forward ops (the same bits), and the textbook backward
 * dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w; dw = Σ dy·x̂, db = Σ dy over the leading axes — 13 kernels where
 * autodiff through tf.moments, the broadcasts and their casts runs about 40 (TensorFlow's per-kernel cost dominates
 * the demo transformer's training step: ~6000 kernels, mostly small element-wise ones).
 */
function layerNormWithGrad(eps: number, hasWeight: boolean, hasBias: boolean): (...inputs: tf.Tensor[]) => tf.Tensor {
  const key = `${eps}|${hasWeight}|${hasBias}`;
  let f = withGrad.get(key);
  if (!f) {
    f = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const save = args.pop() as tf.GradSaveFunc;
      const [x, weight, bias] = [args[0] as tf.Tensor, hasWeight ? (args[1] as tf.Tensor) : null, hasBias ? (args[hasWeight ? 2 : 1] as tf.Tensor) : null];
      const { y, xhat, rstd } = layerNormForward(x, weight, bias, eps);
      save(weight ? [xhat, rstd, weight] : [xhat, rstd]);
      return {
        value: y,
        // tfjs calls a custom gradient outside any per-node tidy: without this one its intermediates would live
        // until the whole backward pass ends
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const [xh, r, w] = saved as [tf.Tensor, tf.Tensor, tf.Tensor | undefined];
            const D = xh.shape[xh.rank - 1]!;
            const g = w ? tf.mul(dy, w) : dy;
            const dx = tf.mul(tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(xh, tf.mean(tf.mul(g, xh), -1, true))), r);
            const rows = (t: tf.Tensor) => tf.reshape(t, [-1, D]);
            const grads = [dx];
            if (hasWeight) grads.push(tf.sum(rows(tf.mul(dy, xh)), 0));
            if (hasBias) grads.push(tf.sum(rows(dy), 0));
            return grads;
          }),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...inputs: tf.Tensor[]) => tf.Tensor;
    withGrad.set(key, f);
  }
  return f;
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
