// "Euler A": diffusers EulerAncestralDiscreteScheduler (scheduling_euler_ancestral_discrete.py). Same σ schedule as
// Euler; each step goes down to σ_down and adds σ_up·ε with one fresh draw (also at the last step, where σ_up = 0).
import * as tf from '@tensorflow/tfjs-core';
import { SigmaScheduler, eulerPredOriginal, eulerTimesteps } from './euler.js';
import {
  checkNumInferenceSteps,
  f32,
  interpIndex,
  linspaceNp,
  requireGenerator,
  resolveConfig,
  sqrtF32,
  type SchedulerConfig,
  type StandardScheduler,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

export const EULER_ANCESTRAL_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null as readonly number[] | null,
  prediction_type: 'epsilon',
  timestep_spacing: 'linspace',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

export class EulerAncestralDiscreteScheduler extends SigmaScheduler implements StandardScheduler {
  readonly kind = 'standard';
  readonly name = 'Euler A';
  readonly className = 'EulerAncestralDiscreteScheduler';
  readonly config: typeof EULER_ANCESTRAL_DEFAULTS;

  constructor(raw: SchedulerConfig) {
    const c = resolveConfig('EulerAncestralDiscreteScheduler', EULER_ANCESTRAL_DEFAULTS, raw);
    super('EulerAncestralDiscreteScheduler', c);
    this.config = c;
    if (c.prediction_type === 'sample') throw new Error(`${this.className}: prediction_type "sample" is not implemented in diffusers either`);
    this.timesteps = linspaceNp(0, c.num_train_timesteps - 1, c.num_train_timesteps).reverse();
  }

  protected get spacing(): string {
    return this.config.timestep_spacing;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkNumInferenceSteps(this.className, numInferenceSteps, c.num_train_timesteps);
    this.numInferenceSteps = numInferenceSteps;
    const timesteps = eulerTimesteps(this.className, c, numInferenceSteps);
    this.sigmas = Float32Array.from([...timesteps.map((t) => interpIndex(t, this.sigmaTableF32)), 0]);
    this.timesteps = timesteps;
    this.stepIndex = null;
  }

  step(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor, options?: StepOptions): StepOutput {
    this.requireTimesteps();
    const generator = requireGenerator(this.className, options);
    const i = this.initStepIndex(timestep);
    const sigma = this.sigmaAt(i);
    const sigmaTo = this.sigmaAt(i + 1);
    // float32 0-d tensor arithmetic, in diffusers' order
    const from2 = f32(sigma * sigma);
    const to2 = f32(sigmaTo * sigmaTo);
    const sigmaUp = sqrtF32(f32(f32(to2 * f32(from2 - to2)) / from2));
    const sigmaDown = sqrtF32(f32(to2 - f32(sigmaUp * sigmaUp)));
    const dt = f32(sigmaDown - sigma);
    const out = tf.tidy(() => {
      const predOriginalSample = eulerPredOriginal(this.className, this.config.prediction_type, sigma, modelOutput, sample);
      const derivative = tf.div(tf.sub(sample, predOriginalSample), sigma);
      const noise = generator.randn(modelOutput.shape);
      const prevSample = tf.add(tf.add(sample, tf.mul(derivative, dt)), tf.mul(noise, sigmaUp));
      return { prevSample, predOriginalSample };
    });
    this.stepIndex = i + 1;
    return out;
  }
}
