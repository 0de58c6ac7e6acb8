// The training noise schedule: CogVideoX-Fun builds `DDPMScheduler.from_pretrained(model, subfolder="scheduler")`
// (scripts/train.py:767) from the checkpoint's scheduler_config.json — whatever class that file names — and uses only
// its β table, `add_noise` and `get_velocity` (diffusers schedulers/scheduling_ddpm.py:199-221, 502-545). No SNR shift
// (`snr_shift_scale` is a CogVideoXDDIMScheduler key, ignored here). Timesteps are uniform integers in
// [0, num_train_timesteps) (cogvideox/utils/discrete_sampler.py, single process).
//
// Precision: β = torch.linspace(√β0, √β1, N, float32)², the zero-terminal-SNR rescale and the cumprod in float32,
// computed with the samplers' helpers (torch's CPU linspace with FMA and cumprod in double are reproduced exactly;
// torch's CPU float32 sqrt is not correctly rounded, so a recomputed ᾱ is off by up to 4e-6 relative). For the
// CogVideoX config every release ships, ᾱ is the table torch computes (ddpm_table.ts). add_noise casts ᾱ to the
// sample dtype before `ᾱ[t] ** 0.5` / `(1 − ᾱ[t]) ** 0.5` (torch computes pow 0.5 as sqrt).
import * as tf from '@tensorflow/tfjs-core';
import {
  alphasCumprodF32,
  betasF32,
  f32,
  resolveConfig,
  rescaleZeroTerminalSnrBetas,
  sqrtF32,
  type SchedulerConfig,
} from '../schedulers/scheduler.js';
import { COGVIDEOX_ALPHAS_CUMPROD_F32_B64 } from './ddpm_table.js';
import type { TrainingRandom } from './random.js';

const DDPM_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null as readonly number[] | null,
  prediction_type: 'epsilon',
  rescale_betas_zero_snr: false,
};

export type PredictionType = 'epsilon' | 'v_prediction';

export class NoiseSchedule {
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  readonly numTrainTimesteps: number;
  readonly predictionType: PredictionType;

  constructor(raw: SchedulerConfig) {
    const c = resolveConfig('DDPMScheduler', DDPM_DEFAULTS, raw);
    if (c.prediction_type !== 'epsilon' && c.prediction_type !== 'v_prediction') {
      // train.py:1588-1593 raises for anything else ("sample" included)
      throw new Error(`scheduler_config.json: prediction_type "${c.prediction_type}" is not trainable (epsilon or v_prediction)`);
    }
    let betas = betasF32('DDPMScheduler', c);
    if (c.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnrBetas(betas);
    this.betas = betas;
    this.alphasCumprod = isCogVideoXSchedule(c) ? storedAlphasCumprod() : alphasCumprodF32(betas);
    this.numTrainTimesteps = c.num_train_timesteps;
    this.predictionType = c.prediction_type;
  }

  /** √ᾱ_t and √(1 − ᾱ_t) per sample, float32 as add_noise computes them. */
  coefficients(timesteps: ArrayLike<number>): { sqrtAlpha: Float32Array; sqrtOneMinusAlpha: Float32Array } {
    const n = timesteps.length;
    const sqrtAlpha = new Float32Array(n);
    const sqrtOneMinusAlpha = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const t = timesteps[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= this.numTrainTimesteps) {
        throw new Error(`timestep ${t} outside [0, ${this.numTrainTimesteps})`);
      }
      const a = this.alphasCumprod[t]!;
      sqrtAlpha[i] = sqrtF32(a);
      sqrtOneMinusAlpha[i] = sqrtF32(f32(1 - a));
    }
    return { sqrtAlpha, sqrtOneMinusAlpha };
  }

  /** `add_noise`: √ᾱ_t·x0 + √(1−ᾱ_t)·ε, per batch element (axis 0). New tensor. */
  addNoise(x0: tf.Tensor, noise: tf.Tensor, timesteps: ArrayLike<number>): tf.Tensor {
    const { sqrtAlpha, sqrtOneMinusAlpha } = this.coefficients(timesteps);
    return tf.tidy(() => tf.add(tf.mul(perSample(sqrtAlpha, x0.rank), x0), tf.mul(perSample(sqrtOneMinusAlpha, x0.rank), noise)));
  }

  /** `get_velocity`: √ᾱ_t·ε − √(1−ᾱ_t)·x0. New tensor. */
  velocity(x0: tf.Tensor, noise: tf.Tensor, timesteps: ArrayLike<number>): tf.Tensor {
    const { sqrtAlpha, sqrtOneMinusAlpha } = this.coefficients(timesteps);
    return tf.tidy(() => tf.sub(tf.mul(perSample(sqrtAlpha, x0.rank), noise), tf.mul(perSample(sqrtOneMinusAlpha, x0.rank), x0)));
  }

  /**
   * The clean sample a prediction implies (the inverse of `target` at x_t = addNoise(x0, ε, t)): for v,
   * √ᾱ_t·x_t − √(1−ᾱ_t)·v; for ε, (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t — DDPMScheduler.step's pred_original_sample. New tensor.
   */
  predictX0(sample: tf.Tensor, modelOutput: tf.Tensor, timesteps: ArrayLike<number>): tf.Tensor {
    const { sqrtAlpha, sqrtOneMinusAlpha } = this.coefficients(timesteps);
    return tf.tidy(() => {
      const a = perSample(sqrtAlpha, sample.rank);
      const b = perSample(sqrtOneMinusAlpha, sample.rank);
      return this.predictionType === 'epsilon' ? tf.div(tf.sub(sample, tf.mul(b, modelOutput)), a) : tf.sub(tf.mul(a, sample), tf.mul(b, modelOutput));
    });
  }

  /** The regression target of train.py:1588-1593: ε or v. New tensor. */
  target(x0: tf.Tensor, noise: tf.Tensor, timesteps: ArrayLike<number>): tf.Tensor {
    return this.predictionType === 'epsilon' ? noise.clone() : this.velocity(x0, noise, timesteps);
  }

  /** `DiscreteSampling(N, uniform_sampling=False)(bsz)`: torch.randint(0, N, (bsz,)). */
  sampleTimesteps(rng: TrainingRandom, batch: number): number[] {
    return Array.from(rng.torchRandint(0, this.numTrainTimesteps, batch));
  }
}

function isCogVideoXSchedule(c: typeof DDPM_DEFAULTS): boolean {
  return (
    c.num_train_timesteps === 1000 &&
    c.beta_start === 0.00085 &&
    c.beta_end === 0.012 &&
    c.beta_schedule === 'scaled_linear' &&
    c.trained_betas === null &&
    c.rescale_betas_zero_snr
  );
}

function storedAlphasCumprod(): Float32Array {
  const bytes = Buffer.from(COGVIDEOX_ALPHAS_CUMPROD_F32_B64, 'base64');
  const out = new Float32Array(1000);
  for (let i = 0; i < 1000; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

function perSample(values: Float32Array, rank: number): tf.Tensor {
  return tf.tensor(values, [values.length, ...new Array<number>(rank - 1).fill(1)], 'float32');
}
