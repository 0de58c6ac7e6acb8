// One training step of the demo VAE: loss = rec + klWeight · 0.5·mean(μ² + σ² − 1 − log σ²), rec = mean|x − x̂|
// (l1), mean (x − x̂)² (mse) or their sum (l1+mse), with x̂ decoded
// from a posterior sample (pixels in [−1, 1]), gradients of every parameter by tf.variableGrads through the VAE's
// tensor-op path (parameters given as overrides by checkpoint name), then one AdamW update.
import * as tf from '@tensorflow/tfjs-core';
import type { AutoencoderKLCogVideoX } from '../../src/models/vae.js';
import type { AdamW } from './vae_state.js';

export interface StepResult {
  loss: number;
  rec: number;
  kl: number;
  /** Global L2 norm of the gradients (before the update; no clipping). */
  gradNorm: number;
}

/** x [B, 3, F, H, W] in [−1, 1]; `noiseSeed` seeds the posterior sample; `step` counts from 1 (AdamW's bias correction). */
export type RecLoss = 'l1' | 'mse' | 'l1+mse';

export function trainStep(vae: AutoencoderKLCogVideoX, opt: AdamW, x: tf.Tensor5D, klWeight: number, noiseSeed: number, step: number, recLoss: RecLoss = 'l1'): StepResult {
  const params = opt.params;
  const lookup = (n: string) => params.get(n);
  let rec = 0;
  let kl = 0;
  const { value, grads } = tf.variableGrads(() => {
    const post = vae.encode(x, { params: lookup });
    const z = post.sample({ seed: noiseSeed });
    const xHat = vae.decode(z, { params: lookup });
    const d = tf.sub(xHat, x);
    const l1 = () => tf.mean(tf.abs(d));
    const mse = () => tf.mean(tf.square(d));
    const r = recLoss === 'l1' ? l1() : recLoss === 'mse' ? mse() : tf.add(l1(), mse());
    const k = tf.mul(tf.mean(tf.sub(tf.sub(tf.add(tf.square(post.mean), tf.exp(post.logvar)), 1), post.logvar)), 0.5);
    post.dispose();
    rec = r.dataSync()[0]!;
    kl = k.dataSync()[0]!;
    return tf.add(r, tf.mul(k, klWeight)) as tf.Scalar;
  }, [...params.values()]);
  const byName = new Map<string, tf.Tensor>();
  for (const [n, p] of params) byName.set(n, grads[p.name]!);
  const sq = tf.tidy(() => tf.addN([...byName.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0]!);
  opt.apply(byName, step);
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, rec, kl, gradNorm: Math.sqrt(sq) };
}
