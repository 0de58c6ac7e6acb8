// Gradient clipping of the training scripts.
// - torch.nn.utils.clip_grad_norm_(params, max_norm, 2) as accelerate calls it: total = ‖(‖g_i‖₂)_i‖₂,
//   coef = max_norm / (total + 1e-6) clamped to ≤ 1, every gradient multiplied by coef (always, even at 1), in float32.
// - CogVideoX-Fun scripts/train.py:1619-1637 (full fine-tune, non-DeepSpeed): the max norm itself decays linearly from
//   max_grad_norm·initial_grad_norm_ratio to max_grad_norm over abnormal_norm_clip_start steps (linear_decay,
//   train.py:267-273), and after that step a norm above 5× the threshold clips to threshold / min(total/threshold, 10).
// - train_lora.py:1566-1567: the plain clip with max_grad_norm.
import { f32 } from '../schedulers/scheduler.js';

export type Grads = ReadonlyMap<string, Float32Array>;

/** ‖g‖₂ of one tensor: accumulated in double, rounded to float32 (torch reduces in float32 with a different order). */
export function tensorNorm(g: Float32Array): number {
  let s = 0;
  for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
  return f32(Math.sqrt(s));
}

/** The global 2-norm over all gradients (norm of the per-tensor norms). */
export function totalNorm(grads: Grads): number {
  let s = 0;
  for (const g of grads.values()) {
    const n = tensorNorm(g);
    s += n * n;
  }
  return f32(Math.sqrt(s));
}

/** train.py's linear_decay(initial, final, total_steps, current_step). */
export function linearDecay(initial: number, final: number, totalSteps: number, currentStep: number): number {
  if (currentStep >= totalSteps) return final;
  const step = Math.max(0, currentStep);
  return initial + ((final - initial) / totalSteps) * step;
}

export interface AdaptiveClipOptions {
  maxGradNorm: number;
  /** --initial_grad_norm_ratio (default 5) */
  initialGradNormRatio: number;
  /** --abnormal_norm_clip_start (default 1000) */
  abnormalNormClipStart: number;
}

/** The max norm train.py passes to clip_grad_norm_ at `globalStep` (completed steps before this one). */
export function adaptiveMaxNorm(total: number, globalStep: number, o: AdaptiveClipOptions): { threshold: number; actual: number } {
  const threshold = linearDecay(o.maxGradNorm * o.initialGradNormRatio, o.maxGradNorm, o.abnormalNormClipStart, globalStep);
  // `total / max_grad_norm` is a float32 0-d tensor; Python's min() with 10 keeps the tensor unless 10 is smaller
  const ratio = f32(total / f32(threshold));
  if (ratio > 5 && globalStep > o.abnormalNormClipStart) {
    return { threshold, actual: ratio > 10 ? threshold / 10 : f32(f32(threshold) / ratio) };
  }
  return { threshold, actual: threshold };
}

/**
 * clip_grad_norm_ in place; returns the total norm before clipping and the coefficient applied. `total` is that norm
 * if the caller has it already (train.py's adaptive bound needs it first; torch recomputes the same value).
 */
export function clipGradNorm(grads: Grads, maxNorm: number, total = totalNorm(grads)): { total: number; coef: number } {
  const coef = Math.min(f32(f32(maxNorm) / f32(total + f32(1e-6))), 1);
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] = f32(g[i]! * coef);
  return { total, coef };
}
