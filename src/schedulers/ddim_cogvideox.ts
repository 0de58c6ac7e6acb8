// "DDIM_Cog": diffusers CogVideoXDDIMScheduler (scheduling_ddim_cogvideox.py). float64 ᾱ with the SNR shift
// ᾱ ← ᾱ / (s + (1 − s)·ᾱ), s = snr_shift_scale, then the zero-SNR rescale of √ᾱ (scheduling_ddim_cogvideox.py `__init__`). The step is the η = 0
// DDIM update written as x_prev = a·x + b·x̂0; clip_sample is a config key but the step never clips.
import * as tf from '@tensorflow/tfjs-core';
import {
  BaseScheduler,
  addNoiseAlphaBar,
  alphaAt,
  betasCogVideoX,
  checkNumInferenceSteps,
  cumprodF64,
  ddimTimesteps,
  rescaleZeroTerminalSnrAlphasCumprod,
  resolveConfig,
  type SchedulerConfig,
  type StandardScheduler,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

/** Class defaults of CogVideoX{DDIM,DPM}Scheduler — wrong for the shipped models, which override most of them. */
export const COGVIDEOX_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  trained_betas: null as readonly number[] | null,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  clip_sample_range: 1.0,
  sample_max_value: 1.0,
  timestep_spacing: 'leading',
  rescale_betas_zero_snr: false,
  snr_shift_scale: 3.0,
};

export type CogVideoXSchedulerConfig = typeof COGVIDEOX_DEFAULTS;

/** The float64 ᾱ table of both CogVideoX schedulers. */
export function cogVideoXAlphasCumprod(className: string, c: CogVideoXSchedulerConfig): Float64Array {
  const alphas = betasCogVideoX(className, c).map((b) => 1 - b);
  const s = c.snr_shift_scale;
  let ac: Float64Array = cumprodF64(alphas).map((a) => a / (s + (1 - s) * a));
  if (c.rescale_betas_zero_snr) ac = rescaleZeroTerminalSnrAlphasCumprod(ac);
  return ac;
}

/** x̂0 from the model output (float64 coefficients, applied as float32 scalars like torch's 0-d tensors). */
export function cogVideoXPredOriginal(
  className: string,
  predictionType: string,
  alphaProdT: number,
  modelOutput: tf.Tensor,
  sample: tf.Tensor,
): tf.Tensor {
  const betaProdT = 1 - alphaProdT;
  if (predictionType === 'v_prediction') return tf.sub(tf.mul(sample, Math.sqrt(alphaProdT)), tf.mul(modelOutput, Math.sqrt(betaProdT)));
  if (predictionType === 'epsilon') return tf.div(tf.sub(sample, tf.mul(modelOutput, Math.sqrt(betaProdT))), Math.sqrt(alphaProdT));
  if (predictionType === 'sample') return tf.clone(modelOutput);
  throw new Error(`${className}: prediction_type "${predictionType}" must be epsilon, sample or v_prediction`);
}

/** What CogVideoXDDIMScheduler and CogVideoXDPMScheduler share: config, float64 ᾱ (snr shift, zero-SNR), timesteps. */
export abstract class CogVideoXSchedulerBase extends BaseScheduler {
  readonly config: CogVideoXSchedulerConfig;
  readonly alphasCumprod: Float64Array;
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;

  constructor(className: string, raw: SchedulerConfig) {
    super();
    this.config = resolveConfig(className, COGVIDEOX_DEFAULTS, raw);
    this.alphasCumprod = cogVideoXAlphasCumprod(className, this.config);
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkNumInferenceSteps(this.className, numInferenceSteps, c.num_train_timesteps);
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = ddimTimesteps(this.className, c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
  }
}

export class CogVideoXDDIMScheduler extends CogVideoXSchedulerBase implements StandardScheduler {
  readonly kind = 'standard';
  readonly name = 'DDIM_Cog';
  readonly className = 'CogVideoXDDIMScheduler';

  constructor(raw: SchedulerConfig) {
    super('CogVideoXDDIMScheduler', raw);
  }

  step(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor, _options?: StepOptions): StepOutput {
    const n = this.requireTimesteps();
    // the previous timestep is t − T//N, not the next list entry (differs when N does not divide T)
    const prevTimestep = timestep - Math.floor(this.config.num_train_timesteps / n);
    const alphaProdT = alphaAt(this.className, this.alphasCumprod, timestep);
    const alphaProdTPrev = prevTimestep >= 0 ? alphaAt(this.className, this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const a = Math.sqrt((1 - alphaProdTPrev) / (1 - alphaProdT));
    const b = Math.sqrt(alphaProdTPrev) - Math.sqrt(alphaProdT) * a;
    return tf.tidy(() => {
      const predOriginalSample = cogVideoXPredOriginal(this.className, this.config.prediction_type, alphaProdT, modelOutput, sample);
      const prevSample = tf.add(tf.mul(sample, a), tf.mul(predOriginalSample, b));
      return { prevSample, predOriginalSample };
    });
  }

  addNoise(original: tf.Tensor, noise: tf.Tensor, timestep: number): tf.Tensor {
    return addNoiseAlphaBar(alphaAt(this.className, this.alphasCumprod, timestep), original, noise);
  }
}
