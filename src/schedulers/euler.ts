// "Euler": diffusers EulerDiscreteScheduler (scheduling_euler_discrete.py), deterministic (s_churn = 0, as the
// pipelines call it). float32 schedule; with rescale_betas_zero_snr the last ᾱ is set to 2⁻²⁴ so σ_max =
// √((1 − 2⁻²⁴)/2⁻²⁴) ≈ 4096 is finite; σ(t) = np.interp of the σ table at t, then a final σ = 0 (scheduling_euler_discrete.py `set_timesteps`).
// The step index is found from the first timestep value the scheduler sees (scaleModelInput or step), so a
// strength-sliced schedule starts at the right σ.
import * as tf from '@tensorflow/tfjs-core';
import {
  BaseScheduler,
  alphasCumprodF32,
  arange,
  betasF32,
  checkNumInferenceSteps,
  f32,
  interpIndex,
  linspaceNp,
  rescaleZeroTerminalSnrBetas,
  resolveConfig,
  roundHalfEven,
  sqrtF32,
  unsupported,
  type SchedulerConfig,
  type StandardScheduler,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

export const EULER_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null as readonly number[] | null,
  prediction_type: 'epsilon',
  interpolation_type: 'linear',
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  sigma_min: null as number | null,
  sigma_max: null as number | null,
  timestep_spacing: 'linspace',
  timestep_type: 'discrete',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
  final_sigmas_type: 'zero',
};

interface SigmaScheduleConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: string;
  trained_betas: readonly number[] | null;
  rescale_betas_zero_snr: boolean;
  timestep_spacing: string;
  steps_offset: number;
}

/** ᾱ of Euler / Euler A / DPM++ (float32; last entry 2⁻²⁴ under the zero-SNR rescale). */
export function sigmaAlphasCumprod(className: string, c: SigmaScheduleConfig): Float32Array {
  let betas = betasF32(className, c);
  if (c.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnrBetas(betas);
  const ac = alphasCumprodF32(betas);
  if (c.rescale_betas_zero_snr) ac[ac.length - 1] = 2 ** -24;
  return ac;
}

/** σ(t) = √((1 − ᾱ)/ᾱ) in float32, index = train timestep. */
export function sigmaTable(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => sqrtF32(f32(f32(1 - a) / a)));
}

/** Euler / Euler A timesteps (float32 values, descending) for linspace / leading / trailing spacing. */
export function eulerTimesteps(className: string, c: SigmaScheduleConfig, n: number): number[] {
  const T = c.num_train_timesteps;
  if (c.timestep_spacing === 'linspace') return linspaceNp(0, T - 1, n).map(f32).reverse();
  if (c.timestep_spacing === 'leading') {
    const ratio = Math.floor(T / n);
    return Array.from({ length: n }, (_, i) => f32(roundHalfEven(i * ratio) + c.steps_offset)).reverse();
  }
  if (c.timestep_spacing === 'trailing') return arange(T, 0, -T / n).map((t) => f32(f32(roundHalfEven(t)) - 1));
  throw new Error(`${className}: timestep_spacing "${c.timestep_spacing}" is not supported (linspace, leading, trailing)`);
}

/** diffusers `index_for_timestep`: the first match, or the second when the value occurs twice. */
export function indexForTimestep(className: string, timesteps: readonly number[], t: number): number {
  const hits: number[] = [];
  timesteps.forEach((s, i) => {
    if (s === t) hits.push(i);
  });
  if (hits.length === 0) throw new Error(`${className}: timestep ${t} is not in the schedule [${timesteps.join(', ')}]`);
  return hits.length > 1 ? hits[1]! : hits[0]!;
}

/** x̂0 of the Euler family for v-prediction: v·(−σ/√(σ²+1)) + x/(σ²+1), float32 scalars as torch's 0-d tensors. */
export function eulerPredOriginal(className: string, predictionType: string, sigma: number, modelOutput: tf.Tensor, sample: tf.Tensor): tf.Tensor {
  if (predictionType === 'v_prediction') {
    const s2p1 = f32(f32(sigma * sigma) + 1);
    return tf.add(tf.mul(modelOutput, f32(-sigma / sqrtF32(s2p1))), tf.div(sample, s2p1));
  }
  if (predictionType === 'epsilon') return tf.sub(sample, tf.mul(modelOutput, sigma));
  if (predictionType === 'sample' || predictionType === 'original_sample') return tf.clone(modelOutput);
  throw new Error(`${className}: prediction_type "${predictionType}" must be epsilon, sample or v_prediction`);
}

/** State and σ bookkeeping shared by Euler and Euler A. */
export abstract class SigmaScheduler extends BaseScheduler {
  readonly alphasCumprod: Float32Array;
  /** σ per inference step plus the final σ (float32 values); before setTimesteps, the full training table. */
  sigmas: Float32Array;
  protected stepIndex: number | null = null;
  protected readonly sigmaTableF32: Float32Array;

  protected constructor(className: string, c: SigmaScheduleConfig) {
    super();
    this.alphasCumprod = sigmaAlphasCumprod(className, c);
    this.sigmaTableF32 = sigmaTable(this.alphasCumprod);
    const init = new Float32Array(this.sigmaTableF32.length + 1);
    init.set(this.sigmaTableF32.slice().reverse());
    this.sigmas = init;
  }

  protected abstract get spacing(): string;

  /** max σ for linspace / trailing spacing, else √(σ_max² + 1) (float32). */
  get initNoiseSigma(): number {
    let max = -Infinity;
    for (const s of this.sigmas) if (s > max) max = s;
    return this.spacing === 'linspace' || this.spacing === 'trailing' ? max : sqrtF32(f32(f32(max * max) + 1));
  }

  /** The index into `sigmas` of the current step (null until the first scaleModelInput / step). */
  get currentStepIndex(): number | null {
    return this.stepIndex;
  }

  protected initStepIndex(timestep: number): number {
    if (this.stepIndex === null) this.stepIndex = indexForTimestep(this.className, this.timesteps, timestep);
    return this.stepIndex;
  }

  protected sigmaAt(index: number): number {
    const s = this.sigmas[index];
    if (s === undefined) throw new Error(`${this.className}: step ${index} is past the end of the schedule (${this.timesteps.length} steps)`);
    return s;
  }

  override scaleModelInput(sample: tf.Tensor, timestep: number): tf.Tensor {
    const sigma = this.sigmaAt(this.initStepIndex(timestep));
    return tf.div(sample, sqrtF32(f32(f32(sigma * sigma) + 1)));
  }

  /** x + σ(t)·ε, with t looked up in the schedule (Fun never sets a begin index). */
  addNoise(original: tf.Tensor, noise: tf.Tensor, timestep: number): tf.Tensor {
    const sigma = this.sigmaAt(indexForTimestep(this.className, this.timesteps, timestep));
    return tf.tidy(() => tf.add(original, tf.mul(noise, sigma)));
  }
}

export class EulerDiscreteScheduler extends SigmaScheduler implements StandardScheduler {
  readonly kind = 'standard';
  readonly name = 'Euler';
  readonly className = 'EulerDiscreteScheduler';
  readonly config: typeof EULER_DEFAULTS;

  constructor(raw: SchedulerConfig) {
    const c = resolveConfig('EulerDiscreteScheduler', EULER_DEFAULTS, raw);
    super('EulerDiscreteScheduler', c);
    this.config = c;
    if (c.use_karras_sigmas || c.use_exponential_sigmas || c.use_beta_sigmas) throw unsupported(this.className, 'karras / exponential / beta sigmas');
    if (c.interpolation_type !== 'linear') throw unsupported(this.className, `interpolation_type "${c.interpolation_type}"`);
    if (c.timestep_type !== 'discrete') throw unsupported(this.className, `timestep_type "${c.timestep_type}"`);
    if (c.final_sigmas_type !== 'zero' && c.final_sigmas_type !== 'sigma_min') {
      throw new Error(`${this.className}: final_sigmas_type must be "zero" or "sigma_min", got "${c.final_sigmas_type}"`);
    }
    this.timesteps = linspaceNp(0, c.num_train_timesteps - 1, c.num_train_timesteps).map(f32).reverse();
  }

  protected get spacing(): string {
    return this.config.timestep_spacing;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkNumInferenceSteps(this.className, numInferenceSteps, c.num_train_timesteps);
    this.numInferenceSteps = numInferenceSteps;
    const timesteps = eulerTimesteps(this.className, c, numInferenceSteps);
    const table = this.sigmaTableF32;
    const sigmaLast = c.final_sigmas_type === 'zero' ? 0 : sqrtF32(f32(f32(1 - this.alphasCumprod[0]!) / this.alphasCumprod[0]!));
    this.sigmas = Float32Array.from([...timesteps.map((t) => interpIndex(t, table)), sigmaLast]);
    this.timesteps = timesteps;
    this.stepIndex = null;
  }

  step(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor, _options?: StepOptions): StepOutput {
    this.requireTimesteps();
    const i = this.initStepIndex(timestep);
    const sigma = this.sigmaAt(i);
    const sigmaNext = this.sigmaAt(i + 1);
    // s_churn = 0 → γ = 0, σ̂ = σ, no noise
    const dt = f32(sigmaNext - sigma);
    const out = tf.tidy(() => {
      const predOriginalSample = eulerPredOriginal(this.className, this.config.prediction_type, sigma, modelOutput, sample);
      const derivative = tf.div(tf.sub(sample, predOriginalSample), sigma);
      const prevSample = tf.add(sample, tf.mul(derivative, dt));
      return { prevSample, predOriginalSample };
    });
    this.stepIndex = i + 1;
    return out;
  }
}
