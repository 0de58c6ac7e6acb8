// "DDIM_Origin": diffusers DDIMScheduler (scheduling_ddim.py). float32 schedule; zero-SNR rescale on the betas;
// snr_shift_scale is not a DDIMScheduler key and is ignored (diffusers `from_config` drops unknown keys).
import * as tf from '@tensorflow/tfjs-core';
import {
  BaseScheduler,
  addNoiseAlphaBar,
  alphaAt,
  alphasCumprodF32,
  betasF32,
  checkNumInferenceSteps,
  ddimTimesteps,
  f32,
  rescaleZeroTerminalSnrBetas,
  resolveConfig,
  sqrtF32,
  unsupported,
  type SchedulerConfig,
  type StandardScheduler,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

export const DDIM_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null as readonly number[] | null,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  clip_sample_range: 1.0,
  sample_max_value: 1.0,
  timestep_spacing: 'leading',
  rescale_betas_zero_snr: false,
};

export interface DDIMStepOptions extends StepOptions {
  /** DDIM η; the pipelines pass 0 (only 0 is implemented). */
  eta?: number;
}

export class DDIMScheduler extends BaseScheduler implements StandardScheduler {
  readonly kind = 'standard';
  readonly name = 'DDIM_Origin';
  readonly className = 'DDIMScheduler';
  readonly config: typeof DDIM_DEFAULTS;
  /** ᾱ as float32 values. */
  readonly alphasCumprod: Float32Array;
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;

  constructor(raw: SchedulerConfig) {
    super();
    const c = resolveConfig(this.className, DDIM_DEFAULTS, raw);
    this.config = c;
    if (c.thresholding) throw unsupported(this.className, 'thresholding');
    let betas = betasF32(this.className, c);
    if (c.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnrBetas(betas);
    this.alphasCumprod = alphasCumprodF32(betas);
    this.finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkNumInferenceSteps(this.className, numInferenceSteps, c.num_train_timesteps);
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = ddimTimesteps(this.className, c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
  }

  step(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor, options: DDIMStepOptions = {}): StepOutput {
    const n = this.requireTimesteps();
    const c = this.config;
    const eta = options.eta ?? 0;
    if (eta !== 0) throw unsupported(this.className, 'eta ≠ 0');
    const prevTimestep = timestep - Math.floor(c.num_train_timesteps / n);
    // 0-d float32 tensors in diffusers: every scalar op rounds to float32
    const alphaProdT = alphaAt(this.className, this.alphasCumprod, timestep);
    const alphaProdTPrev = prevTimestep >= 0 ? alphaAt(this.className, this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const betaProdT = f32(1 - alphaProdT);
    const sqrtA = sqrtF32(alphaProdT);
    const sqrtB = sqrtF32(betaProdT);
    // η = 0: std_dev_t = 0, so the direction coefficient is √(1 − ᾱ_prev − 0)
    const dirCoeff = sqrtF32(f32(1 - alphaProdTPrev));
    const prevCoeff = sqrtF32(alphaProdTPrev);
    return tf.tidy(() => {
      let predOriginalSample: tf.Tensor;
      let predEpsilon: tf.Tensor;
      if (c.prediction_type === 'v_prediction') {
        predOriginalSample = tf.sub(tf.mul(sample, sqrtA), tf.mul(modelOutput, sqrtB));
        predEpsilon = tf.add(tf.mul(modelOutput, sqrtA), tf.mul(sample, sqrtB));
      } else if (c.prediction_type === 'epsilon') {
        predOriginalSample = tf.div(tf.sub(sample, tf.mul(modelOutput, sqrtB)), sqrtA);
        predEpsilon = modelOutput;
      } else if (c.prediction_type === 'sample') {
        predOriginalSample = modelOutput;
        predEpsilon = tf.div(tf.sub(sample, tf.mul(predOriginalSample, sqrtA)), sqrtB);
      } else {
        throw new Error(`${this.className}: prediction_type "${c.prediction_type}" must be epsilon, sample or v_prediction`);
      }
      if (c.clip_sample) predOriginalSample = tf.clipByValue(predOriginalSample, -c.clip_sample_range, c.clip_sample_range);
      const prevSample = tf.add(tf.mul(predOriginalSample, prevCoeff), tf.mul(predEpsilon, dirCoeff));
      return { prevSample, predOriginalSample: tf.clone(predOriginalSample) };
    });
  }

  addNoise(original: tf.Tensor, noise: tf.Tensor, timestep: number): tf.Tensor {
    return addNoiseAlphaBar(alphaAt(this.className, this.alphasCumprod, timestep), original, noise);
  }
}
