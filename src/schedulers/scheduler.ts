// The sampler interface and the schedule math the samplers share (diffusers/schedulers/scheduling_*.py).
//
// Precision model. Latent tensor math runs as float32 tfjs ops, one op per torch op, in the reference's order; scalar
// coefficients are computed in JS with the reference's precision and enter the tensor ops as float32 scalars (torch
// casts a 0-d or Python scalar to the tensor's dtype before an elementwise op, exactly as `tf.scalar` does):
// - CogVideoX{DDIM,DPM}Scheduler keep ᾱ and their coefficients in float64 → plain JS doubles.
// - DDIM / Euler / Euler A / DPM++ / PNDM keep ᾱ, σ and their 0-d coefficient tensors in float32 → every scalar op is
//   rounded with `Math.fround`, as torch's float32 ops round (torch's CPU sqrt/exp are ≤ 1 ulp off correct rounding;
//   ours are correctly rounded, so single coefficients can differ by 1 ulp).
// - torch's CPU float32 `linspace` computes `start + step·i` with a fused multiply-add and CPU `cumprod` accumulates
//   in double: both are reproduced (`linspaceF32`, `cumprodF32`).
import * as tf from '@tensorflow/tfjs-core';
import type { Generator } from './generator.js';

/** A parsed `scheduler_config.json` (any diffusers scheduler config; keys a class does not know are ignored). */
export type SchedulerConfig = Readonly<Record<string, unknown>>;

export interface StepOptions {
  /** Source of the step noise (DPM_Cog, Euler A draw every step; the others ignore it). */
  generator?: Generator;
}

export interface StepOutput {
  /** x_{t-1}; a new tensor the caller owns. */
  prevSample: tf.Tensor;
  /** x̂0, for the schedulers whose diffusers `step` returns it (DDIM family, DPM_Cog, Euler, Euler A). */
  predOriginalSample?: tf.Tensor;
}

interface SchedulerCommon {
  /** The CogVideoX-Fun name ("DDIM_Origin", "Euler", …). */
  readonly name: string;
  /** The diffusers class it reproduces. */
  readonly className: string;
  /** diffusers `scheduler.order` (1 for every scheduler here; the strength slice multiplies by it). */
  readonly order: number;
  /** Schedule after `setTimesteps` (PNDM: PRK then PLMS entries, so longer than N). Empty before. */
  readonly timesteps: readonly number[];
  readonly numInferenceSteps: number | null;
  /** Factor for the initial noise (1, or σ_max for Euler / Euler A with trailing spacing), float32 value. */
  readonly initNoiseSigma: number;
  /** ᾱ table, index = train timestep (Float64Array for the CogVideoX classes, float32 values otherwise). */
  readonly alphasCumprod: Float64Array | Float32Array;
  setTimesteps(numInferenceSteps: number): void;
  /** Model input for timestep t: identity (a new handle) except Euler / Euler A: x / √(σ² + 1). */
  scaleModelInput(sample: tf.Tensor, timestep: number): tf.Tensor;
  /** Noises `original` to timestep t (the V2V start); every batch element uses the same t. */
  addNoise(original: tf.Tensor, noise: tf.Tensor, timestep: number): tf.Tensor;
  /** CogVideoX-Fun `get_timesteps`: the schedule tail for a V2V `strength`, after `setTimesteps(numInferenceSteps)`. */
  getTimestepsForStrength(numInferenceSteps: number, strength: number): { timesteps: number[]; numInferenceSteps: number };
  /** Frees tensors kept between steps (DPM++ / PNDM history). `setTimesteps` also clears them. */
  dispose(): void;
}

/** `step(v, t, x)` as diffusers' DDIM, Euler, Euler A, DPM++ and PNDM. */
export interface StandardScheduler extends SchedulerCommon {
  readonly kind: 'standard';
  step(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor, options?: StepOptions): StepOutput;
}

/** CogVideoXDPMScheduler's signature: carries x̂0 and the previous timestep between calls (diffusers pipeline_cogvideox.py's loop). */
export interface CogVideoXDPMStepper extends SchedulerCommon {
  readonly kind: 'cogvideox-dpm';
  step(
    modelOutput: tf.Tensor,
    oldPredOriginalSample: tf.Tensor | null,
    timestep: number,
    timestepBack: number | null,
    sample: tf.Tensor,
    options?: StepOptions,
  ): Required<StepOutput>;
}

export type Scheduler = StandardScheduler | CogVideoXDPMStepper;

// ---------------------------------------------------------------------------------------------------------------
// Config: diffusers `from_config` semantics
// ---------------------------------------------------------------------------------------------------------------

type ConfigValue = number | boolean | string | null | readonly number[];


/**
 * The keys a class knows, from `raw` where present, else the class default (diffusers `from_config`: unknown keys
 * are ignored, known keys override the defaults). Types are checked against the default's type.
 */
export function resolveConfig<T extends Record<string, ConfigValue>>(className: string, defaults: T, raw: SchedulerConfig): T {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${className}: scheduler config must be a JSON object`);
  const out: Record<string, ConfigValue> = { ...defaults };
  for (const key of Object.keys(defaults)) {
    if (!(key in raw) || raw[key] === undefined) continue;
    const value = raw[key];
    const def = defaults[key];
    const ok =
      def === null
        ? value === null || typeof value === 'number' || typeof value === 'string' || (Array.isArray(value) && value.every((x) => typeof x === 'number'))
        : typeof value === typeof def;
    if (!ok) throw new Error(`${className}: config "${key}" has the wrong type (${JSON.stringify(value)}; default ${JSON.stringify(def)})`);
    out[key] = value as ConfigValue;
  }
  for (const key of ['num_train_timesteps', 'steps_offset', 'solver_order'] as const) {
    if (key in out && (!Number.isInteger(out[key]) || (out[key] as number) < 0)) {
      throw new Error(`${className}: config "${key}" must be a non-negative integer, got ${JSON.stringify(out[key])}`);
    }
  }
  if ((out['num_train_timesteps'] as number) < 2) throw new Error(`${className}: num_train_timesteps must be ≥ 2`);
  return out as T;
}

export function unsupported(className: string, what: string): Error {
  return new Error(`${className}: ${what} is not implemented in this port (the CogVideoX(-Fun) configs do not use it)`);
}

// ---------------------------------------------------------------------------------------------------------------
// Scalar arithmetic with torch's float32 rounding
// ---------------------------------------------------------------------------------------------------------------

export const f32 = Math.fround;
export const sqrtF32 = (x: number): number => Math.fround(Math.sqrt(x));
export const logF32 = (x: number): number => Math.fround(Math.log(x));
export const expF32 = (x: number): number => Math.fround(Math.exp(x));

const bits32 = new Float32Array(1);
const ints32 = new Int32Array(bits32.buffer);

/** The float32 next to `x` (a float32 value) in the direction of `towards`. */
function nextF32(x: number, towards: number): number {
  if (x === towards) return x;
  if (x === 0) return towards > 0 ? 1.401298464324817e-45 : -1.401298464324817e-45;
  bits32[0] = x;
  ints32[0] += (towards > x) === (x > 0) ? 1 : -1;
  return bits32[0]!;
}

/**
 * Correctly rounded float32 fused multiply-add a·b + c of float32 inputs. a·b is exact in a double; the double sum
 * is exact up to one rounding whose error TwoSum recovers, which settles the one case where rounding the double to
 * float32 could go the wrong way (the double landing exactly on a float32 midpoint).
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  const r = Math.fround(s);
  if (err === 0 || r === s) return r;
  const other = nextF32(r, s);
  if (Math.abs(other - s) !== Math.abs(r - s)) return r; // not a midpoint: the double rounding was harmless
  return (err > 0) === (other > r) ? other : r;
}

/** torch.linspace(start, end, steps, dtype=float32) on CPU: start + step·i (first half), end − step·(steps−1−i), FMA. */
export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < halfway ? fmaF32(step, i, s) : fmaF32(-step, steps - i - 1, e);
  return out;
}

/** torch.linspace(..., dtype=float64) (the CogVideoX classes); agrees with torch to the last bit or one ulp. */
export function linspaceF64(start: number, end: number, steps: number): Float64Array {
  const out = new Float64Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (steps - 1);
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
  return out;
}

/** torch.cumprod on a CPU float32 tensor: the running product is a double, each output rounded to float32. */
export function cumprodF32(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) out[i] = acc *= x[i]!;
  return out;
}

export function cumprodF64(x: Float64Array): Float64Array {
  const out = new Float64Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) out[i] = acc *= x[i]!;
  return out;
}

interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: string;
  trained_betas: readonly number[] | null;
}

/** β as float32 (DDIM, Euler, Euler A, DPM++, PNDM): `linear`, `scaled_linear` or `trained_betas`. */
export function betasF32(className: string, c: BetaConfig): Float32Array {
  if (c.trained_betas !== null) return Float32Array.from(c.trained_betas);
  const n = c.num_train_timesteps;
  if (c.beta_schedule === 'linear') return linspaceF32(c.beta_start, c.beta_end, n);
  if (c.beta_schedule === 'scaled_linear') {
    const r = linspaceF32(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), n);
    return r.map((x) => f32(x * x));
  }
  throw unsupported(className, `beta_schedule "${c.beta_schedule}"`);
}

/** β for CogVideoX{DDIM,DPM}Scheduler: `scaled_linear` is float64 there (`linear` / trained stay float32). */
export function betasCogVideoX(className: string, c: BetaConfig): Float64Array {
  if (c.trained_betas !== null || c.beta_schedule === 'linear') return Float64Array.from(betasF32(className, c));
  if (c.beta_schedule === 'scaled_linear') return linspaceF64(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), c.num_train_timesteps).map((x) => x * x);
  throw unsupported(className, `beta_schedule "${c.beta_schedule}"`);
}

/** `1 − β` and cumprod in float32 (every non-CogVideoX class). */
export function alphasCumprodF32(betas: Float32Array): Float32Array {
  return cumprodF32(betas.map((b) => f32(1 - b)));
}

/**
 * diffusers' `rescale_zero_terminal_snr(betas)` (Lin et al. 2023, Alg. 1) as DDIM / Euler / DPM++ run it: on float32
 * betas, returning float32 betas whose ᾱ ends at 0.
 */
export function rescaleZeroTerminalSnrBetas(betas: Float32Array): Float32Array {
  const ac = alphasCumprodF32(betas);
  const sq = ac.map((a) => sqrtF32(a));
  const s0 = sq[0]!;
  const sT = sq[sq.length - 1]!;
  const scale = f32(s0 / f32(s0 - sT));
  const bar = sq.map((s) => {
    const r = f32(f32(s - sT) * scale);
    return f32(r * r);
  });
  const out = new Float32Array(betas.length);
  out[0] = f32(1 - bar[0]!);
  for (let i = 1; i < bar.length; i++) out[i] = f32(1 - f32(bar[i]! / bar[i - 1]!));
  return out;
}

/** The CogVideoX classes' `rescale_zero_terminal_snr(alphas_cumprod)`: on float64 ᾱ directly. */
export function rescaleZeroTerminalSnrAlphasCumprod(ac: Float64Array): Float64Array {
  const sq = ac.map((a) => Math.sqrt(a));
  const s0 = sq[0]!;
  const sT = sq[sq.length - 1]!;
  const scale = s0 / (s0 - sT);
  return sq.map((s) => {
    const r = (s - sT) * scale;
    return r * r;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Timestep spacing (numpy semantics)
// ---------------------------------------------------------------------------------------------------------------

/** numpy round (half to even). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.arange(start, stop, step) for floats: length ⌈(stop − start)/step⌉, values start + i·((start + step) − start). */
export function arange(start: number, stop: number, step: number): number[] {
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const out: number[] = [];
  if (n === 0) return out;
  const delta = start + step - start;
  out.push(start);
  if (n > 1) out.push(start + step);
  for (let i = 2; i < n; i++) out.push(start + i * delta);
  return out;
}

/** np.linspace(start, stop, num) (float64, endpoint included). */
export function linspaceNp(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** np.interp(x, arange(len(fp)), fp) (float64). */
export function interpIndex(x: number, fp: ArrayLike<number>): number {
  const n = fp.length;
  if (x <= 0) return fp[0]!;
  if (x >= n - 1) return fp[n - 1]!;
  const j = Math.floor(x);
  const slope = (fp[j + 1]! - fp[j]!) / 1;
  const y = slope * (x - j) + fp[j]!;
  return Number.isNaN(y) ? slope * (x - (j + 1)) + fp[j + 1]! : y;
}

/**
 * The integer schedule of DDIM / CogVideoX DDIM / CogVideoX DPM (descending): `linspace`, `leading` (+ steps_offset)
 * or `trailing` (round(arange(T, 0, −T/N)) − 1: 999, 979, … for N = 50).
 */
export function ddimTimesteps(className: string, spacing: string, numTrain: number, n: number, stepsOffset: number): number[] {
  if (spacing === 'linspace') return linspaceNp(0, numTrain - 1, n).map(roundHalfEven).reverse();
  if (spacing === 'leading') {
    const ratio = Math.floor(numTrain / n);
    return Array.from({ length: n }, (_, i) => i * ratio + stepsOffset).reverse();
  }
  if (spacing === 'trailing') return arange(numTrain, 0, -numTrain / n).map((t) => roundHalfEven(t) - 1);
  throw new Error(`${className}: timestep_spacing "${spacing}" is not supported (linspace, leading, trailing)`);
}

export function checkNumInferenceSteps(className: string, n: number, numTrain: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${className}: num_inference_steps must be a positive integer, got ${n}`);
  if (n > numTrain) throw new Error(`${className}: num_inference_steps ${n} cannot be larger than num_train_timesteps ${numTrain}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Shared behaviour
// ---------------------------------------------------------------------------------------------------------------

export abstract class BaseScheduler {
  abstract readonly name: string;
  abstract readonly className: string;
  readonly order: number = 1;
  timesteps: number[] = [];
  numInferenceSteps: number | null = null;

  protected requireTimesteps(): number {
    if (this.numInferenceSteps === null) throw new Error(`${this.className}: call setTimesteps(numInferenceSteps) before stepping`);
    return this.numInferenceSteps;
  }

  getTimestepsForStrength(numInferenceSteps: number, strength: number): { timesteps: number[]; numInferenceSteps: number } {
    if (!(strength > 0 && strength <= 1)) throw new RangeError(`strength must be in (0, 1], got ${strength}`);
    if (this.timesteps.length === 0) throw new Error(`${this.className}: call setTimesteps(${numInferenceSteps}) before getTimestepsForStrength`);
    const initTimestep = Math.min(Math.trunc(numInferenceSteps * strength), numInferenceSteps);
    const tStart = Math.max(numInferenceSteps - initTimestep, 0);
    return { timesteps: this.timesteps.slice(tStart * this.order), numInferenceSteps: numInferenceSteps - tStart };
  }

  scaleModelInput(sample: tf.Tensor, _timestep: number): tf.Tensor {
    return tf.clone(sample);
  }

  dispose(): void {}
}

/** ᾱ lookup with the bounds check torch's indexing would do. */
export function alphaAt(className: string, table: ArrayLike<number>, t: number): number {
  if (!Number.isInteger(t) || t < 0 || t >= table.length) throw new Error(`${className}: timestep ${t} is not an integer in [0, ${table.length})`);
  return table[t]!;
}

/** √ᾱ·x + √(1−ᾱ)·ε with ᾱ cast to float32 first (diffusers `add_noise` of the DDIM family and PNDM). */
export function addNoiseAlphaBar(alphaBar: number, original: tf.Tensor, noise: tf.Tensor): tf.Tensor {
  const a = f32(alphaBar);
  return tf.tidy(() => tf.add(tf.mul(original, sqrtF32(a)), tf.mul(noise, sqrtF32(f32(1 - a)))));
}

export function requireGenerator(className: string, options: StepOptions | undefined): Generator {
  if (!options?.generator) throw new Error(`${className}: this scheduler draws noise every step; pass options.generator`);
  return options.generator;
}
