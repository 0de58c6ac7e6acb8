// Sampler parity against diffusers v0.32.2 (fixtures from reference/gen_schedulers.py, layout in
// reference/scheduler_fixtures.md): schedules and ᾱ/σ tables in JS, step chains with the reference's noise injected
// on every backend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../src/nn/backend.js';
import { InjectedGenerator } from '../src/schedulers/generator.js';
import { createScheduler, loadScheduler, SCHEDULER_NAMES, type SchedulerName } from '../src/schedulers/index.js';
import { fmaF32, linspaceF32, roundHalfEven, type Scheduler, type SchedulerConfig } from '../src/schedulers/scheduler.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { diff, FIXTURES, loadFixture, useBackend, type Fixture, describeEachBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'schedulers');
const STEP_TOL = 1e-6; // rel-L2 per step against the diffusers fixtures
const CONFIG_NAMES = ['2b', '5b'] as const;
type ConfigName = (typeof CONFIG_NAMES)[number];
const SIGMA_SCHEDULERS: readonly string[] = ['Euler', 'Euler A', 'DPM++'];

interface NEntry {
  timesteps: number[];
  init_noise_sigma: number;
  strength: Record<string, { timesteps: number[]; num_inference_steps: number }>;
}
interface SchedulerInfo {
  class: string;
  order: number;
  alphas_cumprod_dtype: 'float32' | 'float64';
  final_alpha_cumprod?: number;
  N: Record<string, NEntry>;
}
const schedules = JSON.parse(fs.readFileSync(path.join(DIR, 'schedules.json'), 'utf8')) as {
  chain_N: number;
  latent_shape: number[];
  v2v: { N: number; strength: number; steps: number };
  configs: Record<ConfigName, Record<SchedulerName, SchedulerInfo>>;
};
const configs = Object.fromEntries(
  CONFIG_NAMES.map((c) => [c, JSON.parse(fs.readFileSync(path.join(DIR, c, 'scheduler_config.json'), 'utf8')) as SchedulerConfig]),
) as Record<ConfigName, SchedulerConfig>;
const tables = SafetensorsFile.open(path.join(DIR, 'tables.safetensors'));
const inputs = loadFixture(path.join(DIR, 'inputs.safetensors'));
const steps: Record<ConfigName, Fixture> = {
  '2b': loadFixture(path.join(DIR, 'steps_2b.safetensors')),
  '5b': loadFixture(path.join(DIR, 'steps_5b.safetensors')),
};
const stepNames: Record<ConfigName, Set<string>> = { '2b': new Set(steps['2b'].names()), '5b': new Set(steps['5b'].names()) };
const SHAPE = schedules.latent_shape;

/** The table as stored (F64 kept as doubles; loadFixture would round to float32). */
function table(name: string): Float64Array {
  const e = tables.entry(name);
  const bytes = tables.readBytes(name);
  if (e.dtype === 'F64') return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8).slice();
  if (e.dtype === 'F32') return Float64Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
  throw new Error(`${name}: unexpected dtype ${e.dtype}`);
}

/** Largest relative difference and the number of entries that differ at all. */
function tableDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): { maxRel: number; mismatches: number } {
  expect(actual.length).toBe(expected.length);
  let maxRel = 0;
  let mismatches = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a === e) continue;
    mismatches++;
    maxRel = Math.max(maxRel, Math.abs(a - e) / Math.max(Math.abs(e), 1e-30));
  }
  return { maxRel, mismatches };
}

/** Steps of the 5b config for the classes that ignore snr_shift_scale are stored once, under 2b. */
function stepFixture(cfg: ConfigName, key: string): Fixture {
  return stepNames[cfg].has(key) ? steps[cfg] : steps['2b'];
}

afterAll(() => shutdownBackend());

describe('registry and config handling', () => {
  it('builds every Fun name and rejects unknown names listing the valid ones', () => {
    expect(SCHEDULER_NAMES).toEqual(['DDIM_Origin', 'DDIM_Cog', 'DPM_Cog', 'Euler', 'Euler A', 'DPM++', 'PNDM']);
    for (const name of SCHEDULER_NAMES) {
      const s = createScheduler(name, configs['2b']);
      expect(s.name).toBe(name);
      expect(s.className).toBe(schedules.configs['2b'][name].class);
      expect(s.order).toBe(schedules.configs['2b'][name].order);
      expect(s.kind).toBe(name === 'DPM_Cog' ? 'cogvideox-dpm' : 'standard');
    }
    expect(() => createScheduler('DDIM', configs['2b'])).toThrow(
      'unknown scheduler "DDIM"; valid names: "DDIM_Origin", "DDIM_Cog", "DPM_Cog", "Euler", "Euler A", "DPM++", "PNDM"',
    );
    expect(() => loadScheduler('euler', path.join(DIR, '2b'))).toThrow(/unknown scheduler "euler"; valid names/);
  });

  it('reads scheduler_config.json from a folder', () => {
    const s = loadScheduler('DDIM_Cog', path.join(DIR, '5b'));
    expect(s.alphasCumprod).toEqual(createScheduler('DDIM_Cog', configs['5b']).alphasCumprod);
  });

  it('takes known keys from the config, ignores unknown ones, and checks types', () => {
    // the class defaults (epsilon, leading, no zero-SNR, s = 3) are wrong for these models: the config must win
    const cog5b = createScheduler('DDIM_Cog', configs['5b']);
    expect(cog5b.alphasCumprod[999]).toBe(0);
    const withDefaults = createScheduler('DDIM_Cog', {});
    expect(withDefaults.alphasCumprod[999]).toBeGreaterThan(0);
    withDefaults.setTimesteps(50);
    expect(withDefaults.timesteps.slice(0, 2)).toEqual([980, 960]); // leading spacing
    // snr_shift_scale is not a DDIMScheduler key: identical schedules for 2b and 5b
    expect(createScheduler('DDIM_Origin', configs['2b']).alphasCumprod).toEqual(createScheduler('DDIM_Origin', configs['5b']).alphasCumprod);
    expect(() => createScheduler('Euler', { ...configs['2b'], rescale_betas_zero_snr: 'yes' })).toThrow(/"rescale_betas_zero_snr" has the wrong type/);
    expect(() => createScheduler('PNDM', { ...configs['2b'], num_train_timesteps: 10.5 })).toThrow(/num_train_timesteps/);
    expect(() => createScheduler('Euler', { ...configs['2b'], use_karras_sigmas: true })).toThrow(/not implemented in this port/);
  });

  it('fmaF32 is the correctly rounded float32 a·b + c (checked with exact BigInt arithmetic)', () => {
    // x = m·2^e exactly, for a finite float32 x
    const exact = (x: number): [bigint, number] => {
      if (x === 0) return [0n, 0];
      let e = 0;
      let m = x;
      while (!Number.isInteger(m)) {
        m *= 2;
        e--;
      }
      return [BigInt(m), e];
    };
    const shift = (m: bigint, from: number, to: number) => m * 2n ** BigInt(from - to);
    // |v − target| compared exactly (both as integers at exponent `lo`)
    const nearest = (num: bigint, lo: number, candidates: number[]): number[] => {
      const dist = candidates.map((c) => {
        const [cm, ce] = exact(c);
        const d = shift(cm, ce, lo) - num;
        return d < 0n ? -d : d;
      });
      const best = dist.reduce((a, b) => (b < a ? b : a));
      return candidates.filter((_, i) => dist[i] === best);
    };
    const bits = new Float32Array(1);
    const u32 = new Uint32Array(bits.buffer);
    const neighbours = (r: number): number[] => {
      bits[0] = r;
      const i = u32[0]!;
      u32[0] = i + 1;
      const up = bits[0]!;
      u32[0] = i - 1;
      const down = bits[0]!;
      return [down, r, up];
    };
    // a·b + c = 1 + 2⁻²⁴ + 2⁻⁶⁰: the double sum lands on the float32 midpoint 1 + 2⁻²⁴, where Math.fround would
    // round to even (1); the true value is above it
    const a0 = Math.fround((1 + 2048 * 2 ** -23) * 2 ** -12);
    const b0 = Math.fround((1 - 4095 * 2 ** -24) * 2 ** -12);
    expect(Math.fround(a0 * b0 + 1)).toBe(1);
    expect(fmaF32(a0, b0, 1)).toBe(1 + 2 ** -23);
    expect(fmaF32(-a0, b0, -1)).toBe(-1 - 2 ** -23);
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let k = 0; k < 5000; k++) {
      const a = Math.fround((rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
      const b = Math.fround(k % 2 ? Math.floor(rnd() * 1000) : (rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
      const c = Math.fround((rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
      const r = fmaF32(a, b, c);
      const [am, ae] = exact(a);
      const [bm, be] = exact(b);
      const [cm, ce] = exact(c);
      const lo = Math.min(ae + be, ce, -160);
      const num = shift(am * bm, ae + be, lo) + shift(cm, ce, lo);
      const best = nearest(num, lo, r === 0 ? [r] : neighbours(r));
      expect(best, `fma(${a}, ${b}, ${c})`).toContain(r);
    }
  });

  it('reproduces torch float32 linspace (FMA form) and numpy round-half-even', () => {
    expect(fmaF32(Math.fround(0.1), 3, Math.fround(0.2))).toBe(Math.fround(Math.fround(0.1) * 3 + Math.fround(0.2)));
    expect(Array.from(linspaceF32(0, 1, 5))).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, 3]);
  });
});

describe.each(CONFIG_NAMES)('schedules, %s config', (cfg) => {
  it.each(SCHEDULER_NAMES)('%s: ᾱ table, timesteps (N = 50, 30, 7), σ tables, init noise σ, strength slices', (name) => {
    const info = schedules.configs[cfg][name];
    const s = createScheduler(name, configs[cfg]);
    const acRef = table(`${cfg}.${name}.alphas_cumprod`);
    const ac = tableDiff(s.alphasCumprod, acRef);
    if (info.alphas_cumprod_dtype === 'float64') {
      expect(s.alphasCumprod).toBeInstanceOf(Float64Array);
      expect(ac.maxRel, 'ᾱ (float64)').toBeLessThan(1e-12);
    } else {
      expect(s.alphasCumprod).toBeInstanceOf(Float32Array);
      // torch's CPU sqrt is not always correctly rounded, so the zero-SNR rescale may differ by a few ulp
      expect(ac.maxRel, 'ᾱ (float32)').toBeLessThan(4e-7);
    }
    console.log(`${cfg} ${name.padEnd(12)} ᾱ: ${ac.mismatches} of 1000 entries differ, max rel ${ac.maxRel.toExponential(2)}`);

    for (const [nStr, ref] of Object.entries(info.N)) {
      const n = Number(nStr);
      s.setTimesteps(n);
      expect(s.timesteps, `timesteps N=${n}`).toEqual(ref.timesteps);
      expect(s.initNoiseSigma, `init_noise_sigma N=${n}`).toBe(ref.init_noise_sigma);
      if (SIGMA_SCHEDULERS.includes(name)) {
        const sig = tableDiff((s as unknown as { sigmas: Float32Array }).sigmas, table(`${cfg}.${name}.N${n}.sigmas`));
        expect(sig.maxRel, `σ N=${n}`).toBeLessThan(4e-7);
      }
      for (const [strength, want] of Object.entries(ref.strength)) {
        const got = s.getTimestepsForStrength(n, Number(strength));
        expect(got.timesteps, `strength ${strength} N=${n}`).toEqual(want.timesteps);
        expect(got.numInferenceSteps).toBe(want.num_inference_steps);
      }
    }
    s.dispose();
  });

  it('published schedule values (scheduling_ddim_cogvideox.py on the 2b / 5b configs)', () => {
    const cog = createScheduler('DDIM_Cog', configs[cfg]).alphasCumprod;
    const want = cfg === '2b' ? [2.71943604e-5, 0.09532810086, 0.9465729792, 0.9974543276] : [8.57878434e-5, 0.2410187828, 0.9810104569, 0.99915];
    [979, 500, 19, 0].forEach((t, i) => expect(Math.abs(cog[t]! / want[i]! - 1)).toBeLessThan(1e-8));
    // Float32 values computed with numpy are up to 3.4e-6 (relative) away from what torch computes:
    // torch gives ᾱ_979 = 8.578792e-5 (numpy 8.578762936e-5) and the unrescaled ᾱ_999 = 0.004660095 (numpy
    // 0.004660098513). The fixtures (torch itself) are the reference; these only check the rough value.
    expect(Math.abs(createScheduler('PNDM', configs[cfg]).alphasCumprod[999]! / 0.004660098513 - 1)).toBeLessThan(1e-6);
    expect(Math.abs(createScheduler('DDIM_Origin', configs[cfg]).alphasCumprod[979]! / 8.578762936e-5 - 1)).toBeLessThan(5e-6);
  });
});

describe('strength validation', () => {
  it('rejects strength outside (0, 1] and slicing before setTimesteps', () => {
    const s = createScheduler('DDIM_Cog', configs['2b']);
    expect(() => s.getTimestepsForStrength(50, 0.5)).toThrow(/setTimesteps/);
    s.setTimesteps(50);
    for (const bad of [0, -0.1, 1.5, Number.NaN]) expect(() => s.getTimestepsForStrength(50, bad)).toThrow(/strength must be in \(0, 1\]/);
    expect(s.getTimestepsForStrength(50, 1).timesteps).toEqual(s.timesteps);
  });
});

interface StepStats {
  worst: number;
  worstLabel: string;
  count: number;
}

function check(stats: StepStats, label: string, actual: tf.Tensor, expected: Float32Array): void {
  expect(actual.shape, `${label}: shape`).toEqual(SHAPE);
  const d = diff(actual.dataSync() as Float32Array, expected);
  stats.count++;
  if (d.relL2 > stats.worst || stats.count === 1) {
    stats.worst = Math.max(stats.worst, d.relL2);
    if (d.relL2 >= stats.worst) stats.worstLabel = label;
  }
  expect(d.relL2, `${label}: rel-L2 (max-abs ${d.maxAbs.toExponential(2)})`).toBeLessThanOrEqual(STEP_TOL);
}

const fixtureKeys = new Map<Fixture, Set<string>>();
function has(fx: Fixture, key: string): boolean {
  let keys = fixtureKeys.get(fx);
  if (!keys) fixtureKeys.set(fx, (keys = new Set(fx.names())));
  return keys.has(key);
}

/** The recorded noise draws of one step, in order. */
function draws(fx: Fixture, prefix: string): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  for (let j = 0; has(fx, `${prefix}.noise.${j}`); j++) out.push(tf.tensor(fx.f32(`${prefix}.noise.${j}`), fx.shape(`${prefix}.noise.${j}`)));
  return out;
}

/**
 * Runs `timesteps` as the Fun loop does with the reference's noise draws injected. `teacherForced`: each step gets the
 * reference's input sample (and, for DPM_Cog, the reference's previous x̂0), so every step is compared on its own;
 * otherwise the loop feeds back its own outputs, as a pipeline does.
 */
function runSteps(
  s: Scheduler,
  name: string,
  fx: Fixture,
  phase: 'chain' | 'v2v',
  timesteps: readonly number[],
  sample0: tf.Tensor,
  stats: StepStats,
  label: string,
  teacherForced: boolean,
): void {
  let ownSample = tf.clone(sample0);
  let ownX0: tf.Tensor | null = null;
  for (let i = 0; i < timesteps.length; i++) {
    const t = timesteps[i]!;
    const p = `${name}.${phase}.${i}`;
    const sample = teacherForced && i > 0 ? tf.tensor(fx.f32(`${name}.${phase}.${i - 1}.prev_sample`), SHAPE) : ownSample;
    const v = tf.tensor(inputs.f32(`${phase}.${i}.model_output`), SHAPE);
    const noise = draws(fx, p);
    const generator = new InjectedGenerator(noise);
    const scaled = s.scaleModelInput(sample, t);
    if (name === 'Euler' || name === 'Euler A') check(stats, `${label} ${p} scaled`, scaled, fx.f32(`${p}.scaled`));
    else expect(Array.from(scaled.dataSync())).toEqual(Array.from(sample.dataSync()));
    let out;
    if (s.kind === 'cogvideox-dpm') {
      const old = i === 0 ? null : teacherForced ? tf.tensor(fx.f32(`${name}.${phase}.${i - 1}.pred_original_sample`), SHAPE) : ownX0;
      out = s.step(v, old, t, i > 0 ? timesteps[i - 1]! : null, sample, { generator });
      old?.dispose();
    } else {
      out = s.step(v, t, sample, { generator });
    }
    expect(generator.remaining, `${p}: every recorded draw consumed`).toBe(0);
    check(stats, `${label} ${p} prev_sample`, out.prevSample, fx.f32(`${p}.prev_sample`));
    const x0Key = `${p}.pred_original_sample`;
    if (has(fx, x0Key)) check(stats, `${label} ${x0Key}`, out.predOriginalSample!, fx.f32(x0Key));
    else expect(out.predOriginalSample).toBeUndefined();
    tf.dispose([sample, v, scaled, ...noise]);
    if (sample !== ownSample) ownSample.dispose();
    ownSample = out.prevSample;
    if (s.kind === 'cogvideox-dpm') {
      if (teacherForced) ownX0?.dispose(); // (free-running: already disposed as `old`)
      ownX0 = out.predOriginalSample!;
    } else {
      out.predOriginalSample?.dispose();
    }
  }
  ownSample.dispose();
  (ownX0 as tf.Tensor | null)?.dispose();
}

describeEachBackend('step parity on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  describe.each(CONFIG_NAMES)('%s config', (cfg) => {
    it.each(SCHEDULER_NAMES)('%s: full chain at N = 7, V2V (strength 0.7, N = 30), add_noise; teacher-forced and free-running', (name) => {
      const fx = stepFixture(cfg, `${name}.chain.0.prev_sample`);
      const stats: StepStats = { worst: 0, worstLabel: '', count: 0 };
      const before = tf.memory().numTensors;

      // chain: latents = ε · init_noise_sigma, then every scheduled timestep; teacher-forced, then free-running
      const unit = tf.tensor(inputs.f32('chain.sample0'), SHAPE);
      let sample0: tf.Tensor | null = null;
      for (const teacherForced of [true, false]) {
        const s = createScheduler(name, configs[cfg]);
        s.setTimesteps(schedules.chain_N);
        sample0 ??= tf.mul(unit, s.initNoiseSigma);
        runSteps(s, name, fx, 'chain', s.timesteps, sample0, stats, `${backend} ${cfg}${teacherForced ? '' : ' free'}`, teacherForced);
        s.dispose();
      }

      // V2V: set_timesteps(N) → strength slice → add_noise at its first timestep → steps
      const { N, strength, steps: nSteps } = schedules.v2v;
      const original = tf.tensor(inputs.f32('v2v.original'), SHAPE);
      const noise = tf.tensor(inputs.f32('v2v.noise'), SHAPE);
      for (const teacherForced of [true, false]) {
        const s2 = createScheduler(name, configs[cfg]);
        s2.setTimesteps(N);
        const { timesteps } = s2.getTimestepsForStrength(N, strength);
        const noisy = s2.addNoise(original, noise, timesteps[0]!);
        check(stats, `${backend} ${cfg} ${name}.v2v.sample0`, noisy, fx.f32(`${name}.v2v.sample0`));
        runSteps(s2, name, fx, 'v2v', timesteps.slice(0, nSteps), noisy, stats, `${backend} ${cfg}${teacherForced ? '' : ' free'}`, teacherForced);
        noisy.dispose();
        s2.dispose();
      }

      // add_noise at the first and last timestep of N = 30, on a fresh scheduler
      const s3 = createScheduler(name, configs[cfg]);
      s3.setTimesteps(N);
      for (const [which, t] of [['first', s3.timesteps[0]!], ['last', s3.timesteps[s3.timesteps.length - 1]!]] as const) {
        const y = s3.addNoise(original, noise, t);
        check(stats, `${backend} ${cfg} ${name}.add_noise.${which}`, y, fx.f32(`${name}.add_noise.${which}`));
        y.dispose();
      }
      s3.dispose();

      tf.dispose([unit, sample0!, original, noise]);
      expect(tf.memory().numTensors, 'no tensors leaked').toBe(before);
      console.log(`${backend} ${cfg} ${name.padEnd(12)} ${stats.count} tensors, worst rel-L2 ${stats.worst.toExponential(2)} (${stats.worstLabel})`);
    });
  });

  it.each(SCHEDULER_NAMES)('%s: a free-running 50-step loop keeps a bounded number of tensors', (name) => {
    const s = createScheduler(name, configs['2b']);
    s.setTimesteps(50);
    const before = tf.memory().numTensors;
    let latents = tf.tidy(() => tf.mul(tf.randomNormal(SHAPE, 0, 1, 'float32', 1), s.initNoiseSigma));
    let x0: tf.Tensor | null = null;
    const counts: number[] = [];
    const generator = { randnHost: () => new Float32Array(0), randn: (shape: readonly number[]) => tf.randomNormal(shape.slice(), 0, 1, 'float32', 7) };
    s.timesteps.forEach((t, i) => {
      const input = s.scaleModelInput(latents, t);
      const v = tf.tidy(() => tf.mul(input, 0.1));
      let out;
      if (s.kind === 'cogvideox-dpm') {
        out = s.step(v, x0, t, i > 0 ? s.timesteps[i - 1]! : null, latents, { generator });
        x0?.dispose();
        x0 = out.predOriginalSample;
      } else {
        out = s.step(v, t, latents, { generator });
        out.predOriginalSample?.dispose();
      }
      tf.dispose([input, v, latents]);
      latents = out.prevSample;
      counts.push(tf.memory().numTensors - before);
    });
    const finite = Array.from(latents.dataSync()).every(Number.isFinite);
    expect(finite, 'latents finite after the loop').toBe(true);
    latents.dispose();
    (x0 as tf.Tensor | null)?.dispose();
    // alive between steps: latents (+ x̂0 for DPM_Cog) and the scheduler's own history (DPM++: 2, PNDM: ≤ 6)
    expect(Math.max(...counts)).toBeLessThanOrEqual(7);
    s.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
