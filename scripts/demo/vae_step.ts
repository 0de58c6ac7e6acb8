// One training step of the demo VAE: loss = rec + klWeight · 0.5·mean(μ² + σ² − 1 − log σ²), rec an object-weighted
// mean of |x − x̂| (l1), (x − x̂)² (mse) or their sum (l1+mse): Σ w·e / Σ w with per-pixel weights w (1 on the
// background, 1 + λ on the object, see objectWeights), so the few object pixels are not outvoted by the background.
// x̂ is decoded from a posterior sample, or from the posterior mean (`decodeMean`, a deterministic warm-up: with
// σ ≈ 1 at initialisation the sample is mostly noise and the decoder learns to ignore z). Pixels in [−1, 1];
// gradients of every parameter by tf.variableGrads through the VAE's tensor-op path (parameters given as overrides
// by checkpoint name), then one AdamW update.
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

export type RecLoss = 'l1' | 'mse' | 'l1+mse';

export interface StepOptions {
  /** Per-pixel weights [B, 1, F, H, W] (broadcast over channels); none = plain mean. */
  weights?: tf.Tensor5D;
  /** Decode the posterior mean instead of a sample. */
  decodeMean?: boolean;
  /** Train the decoder only: the encoder runs outside the gradient tape and its parameters stay as they are (the
   *  latents the transformer is trained on do not move while the decoder goes on learning). */
  freezeEncoder?: boolean;
  /** Scale the gradients down to this global norm when above it (0 / undefined: never). */
  maxGradNorm?: number;
}

/**
 * Pixel weights of a batch laid out [B, 3, F, H, W] (`x`, values as given) against each sample's background colour
 * `bg[b]` (same units): 1 + λ where any channel differs from the background (the object, with its anti-aliased
 * edge), else 1; plus `edge` (μ) on the outline, both sides. Returned [B, 1, F, H, W] flat.
 */
export function objectWeights(
  x: Float32Array,
  shape: readonly [number, number, number, number, number],
  bg: readonly (readonly number[])[],
  lambda: number,
  edge = 0,
): Float32Array {
  const [B, C, F, H, W] = shape;
  const plane = F * H * W;
  const mask = new Uint8Array(B * plane);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const base = (b * C + c) * plane;
      const v = bg[b]![c]!;
      for (let i = 0; i < plane; i++) if (x[base + i] !== v) mask[b * plane + i] = 1;
    }
  }
  const w = new Float32Array(B * plane);
  for (let i = 0; i < w.length; i++) w[i] = mask[i] ? 1 + lambda : 1;
  if (edge > 0) {
    // + μ on both sides of the object's outline (a pixel whose 3×3 neighbourhood in its frame holds both object and
    // background): corners and a triangle's tip are few pixels, and blurring them away costs the shape (README)
    for (let f = 0; f < B * F; f++) {
      const o = f * H * W;
      for (let y = 0; y < H; y++) {
        for (let xx = 0; xx < W; xx++) {
          const m = mask[o + y * W + xx];
          let boundary = false;
          for (let dy = -1; dy <= 1 && !boundary; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const yy = y + dy, xn = xx + dx;
              if (yy < 0 || yy >= H || xn < 0 || xn >= W) continue;
              if (mask[o + yy * W + xn] !== m) {
                boundary = true;
                break;
              }
            }
          }
          if (boundary) w[o + y * W + xx]! += edge;
        }
      }
    }
  }
  return w;
}

/** The learning rate of step `step` (from 0): `lr`, or from step `decayFrom` a cosine decay to `lrFinal` at `steps`. */
export function lrAt(o: { lr: number; lrFinal?: number; decayFrom?: number; steps: number }, step: number): number {
  if (o.lrFinal === undefined || o.decayFrom === undefined || step < o.decayFrom) return o.lr;
  const t = o.steps > o.decayFrom ? Math.min(1, (step - o.decayFrom) / (o.steps - o.decayFrom)) : 1;
  return o.lrFinal + (o.lr - o.lrFinal) * 0.5 * (1 + Math.cos(Math.PI * t));
}

/** The reconstruction term: (weighted) mean of the per-element error `d` = x̂ − x. */
export function recLossOf(d: tf.Tensor, kind: RecLoss, weights?: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const e = kind === 'l1' ? tf.abs(d) : kind === 'mse' ? tf.square(d) : tf.add(tf.abs(d), tf.square(d));
    if (!weights) return tf.mean(e);
    // Σ w·e / Σ w over every element (w broadcast over channels): a mean where object pixels count 1 + λ times.
    const wb = tf.broadcastTo(weights, d.shape);
    return tf.div(tf.sum(tf.mul(e, wb)), tf.sum(wb));
  });
}

/**
 * The gradients' global norm, and when it is above `max` (> 0) new gradients scaled by torch's clip_grad_norm_
 * coefficient max / (norm + 1e-6) (the caller disposes them; null when nothing was clipped). The same rule as
 * src/training/clip.ts clipGradNorm, which works on host arrays; this one keeps the VAE's gradients on the backend.
 */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, max: number): { norm: number; clipped: Map<string, tf.Tensor> | null } {
  const norm = Math.sqrt(tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0]!));
  const coef = max / (norm + 1e-6);
  if (!(max > 0) || coef >= 1) return { norm, clipped: null };
  return { norm, clipped: new Map([...grads].map(([n, g]) => [n, tf.mul(g, coef)])) };
}

/** x [B, 3, F, H, W] in [−1, 1]; `noiseSeed` seeds the posterior sample; `step` counts from 1 (AdamW's bias correction). */
export function trainStep(vae: AutoencoderKLCogVideoX, opt: AdamW, x: tf.Tensor5D, klWeight: number, noiseSeed: number, step: number, recLoss: RecLoss = 'l1', so: StepOptions = {}): StepResult {
  const params = opt.params;
  const lookup = (n: string) => params.get(n);
  let rec = 0;
  let kl = 0;
  // frozen encoder: z from outside the tape, no KL (nothing it could change)
  const frozenZ = so.freezeEncoder
    ? tf.tidy(() => {
        const post = vae.encode(x, { params: lookup });
        return so.decodeMean ? post.mode() : post.sample({ seed: noiseSeed });
      })
    : null;
  // the decoder's side only (quant_conv, when a config has one, belongs to the encoder's side)
  const trained = [...params.entries()].filter(([n]) => !so.freezeEncoder || !(n.startsWith('encoder.') || n.startsWith('quant_conv.')));
  let value: tf.Scalar;
  let grads: tf.NamedTensorMap;
  try {
    ({ value, grads } = tf.variableGrads(() => {
      if (frozenZ) {
        const r = recLossOf(tf.sub(vae.decode(frozenZ, { params: lookup }), x), recLoss, so.weights);
        rec = r.dataSync()[0]!;
        return r;
      }
      const post = vae.encode(x, { params: lookup });
      const z = so.decodeMean ? post.mode() : post.sample({ seed: noiseSeed });
      const xHat = vae.decode(z, { params: lookup });
      const r = recLossOf(tf.sub(xHat, x), recLoss, so.weights);
      const k = tf.mul(tf.mean(tf.sub(tf.sub(tf.add(tf.square(post.mean), tf.exp(post.logvar)), 1), post.logvar)), 0.5);
      post.dispose();
      rec = r.dataSync()[0]!;
      kl = k.dataSync()[0]!;
      return tf.add(r, tf.mul(k, klWeight)) as tf.Scalar;
    }, trained.map(([, p]) => p)));
  } finally {
    frozenZ?.dispose();
  }
  const byName = new Map<string, tf.Tensor>();
  for (const [n, p] of trained) byName.set(n, grads[p.name]!);
  const { norm, clipped } = clipByGlobalNorm(byName, so.maxGradNorm ?? 0);
  opt.apply(clipped ?? byName, step);
  if (clipped) tf.dispose([...clipped.values()]);
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, rec, kl, gradNorm: norm };
}
