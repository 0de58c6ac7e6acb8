// "PNDM": diffusers PNDMScheduler (scheduling_pndm.py). Plain scaled-linear float32 schedule: the class has no
// zero-SNR option, so ᾱ_999 ≈ 0.00466 (scheduling_pndm.py `__init__`). With skip_prk_steps = false (its default; the CogVideoX config
// does not set it) the schedule starts with 12 Runge–Kutta (PRK) evaluations over the 4 highest timesteps, then
// PLMS: N = 50 → 12 + 47 = 59 entries. The PRK midpoints are t − T//N//2 (for N = 7: 999 → 928), while the listed
// evaluation timestep is the next lower one plus T//N//2 (927): both are kept as diffusers has them.
// The model output is converted to ε first (v-prediction: ε = √ᾱ·v + √(1−ᾱ)·x).
import * as tf from '@tensorflow/tfjs-core';
import {
  BaseScheduler,
  addNoiseAlphaBar,
  alphaAt,
  alphasCumprodF32,
  arange,
  betasF32,
  checkNumInferenceSteps,
  f32,
  linspaceNp,
  resolveConfig,
  roundHalfEven,
  sqrtF32,
  type SchedulerConfig,
  type StandardScheduler,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

export const PNDM_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null as readonly number[] | null,
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
};

const PNDM_ORDER = 4;

export class PNDMScheduler extends BaseScheduler implements StandardScheduler {
  readonly kind = 'standard';
  readonly name = 'PNDM';
  readonly className = 'PNDMScheduler';
  readonly config: typeof PNDM_DEFAULTS;
  readonly alphasCumprod: Float32Array;
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;
  prkTimesteps: number[] = [];
  plmsTimesteps: number[] = [];
  private counter = 0;
  /** ε of the last PLMS/PRK anchors (kept tensors owned here). */
  private ets: tf.Tensor[] = [];
  private curSample: tf.Tensor | null = null;
  private curModelOutput: tf.Tensor | null = null;

  constructor(raw: SchedulerConfig) {
    super();
    const c = resolveConfig(this.className, PNDM_DEFAULTS, raw);
    this.config = c;
    this.alphasCumprod = alphasCumprodF32(betasF32(this.className, c));
    this.finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const T = c.num_train_timesteps;
    checkNumInferenceSteps(this.className, numInferenceSteps, T);
    this.numInferenceSteps = numInferenceSteps;
    let base: number[]; // ascending
    if (c.timestep_spacing === 'linspace') base = linspaceNp(0, T - 1, numInferenceSteps).map(roundHalfEven);
    else if (c.timestep_spacing === 'leading') {
      const ratio = Math.floor(T / numInferenceSteps);
      base = Array.from({ length: numInferenceSteps }, (_, i) => i * ratio + c.steps_offset);
    } else if (c.timestep_spacing === 'trailing') base = arange(T, 0, -T / numInferenceSteps).map((t) => roundHalfEven(t) - 1).reverse();
    else throw new Error(`${this.className}: timestep_spacing "${c.timestep_spacing}" is not supported (linspace, leading, trailing)`);

    if (c.skip_prk_steps) {
      this.prkTimesteps = [];
      this.plmsTimesteps = [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
    } else {
      const half = Math.floor(Math.floor(T / numInferenceSteps) / 2);
      // np.array(ts[-4:]).repeat(2) + np.tile([0, half], 4), drop the last, repeat(2)[1:-1], reversed
      const paired = base.slice(-PNDM_ORDER).flatMap((t) => [t, t + half]);
      const prk = paired.slice(0, -1).flatMap((t) => [t, t]).slice(1, -1);
      this.prkTimesteps = prk.reverse();
      this.plmsTimesteps = base.slice(0, -3).reverse();
    }
    this.timesteps = [...this.prkTimesteps, ...this.plmsTimesteps];
    this.resetState();
  }

  private resetState(): void {
    for (const e of this.ets) e.dispose();
    this.ets = [];
    this.curSample?.dispose();
    this.curSample = null;
    this.curModelOutput?.dispose();
    this.curModelOutput = null;
    this.counter = 0;
  }

  step(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor, _options?: StepOptions): StepOutput {
    this.requireTimesteps();
    const prevSample =
      this.counter < this.prkTimesteps.length && !this.config.skip_prk_steps
        ? this.stepPrk(modelOutput, timestep, sample)
        : this.stepPlms(modelOutput, timestep, sample);
    this.counter++;
    return { prevSample };
  }

  /** Accumulates k1/6 + k2/3 + k3/3 + k4/6 over four calls; every call steps from the anchor sample. */
  private stepPrk(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor): tf.Tensor {
    const n = this.numInferenceSteps!;
    const diffToPrev = this.counter % 2 ? 0 : Math.floor(Math.floor(this.config.num_train_timesteps / n) / 2);
    const prevTimestep = timestep - diffToPrev;
    const anchorTimestep = this.prkTimesteps[Math.floor(this.counter / 4) * 4]!;
    const phase = this.counter % 4;
    let effective = modelOutput;
    let owned: tf.Tensor | null = null;
    if (phase === 0) {
      this.accumulate(modelOutput, f32(1 / 6));
      this.ets.push(tf.keep(tf.clone(modelOutput)));
      this.curSample?.dispose();
      this.curSample = tf.keep(tf.clone(sample));
    } else if (phase === 1 || phase === 2) {
      this.accumulate(modelOutput, f32(1 / 3));
    } else {
      owned = tf.tidy(() => tf.add(this.curModelOutput ?? tf.scalar(0), tf.mul(modelOutput, f32(1 / 6))));
      effective = owned;
      this.curModelOutput?.dispose();
      this.curModelOutput = null;
    }
    const curSample = this.curSample ?? sample;
    const prev = this.prevSample(curSample, anchorTimestep, prevTimestep, effective);
    owned?.dispose();
    return prev;
  }

  /** cur_model_output += w·model_output (starting from the integer 0, as diffusers). */
  private accumulate(modelOutput: tf.Tensor, weight: number): void {
    const next = tf.keep(tf.tidy(() => (this.curModelOutput ? tf.add(this.curModelOutput, tf.mul(modelOutput, weight)) : tf.mul(modelOutput, weight))));
    this.curModelOutput?.dispose();
    this.curModelOutput = next;
  }

  /** Adams–Bashforth on ε of order 1…4 (linear multistep). */
  private stepPlms(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor): tf.Tensor {
    const c = this.config;
    if (!c.skip_prk_steps && this.ets.length < 3) {
      throw new Error(`${this.className}: PLMS steps need the 12 PRK steps first (step through the schedule from its start)`);
    }
    const stride = Math.floor(c.num_train_timesteps / this.numInferenceSteps!);
    let prevTimestep = timestep - stride;
    if (this.counter !== 1) {
      const dropped = this.ets.slice(0, Math.max(0, this.ets.length - 3));
      for (const e of dropped) e.dispose();
      this.ets = this.ets.slice(-3);
      this.ets.push(tf.keep(tf.clone(modelOutput)));
    } else {
      prevTimestep = timestep;
      timestep = timestep + stride;
    }
    const e = this.ets;
    const k = e.length;
    let x = sample;
    let eps: tf.Tensor;
    if (k === 1 && this.counter === 0) {
      eps = tf.clone(modelOutput);
      this.curSample?.dispose();
      this.curSample = tf.keep(tf.clone(sample));
    } else if (k === 1 && this.counter === 1) {
      eps = tf.tidy(() => tf.div(tf.add(modelOutput, e[k - 1]!), 2));
      x = this.curSample!;
    } else if (k === 2) {
      eps = tf.tidy(() => tf.div(tf.sub(tf.mul(e[k - 1]!, 3), e[k - 2]!), 2));
    } else if (k === 3) {
      eps = tf.tidy(() => tf.div(tf.add(tf.sub(tf.mul(e[k - 1]!, 23), tf.mul(e[k - 2]!, 16)), tf.mul(e[k - 3]!, 5)), 12));
    } else {
      eps = tf.tidy(() =>
        tf.mul(
          tf.sub(tf.add(tf.sub(tf.mul(e[k - 1]!, 55), tf.mul(e[k - 2]!, 59)), tf.mul(e[k - 3]!, 37)), tf.mul(e[k - 4]!, 9)),
          f32(1 / 24),
        ),
      );
    }
    const prev = this.prevSample(x, timestep, prevTimestep, eps);
    eps.dispose();
    if (k === 1 && this.counter === 1) {
      this.curSample!.dispose();
      this.curSample = null;
    }
    return prev;
  }

  /** DDIM-like transfer x_t → x_{t_prev} given ε (formula (9) of the PNDM paper), float32 scalars. */
  private prevSample(sample: tf.Tensor, timestep: number, prevTimestep: number, modelOutput: tf.Tensor): tf.Tensor {
    const alphaProdT = alphaAt(this.className, this.alphasCumprod, timestep);
    const alphaProdTPrev = prevTimestep >= 0 ? alphaAt(this.className, this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);
    const sampleCoeff = sqrtF32(f32(alphaProdTPrev / alphaProdT));
    const denom = f32(f32(alphaProdT * sqrtF32(betaProdTPrev)) + sqrtF32(f32(f32(alphaProdT * betaProdT) * alphaProdTPrev)));
    const p = this.config.prediction_type;
    if (p !== 'v_prediction' && p !== 'epsilon') throw new Error(`${this.className}: prediction_type "${p}" must be epsilon or v_prediction`);
    return tf.tidy(() => {
      const eps = p === 'v_prediction' ? tf.add(tf.mul(modelOutput, sqrtF32(alphaProdT)), tf.mul(sample, sqrtF32(betaProdT))) : modelOutput;
      return tf.sub(tf.mul(sample, sampleCoeff), tf.div(tf.mul(eps, f32(alphaProdTPrev - alphaProdT)), denom));
    });
  }

  addNoise(original: tf.Tensor, noise: tf.Tensor, timestep: number): tf.Tensor {
    return addNoiseAlphaBar(alphaAt(this.className, this.alphasCumprod, timestep), original, noise);
  }

  override dispose(): void {
    this.resetState();
  }
}
