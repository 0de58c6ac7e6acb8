// The training loss (CogVideoX-Fun scripts/train.py:1605-1611): mean squared error over every element of the
// prediction (B, f, C, h, w) in float32 — no loss mask, conditioning frames included — and, with --motion_sub_loss on
// more than 2 latent frames, a blend with the MSE of frame-to-frame differences:
//   loss = (1 − r)·mse(pred, target) + r·mse(pred[:, 1:] − pred[:, :−1], target[:, 1:] − target[:, :−1]).
// Differentiable (tf ops only): call inside tf.variableGrads / tf.grads.
import * as tf from '@tensorflow/tfjs-core';

export interface LossOptions {
  /** --motion_sub_loss */
  motionSubLoss?: boolean;
  /** --motion_sub_loss_ratio (default 0.25) */
  motionSubLossRatio?: number;
}

export function mse(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.mean(tf.square(tf.sub(a, b))) as tf.Scalar;
}

/** The step's loss; `pred` and `target` are [B, f, C, h, w]. */
export function trainingLoss(pred: tf.Tensor, target: tf.Tensor, o: LossOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const base = mse(pred, target);
    const frames = pred.shape[1]!;
    if (!o.motionSubLoss || frames <= 2) return base;
    const r = o.motionSubLossRatio ?? 0.25;
    const diff = (x: tf.Tensor) => tf.sub(tf.slice(x, [0, 1], [-1, frames - 1]), tf.slice(x, [0, 0], [-1, frames - 1]));
    const sub = mse(diff(pred), diff(target));
    return tf.add(tf.mul(base, 1 - r), tf.mul(sub, r)) as tf.Scalar;
  });
}
