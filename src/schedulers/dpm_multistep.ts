// "DPM++": diffusers DPMSolverMultistepScheduler (scheduling_dpmsolver_multistep.py) with its defaults as Fun builds
// it from the CogVideoX config: dpmsolver++, solver_order 2, midpoint, lower_order_final, final σ = 0. Same σ table as
// Euler; init_noise_sigma = 1 (it works in the α_t x̂0 + σ_t ε parametrisation: α = 1/√(σ²+1), σ_t = σ·α).
// The first step is first order (no history), the middle steps second order (2M), and the last step first order
// again (final_sigmas_type "zero" forces it; there x' = x̂0 exactly).
import * as tf from '@tensorflow/tfjs-core';
import { indexForTimestep, sigmaAlphasCumprod, sigmaTable } from './euler.js';
import {
  BaseScheduler,
  arange,
  checkNumInferenceSteps,
  expF32,
  f32,
  interpIndex,
  linspaceNp,
  logF32,
  resolveConfig,
  roundHalfEven,
  sqrtF32,
  unsupported,
  type SchedulerConfig,
  type StandardScheduler,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

export const DPM_MULTISTEP_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null as readonly number[] | null,
  solver_order: 2,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint',
  lower_order_final: true,
  euler_at_final: false,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  use_lu_lambdas: false,
  use_flow_sigmas: false,
  flow_shift: 1.0,
  final_sigmas_type: 'zero',
  lambda_min_clipped: -Infinity,
  variance_type: null as string | null,
  timestep_spacing: 'linspace',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

/** (α_t, σ_t) of a σ: α = 1/√(σ²+1), σ_t = σ·α (float32). */
function alphaSigma(sigma: number): [number, number] {
  const alpha = f32(1 / sqrtF32(f32(f32(sigma * sigma) + 1)));
  return [alpha, f32(sigma * alpha)];
}

/** λ = log α − log σ_t (float32; +∞ at σ = 0). */
function lambdaOf(alpha: number, sigma: number): number {
  return f32(logF32(alpha) - logF32(sigma));
}

export class DPMSolverMultistepScheduler extends BaseScheduler implements StandardScheduler {
  readonly kind = 'standard';
  readonly name = 'DPM++';
  readonly className = 'DPMSolverMultistepScheduler';
  readonly config: typeof DPM_MULTISTEP_DEFAULTS;
  readonly alphasCumprod: Float32Array;
  readonly initNoiseSigma = 1;
  /** σ per inference step plus the final σ (float32 values). */
  sigmas: Float32Array = new Float32Array(0);
  private readonly sigmaTableF32: Float32Array;
  private stepIndex: number | null = null;
  private lowerOrderNums = 0;
  /** x̂0 of the last `solver_order` steps, oldest first (kept tensors, owned here). */
  private modelOutputs: (tf.Tensor | null)[];

  constructor(raw: SchedulerConfig) {
    super();
    const c = resolveConfig(this.className, DPM_MULTISTEP_DEFAULTS, raw);
    this.config = c;
    if (c.algorithm_type !== 'dpmsolver++') throw unsupported(this.className, `algorithm_type "${c.algorithm_type}"`);
    if (c.solver_order !== 1 && c.solver_order !== 2) throw unsupported(this.className, `solver_order ${c.solver_order}`);
    if (c.solver_type !== 'midpoint' && c.solver_type !== 'heun') throw unsupported(this.className, `solver_type "${c.solver_type}"`);
    if (c.thresholding) throw unsupported(this.className, 'thresholding');
    if (c.use_karras_sigmas || c.use_exponential_sigmas || c.use_beta_sigmas || c.use_lu_lambdas || c.use_flow_sigmas) {
      throw unsupported(this.className, 'karras / exponential / beta / lu / flow sigmas');
    }
    if (c.lambda_min_clipped !== -Infinity) throw unsupported(this.className, 'lambda_min_clipped');
    if (c.variance_type === 'learned' || c.variance_type === 'learned_range') throw unsupported(this.className, `variance_type "${c.variance_type}"`);
    if (c.final_sigmas_type !== 'zero' && c.final_sigmas_type !== 'sigma_min') {
      throw new Error(`${this.className}: final_sigmas_type must be "zero" or "sigma_min", got "${c.final_sigmas_type}"`);
    }
    this.alphasCumprod = sigmaAlphasCumprod(this.className, c);
    this.sigmaTableF32 = sigmaTable(this.alphasCumprod);
    this.modelOutputs = new Array<tf.Tensor | null>(c.solver_order).fill(null);
    this.timesteps = linspaceNp(0, c.num_train_timesteps - 1, c.num_train_timesteps).map(f32).reverse();
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkNumInferenceSteps(this.className, numInferenceSteps, c.num_train_timesteps);
    const last = c.num_train_timesteps; // lambda_min_clipped = −∞ clips nothing
    let timesteps: number[];
    if (c.timestep_spacing === 'linspace') {
      timesteps = linspaceNp(0, last - 1, numInferenceSteps + 1).map(roundHalfEven).reverse().slice(0, -1);
    } else if (c.timestep_spacing === 'leading') {
      const ratio = Math.floor(last / (numInferenceSteps + 1));
      timesteps = Array.from({ length: numInferenceSteps + 1 }, (_, i) => i * ratio + c.steps_offset).reverse().slice(0, -1);
    } else if (c.timestep_spacing === 'trailing') {
      timesteps = arange(last, 0, -c.num_train_timesteps / numInferenceSteps).map((t) => roundHalfEven(t) - 1);
    } else {
      throw new Error(`${this.className}: timestep_spacing "${c.timestep_spacing}" is not supported (linspace, leading, trailing)`);
    }
    const ac0 = this.alphasCumprod[0]!;
    const sigmaLast = c.final_sigmas_type === 'zero' ? 0 : sqrtF32(f32(f32(1 - ac0) / ac0));
    this.sigmas = Float32Array.from([...timesteps.map((t) => interpIndex(t, this.sigmaTableF32)), sigmaLast]);
    this.timesteps = timesteps;
    this.numInferenceSteps = timesteps.length;
    this.clearHistory();
    this.lowerOrderNums = 0;
    this.stepIndex = null;
  }

  private clearHistory(): void {
    for (const t of this.modelOutputs) t?.dispose();
    this.modelOutputs.fill(null);
  }

  /** diffusers' DPM `index_for_timestep`: a value missing from the schedule means the last step. */
  private initStepIndex(timestep: number): number {
    if (this.stepIndex === null) {
      const found = this.timesteps.includes(timestep);
      this.stepIndex = found ? indexForTimestep(this.className, this.timesteps, timestep) : this.timesteps.length - 1;
    }
    return this.stepIndex;
  }

  private convertModelOutput(modelOutput: tf.Tensor, sample: tf.Tensor, sigma: number): tf.Tensor {
    const [alpha, sigmaT] = alphaSigma(sigma);
    const p = this.config.prediction_type;
    if (p === 'v_prediction') return tf.sub(tf.mul(sample, alpha), tf.mul(modelOutput, sigmaT));
    if (p === 'epsilon') return tf.div(tf.sub(sample, tf.mul(modelOutput, sigmaT)), alpha);
    if (p === 'sample') return tf.clone(modelOutput);
    if (p === 'flow_prediction') throw unsupported(this.className, 'flow_prediction');
    throw new Error(`${this.className}: prediction_type "${p}" must be epsilon, sample or v_prediction`);
  }

  step(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor, _options?: StepOptions): StepOutput {
    this.requireTimesteps();
    const c = this.config;
    const i = this.initStepIndex(timestep);
    const n = this.timesteps.length;
    if (i + 1 >= this.sigmas.length) throw new Error(`${this.className}: step ${i} is past the end of the schedule (${n} steps)`);
    const lowerOrderFinal = i === n - 1 && (c.euler_at_final || (c.lower_order_final && n < 15) || c.final_sigmas_type === 'zero');

    const x0 = tf.keep(tf.tidy(() => this.convertModelOutput(modelOutput, sample, this.sigmas[i]!)));
    this.modelOutputs[0]?.dispose();
    for (let k = 0; k < c.solver_order - 1; k++) this.modelOutputs[k] = this.modelOutputs[k + 1]!;
    this.modelOutputs[c.solver_order - 1] = x0;

    let prevSample: tf.Tensor;
    if (c.solver_order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      prevSample = this.firstOrderUpdate(x0, sample, i);
    } else {
      // second order (diffusers' lower_order_second only demotes third-order steps, which solver_order ≤ 2 never takes)
      prevSample = this.secondOrderUpdate(sample, i);
    }
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.stepIndex = i + 1;
    return { prevSample };
  }

  private firstOrderUpdate(x0: tf.Tensor, sample: tf.Tensor, i: number): tf.Tensor {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]!);
    const [alphaS, sigmaS] = alphaSigma(this.sigmas[i]!);
    const h = f32(lambdaOf(alphaT, sigmaT) - lambdaOf(alphaS, sigmaS));
    const c1 = f32(sigmaT / sigmaS);
    const c2 = f32(alphaT * f32(expF32(-h) - 1));
    return tf.tidy(() => tf.sub(tf.mul(sample, c1), tf.mul(x0, c2)));
  }

  private secondOrderUpdate(sample: tf.Tensor, i: number): tf.Tensor {
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]!);
    const [alphaS0, sigmaS0] = alphaSigma(this.sigmas[i]!);
    const [alphaS1, sigmaS1] = alphaSigma(this.sigmas[i - 1]!);
    const lambdaT = lambdaOf(alphaT, sigmaT);
    const lambdaS0 = lambdaOf(alphaS0, sigmaS0);
    const lambdaS1 = lambdaOf(alphaS1, sigmaS1);
    const h = f32(lambdaT - lambdaS0);
    const h0 = f32(lambdaS0 - lambdaS1);
    const r0 = f32(h0 / h);
    const expm = f32(expF32(-h) - 1);
    const c1 = f32(sigmaT / sigmaS0);
    const c2 = f32(alphaT * expm);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1]!;
    const m1 = this.modelOutputs[this.modelOutputs.length - 2]!;
    return tf.tidy(() => {
      const d1 = tf.mul(tf.sub(m0, m1), f32(1 / r0));
      const base = tf.sub(tf.mul(sample, c1), tf.mul(m0, c2));
      if (this.config.solver_type === 'midpoint') return tf.sub(base, tf.mul(d1, f32(0.5 * c2)));
      return tf.add(base, tf.mul(d1, f32(alphaT * f32(f32(expm / h) + 1))));
    });
  }

  addNoise(original: tf.Tensor, noise: tf.Tensor, timestep: number): tf.Tensor {
    this.requireTimesteps();
    const i = this.timesteps.includes(timestep) ? indexForTimestep(this.className, this.timesteps, timestep) : this.timesteps.length - 1;
    const [alpha, sigma] = alphaSigma(this.sigmas[i]!);
    return tf.tidy(() => tf.add(tf.mul(original, alpha), tf.mul(noise, sigma)));
  }

  override dispose(): void {
    this.clearHistory();
  }
}
