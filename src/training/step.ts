// One training step's math, in CogVideoX-Fun's order (scripts/train.py:1438-1611, ≡ train_lora.py:1385-1558):
//   t2v flags (np.rand per fully-masked sample) → latents = VAE posterior sample · sf → inpaint: keep-mask = 1 − mask,
//   resize_mask; reference noise on the masked video (if the checkpoint says add_noise_in_inpaint_model); its VAE
//   posterior sample (not scaled); cat, · t2v flag, · sf → noise ~ N(0, 1) of the latents' shape → timesteps ~ U{0..N−1}
//   → noisy = add_noise, target = v (or ε) → prediction = transformer(noisy, text, t, inpaint) → MSE in float32.
// The draws go through `TrainingRandom` in exactly that order. Gradients come from the tape over the tensors given as
// trainables (full fine-tune: the transformer's own weights; LoRA: the factors, applied as W + s·up·down).
import * as tf from '@tensorflow/tfjs-core';
import { addNoiseToReferenceVideo, inpaintLatents, samplePosterior, t2vFlags } from './inpaint.js';
import { resizeMask } from './masks.js';
import { trainingLoss, type LossOptions } from './objective.js';
import type { TrainingRandom } from './random.js';
import type { LoraNetwork } from './lora.js';
import type { NoiseSchedule } from './schedule.js';

/** What the step needs of the transformer (src/models/transformer.ts). */
export interface TrainableTransformer {
  forward(
    inputs: {
      hiddenStates: tf.Tensor5D;
      encoderHiddenStates: tf.Tensor3D;
      timestep: tf.Tensor | number[];
      inpaintLatents?: tf.Tensor5D;
    },
    opts?: { params?: (name: string) => tf.Tensor | undefined; differentiable?: boolean; gradientCheckpointing?: boolean },
  ): tf.Tensor5D;
}

export interface InpaintBatch {
  /** Per sample, the [F, 1, H, W] mask (1 = generate) after frame truncation. */
  masks: Uint8Array[];
  /** [B, F, 3, H, W] pixels with the masked area at −1 (collate_fn's mask_pixel_values), host float32. */
  maskPixelValues: Float32Array;
  /** F, H, W of the pixels. */
  pixelShape: [number, number, number];
  /** VAE encoder: [B, F, 3, H, W] pixels → posterior moments [B, 2C, f, h, w] (caller's VAE; cached or live). Rows
   *  whose t2v flag is 0 only need finite moments (their inpaint latents are multiplied by 0): maskedVideoMoments. */
  encode(pixels: Float32Array, shape: readonly number[], t2vFlags: readonly number[]): tf.Tensor5D;
}

export interface StepBatch {
  /** VAE posterior moments of the pixels, [B, 2C, f, h, w] (b c f h w, as the encoder returns them). */
  moments: tf.Tensor5D;
  /** T5 output [B, L, D]. */
  promptEmbeds: tf.Tensor3D;
  inpaint?: InpaintBatch;
}

export interface StepContext {
  schedule: NoiseSchedule;
  scalingFactor: number;
  /** transformer config.add_noise_in_inpaint_model */
  addNoiseInInpaintModel: boolean;
  rng: TrainingRandom;
  loss?: LossOptions;
}

/** The step's inputs to the transformer; all tensors owned by the caller (dispose with `disposePrepared`). */
export interface PreparedStep {
  latents: tf.Tensor5D; // [B, f, C, h, w], scaled
  inpaintLatents: tf.Tensor5D | null; // [B, f, 1 + C, h, w]
  noise: tf.Tensor5D;
  noisyLatents: tf.Tensor5D;
  target: tf.Tensor5D;
  timesteps: number[];
  t2vFlags: number[] | null;
}

/** Everything before the forward (no gradients needed). */
export function prepareStep(batch: StepBatch, ctx: StepContext): PreparedStep {
  const { rng, schedule } = ctx;
  const [B, C2, f, h, w] = batch.moments.shape;
  const C = C2 / 2;
  const flags = batch.inpaint ? t2vFlags(batch.inpaint.masks, rng) : null;
  const latentsBcfhw = tf.tidy(() => tf.mul(samplePosterior(batch.moments, tf.tensor(rng.randn([B, C, f, h, w]), [B, C, f, h, w])), ctx.scalingFactor));
  let inpaint: tf.Tensor5D | null = null;
  if (batch.inpaint) {
    const ib = batch.inpaint;
    const [F, H, W] = ib.pixelShape;
    const keep = new Float32Array(B * F * H * W);
    ib.masks.forEach((m, b) => {
      if (m.length !== F * H * W) throw new Error(`inpaint mask ${b}: ${m.length} values, expected ${F}×${H}×${W}`);
      for (let i = 0; i < m.length; i++) keep[b * F * H * W + i] = 1 - m[i]!;
    });
    const resized = resizeMask(keep, [B, 1, F, H, W], [f, h, w]);
    const shape = [B, F, 3, H, W];
    const pixels = ctx.addNoiseInInpaintModel ? addNoiseToReferenceVideo(ib.maskPixelValues, shape, rng) : ib.maskPixelValues;
    const maskMoments = ib.encode(pixels, shape, flags!);
    try {
      inpaint = tf.tidy(() => {
        const maskLatents = samplePosterior(maskMoments, tf.tensor(rng.randn([B, C, f, h, w]), [B, C, f, h, w]));
        return inpaintLatents(tf.tensor(resized, [B, 1, f, h, w]), maskLatents, flags!, ctx.scalingFactor);
      });
    } finally {
      if (maskMoments !== batch.moments) maskMoments.dispose();
    }
  }
  const latents = tf.transpose(latentsBcfhw, [0, 2, 1, 3, 4]) as tf.Tensor5D;
  latentsBcfhw.dispose();
  const noise = tf.tensor(rng.randn(latents.shape), latents.shape) as tf.Tensor5D;
  const timesteps = schedule.sampleTimesteps(rng, B);
  const noisyLatents = schedule.addNoise(latents, noise, timesteps) as tf.Tensor5D;
  const target = schedule.target(latents, noise, timesteps) as tf.Tensor5D;
  return { latents, inpaintLatents: inpaint, noise, noisyLatents, target, timesteps, t2vFlags: flags };
}

/**
 * The posterior moments of the masked video (train.py:1483) from `encode` (the VAE), running it only where the result
 * can matter. A row that is −1 everywhere (a mask covering every pixel: collate_fn's mask_pixel_values, and
 * add_noise_to_reference_video leaves −1 pixels as they are) has the same encoding as every other such row of its
 * shape (`blank` caches it), and with t2v_flag 0 (90 % of full masks, train.py:1440-1447) its inpaint latents are
 * multiplied by 0 whatever the encoding is: it gets zero moments. The posterior sample still draws every row's noise,
 * so the random stream is the original's (a VAE output of NaN / Inf would reach the original through NaN·0; here it
 * is 0). Preparing the batch, mostly this encoding, was 65–80 % of the demo transformer's step (train_log.jsonl
 * `seconds.prepare`, batch 8 and 16); a fifth of video masks and 80 % of image masks are full (get_random_mask,
 * dataset_image_video.py:29-31).
 *
 * `stored` (optional) takes the rows it marks (content rows only) from a per-row encoder instead — the trainer's disk
 * cache keyed by the exact pixels, for masks that repeat (mask types 2 and 3 keep the first / first and last k ≤ 4
 * frames of a clip whose pixels are fixed). A stored row is always encoded alone, so whether it came from the cache
 * or not its moments are the same bits (a row encoded inside a batch differs by up to ~1e-4: oneDNN's convolutions
 * block differently by batch size).
 */
export function maskedVideoMoments(
  encode: (pixels: Float32Array, shape: readonly number[]) => tf.Tensor5D,
  pixels: Float32Array,
  shape: readonly number[],
  flags: readonly number[],
  blank: Map<string, tf.Tensor5D>,
  stored?: { rows: readonly boolean[]; moments: (pixels: Float32Array, shape: readonly number[]) => { data: Float32Array; shape: readonly number[] } },
): tf.Tensor5D {
  const B = shape[0]!;
  const per = pixels.length / B;
  const full = Array.from({ length: B }, (_, b) => pixels.subarray(b * per, (b + 1) * per).every((v) => v === -1));
  const kept = full.map((f, b) => !f && stored?.rows[b] === true);
  if (!full.some(Boolean) && !kept.some(Boolean)) return encode(pixels, shape);
  const rows = full.flatMap((f, b) => (f || kept[b] ? [] : [b]));
  const gathered = new Float32Array(rows.length * per);
  rows.forEach((b, k) => gathered.set(pixels.subarray(b * per, (b + 1) * per), k * per));
  const sub = rows.length ? encode(gathered, [rows.length, ...shape.slice(1)]) : null;
  const row = (b: number) => stored!.moments(pixels.subarray(b * per, (b + 1) * per), [1, ...shape.slice(1)]);
  const key = shape.slice(1).join('x');
  try {
    const fromStore = new Map(kept.flatMap((s, b) => (s ? [[b, row(b)] as const] : [])));
    // the blank encoding is needed by a full row with flag 1, and for its output shape when every row is full
    const needBlank = full.some((f, b) => f && flags[b] !== 0) || (!sub && fromStore.size === 0);
    if (needBlank && !blank.has(key)) blank.set(key, tf.keep(encode(new Float32Array(per).fill(-1), [1, ...shape.slice(1)])));
    return tf.tidy(() => {
      const first = fromStore.values().next().value;
      const o = sub ? sub.shape.slice(1) : first ? first.shape.slice(1) : blank.get(key)!.shape.slice(1);
      let k = 0;
      const pieces = full.map((f, b) => {
        const s = fromStore.get(b);
        if (s) return tf.tensor(s.data, [1, ...o]);
        return !f ? tf.slice(sub!, [k++, 0, 0, 0, 0], [1, ...o]) : flags[b] !== 0 ? blank.get(key)! : tf.zeros([1, ...o]);
      });
      return tf.concat(pieces, 0) as tf.Tensor5D;
    });
  } finally {
    sub?.dispose();
  }
}

export function disposePrepared(p: PreparedStep): void {
  tf.dispose([p.latents, p.noise, p.noisyLatents, p.target]);
  p.inpaintLatents?.dispose();
}

/**
 * How the trainables enter the forward: `lookup(name, xs)` gives the tensor for a checkpoint name (or undefined for
 * the stored weight), built from the tape's inputs `xs` (in `names` order).
 */
export interface Trainables {
  names: readonly string[];
  values(): tf.Tensor[];
  lookup(name: string, xs: readonly tf.Tensor[]): tf.Tensor | undefined;
}

export interface StepResult {
  loss: number;
  /** d loss / d trainable, host float32, by trainable name. */
  grads: Map<string, Float32Array>;
  /** The prediction (only if asked: tests). */
  prediction?: tf.Tensor5D;
}

/** Forward, loss and gradients for prepared inputs (`gradientCheckpointing`: blocks recomputed in the backward pass). */
export function lossAndGrads(
  model: TrainableTransformer,
  p: PreparedStep,
  promptEmbeds: tf.Tensor3D,
  trainables: Trainables,
  opts: { loss?: LossOptions; keepPrediction?: boolean; gradientCheckpointing?: boolean } = {},
): StepResult {
  const xs = trainables.values();
  let prediction: tf.Tensor5D | undefined;
  try {
    const f = (...args: tf.Tensor[]): tf.Scalar => {
      const pred = model.forward(
        { hiddenStates: p.noisyLatents, encoderHiddenStates: promptEmbeds, timestep: p.timesteps, inpaintLatents: p.inpaintLatents ?? undefined },
        { params: (name) => trainables.lookup(name, args), differentiable: true, gradientCheckpointing: opts.gradientCheckpointing },
      );
      if (opts.keepPrediction) prediction = tf.keep(pred.clone());
      return trainingLoss(pred, p.target, opts.loss);
    };
    const { value, grads } = tf.valueAndGrads(f)(xs);
    const loss = value.dataSync()[0]!;
    const out = new Map<string, Float32Array>();
    grads.forEach((g, i) => out.set(trainables.names[i]!, Float32Array.from(g.dataSync() as Float32Array)));
    tf.dispose([value, ...grads]);
    return { loss, grads: out, prediction };
  } finally {
    tf.dispose(xs);
  }
}

/** Full / partial fine-tune: the named weights themselves, from host float32 values (torch layout). */
export function fullTrainables(names: readonly string[], values: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>): Trainables {
  const index = new Map(names.map((n, i) => [n, i]));
  return {
    names,
    values: () => names.map((n) => tf.tensor(values.get(n)!, shapes.get(n)!.slice())),
    lookup: (name, xs) => {
      const i = index.get(name);
      return i === undefined ? undefined : xs[i];
    },
  };
}

/**
 * LoRA: the factors are the tape's inputs; a wrapped Linear's weight is W + multiplier·(alpha/r)·up·down with W read
 * from the model (`readWeight` returns a new tensor, freed once W + ΔW is built).
 */
export function loraTrainables(net: LoraNetwork, readWeight: (name: string) => tf.Tensor): Trainables {
  const names = net.parameterNames();
  const index = new Map(names.map((n, i) => [n, i]));
  return {
    names,
    values: () => names.map((n) => tf.tensor(net.params.get(n)!, net.shapeOf(n))),
    lookup: (name, xs) => {
      const t = net.targetOf(name);
      if (!t) return undefined;
      const down = xs[index.get(`${t.name}.lora_down.weight`)!]!;
      const up = xs[index.get(`${t.name}.lora_up.weight`)!]!;
      // W is a constant of effectiveWeight (not kept for the backward pass): freed now rather than with the forward
      const w = readWeight(name) as tf.Tensor2D;
      try {
        return net.effectiveWeight(w, down, up);
      } finally {
        w.dispose();
      }
    },
  };
}
