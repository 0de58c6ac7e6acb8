// The inpaint conditioning of a training step (CogVideoX-Fun scripts/train.py:1438-1490): the t2v rule, the VAE
// posterior sample, the reference-noise augmentation and the assembly of `inpaint_latents`.
import * as tf from '@tensorflow/tfjs-core';
import { expF32, f32 } from '../schedulers/scheduler.js';
import type { TrainingRandom } from './random.js';

/**
 * train.py:1438-1447: a sample whose mask is all 1 (text-to-video) gets flag 0 with probability 0.9, else 1. The
 * np.random.rand() draw happens only for fully-masked samples (Python's short-circuit `and`).
 * `masks[b]` is sample b's mask after frame truncation.
 */
export function t2vFlags(masks: readonly ArrayLike<number>[], rng: TrainingRandom): number[] {
  return masks.map((m) => {
    let full = m.length > 0;
    for (let i = 0; i < m.length && full; i++) full = m[i] === 1;
    return full && rng.npRand() < 0.9 ? 0 : 1;
  });
}

/**
 * DiagonalGaussianDistribution(moments).sample() (diffusers models/autoencoders/vae.py:780-802): moments [B, 2C, …]
 * split into mean and log-variance along axis 1, logvar clamped to [−30, 20], mean + exp(0.5·logvar)·ε.
 */
export function samplePosterior(moments: tf.Tensor, eps: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [mean, logvar] = tf.split(moments, 2, 1) as [tf.Tensor, tf.Tensor];
    const std = tf.exp(tf.mul(tf.clipByValue(logvar, -30, 20), 0.5));
    return tf.add(mean, tf.mul(std, eps));
  });
}

/**
 * add_noise_to_reference_video(image) with ratio=None (cogvideox/pipeline/pipeline_cogvideox_inpaint.py:275-285):
 * σ_b = exp(N(−3, 0.5)) per sample, noise = randn_like(image)·σ_b, zero where the pixel is exactly −1 (masked; also
 * genuinely black pixels), image + noise. `image` is [B, F, 3, H, W] host float32; returns a new array.
 */
export function addNoiseToReferenceVideo(image: Float32Array, shape: readonly number[], rng: TrainingRandom): Float32Array {
  const B = shape[0]!;
  const per = image.length / B;
  const sigma = rng.torchNormal(-3.0, 0.5, B).map((s) => expF32(s));
  const noise = rng.randn(shape);
  const out = new Float32Array(image.length);
  for (let b = 0; b < B; b++) {
    const s = sigma[b]!;
    for (let i = b * per; i < (b + 1) * per; i++) {
      const x = image[i]!;
      out[i] = x === -1 ? f32(x + 0) : f32(x + f32(noise[i]! * s));
    }
  }
  return out;
}

/**
 * train.py:1483-1490: cat([mask, maskLatents], channels) · t2v_flag · scaling_factor, then b c f h w → b f c h w.
 * `mask` [B, 1, f, h, w] is the resized keep-mask (1 − mask, resize_mask); `maskLatents` [B, C, f, h, w] the VAE
 * sample of the masked video (not scaled). Both the mask channel and the latents are multiplied by sf.
 */
export function inpaintLatents(mask: tf.Tensor, maskLatents: tf.Tensor, flags: readonly number[], scalingFactor: number): tf.Tensor5D {
  return tf.tidy(() => {
    const cat = tf.concat([mask, maskLatents], 1);
    const flag = tf.tensor(Float32Array.from(flags), [flags.length, 1, 1, 1, 1]);
    return tf.transpose(tf.mul(tf.mul(flag, cat), f32(scalingFactor)), [0, 2, 1, 3, 4]) as tf.Tensor5D;
  });
}
