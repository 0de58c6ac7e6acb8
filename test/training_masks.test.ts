// Training schedule, inpaint masks, resize_mask and reference noise against CogVideoX-Fun's training code
// (fixtures: reference/gen_training.py, test/fixtures/training/{schedule,masks,resize_mask}.safetensors).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../src/nn/backend.js';
import { addNoiseToReferenceVideo, inpaintLatents, t2vFlags } from '../src/training/inpaint.js';
import { getRandomMask, maskPixelValues, resizeMask } from '../src/training/masks.js';
import { InjectedRandom, SeededRandom, type LoggedDraw } from '../src/training/random.js';
import { NoiseSchedule } from '../src/training/schedule.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { expectClose, FIXTURES, useBackend, describeEachBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'training');
afterAll(() => shutdownBackend());

function open(name: string): { f: SafetensorsFile; meta: any } {
  const f = SafetensorsFile.open(path.join(DIR, name));
  return { f, meta: JSON.parse(f.metadata.meta!) };
}
const f32 = (f: SafetensorsFile, k: string) => f.read(k).toFloat32();
const u8 = (f: SafetensorsFile, k: string) => Uint8Array.from(f.read(k).data as ArrayLike<number>);
const config = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'scheduler', 'scheduler_config.json'), 'utf8'));

describe('DDPM training schedule', () => {
  it('ᾱ equals DDPMScheduler.from_config bit for bit (2b and 5b configs), β within the sqrt rounding', () => {
    const { f } = open('schedule.safetensors');
    for (const [tag, dir] of [['2b', 'tiny-pipe-2b'], ['5b', 'tiny-pipe-5b']] as const) {
      const s = new NoiseSchedule(config(dir));
      expect(s.predictionType).toBe('v_prediction');
      expect(Array.from(s.alphasCumprod)).toEqual(Array.from(f32(f, `${tag}.alphas_cumprod`)));
      // β (not used by training) is recomputed: torch's CPU sqrt is 1 ulp off on some inputs (see ddpm_table.ts)
      expectClose(`${tag} betas`, s.betas, f32(f, `${tag}.betas`), [1000], { relL2: 4e-5 }); // measured 4.4e-6
      expect(s.alphasCumprod[999]).toBe(0);
    }
  });

  it('another β range is computed, not taken from the table', () => {
    const s = new NoiseSchedule({ ...config('tiny-pipe-2b'), beta_end: 0.02 });
    const ref = new NoiseSchedule(config('tiny-pipe-2b'));
    expect(s.alphasCumprod[500]).toBeLessThan(ref.alphasCumprod[500]!);
    expect(s.alphasCumprod[999]).toBe(0);
  });

  it('refuses a prediction type training cannot use', () => {
    expect(() => new NoiseSchedule({ ...config('tiny-pipe-2b'), prediction_type: 'sample' })).toThrow(/prediction_type "sample"/);
  });

  describeEachBackend('on %s', (backend) => {
    it('add_noise and get_velocity (t = 0, 1, 500, 998, 999)', async () => {
      await useBackend(backend);
      const { f } = open('schedule.safetensors');
      const s = new NoiseSchedule(config('tiny-pipe-2b'));
      const t = Array.from(f.read('noise.t').data as ArrayLike<number | bigint>, Number);
      const c = s.coefficients(t);
      // torch's CPU sqrt can be 1 ulp off the correctly rounded value ours gives
      const ulp = (got: Float32Array, want: Float32Array) => got.every((g, i) => Math.abs(g - want[i]!) <= 1.2e-7 * Math.abs(want[i]!));
      expect(ulp(c.sqrtAlpha, f32(f, 'noise.sa'))).toBe(true);
      expect(ulp(c.sqrtOneMinusAlpha, f32(f, 'noise.s1m'))).toBe(true);
      const shape = f.entry('noise.x0').shape.slice();
      const x0 = tf.tensor(f32(f, 'noise.x0'), shape);
      const eps = tf.tensor(f32(f, 'noise.eps'), shape);
      const before = tf.memory().numTensors;
      const noisy = s.addNoise(x0, eps, t);
      const v = s.target(x0, eps, t);
      expectClose('add_noise', noisy, f32(f, 'noise.noisy'), shape, { relL2: 3e-7, maxAbs: 1e-6 });
      expectClose('get_velocity', v, f32(f, 'noise.v'), shape, { relL2: 3e-7, maxAbs: 1e-6 });
      // predictX0 inverts them: x_t and the v target give back x0 (v-prediction; ε below)
      const back = s.predictX0(noisy, v, t);
      expectClose('predictX0 (v)', back, f32(f, 'noise.x0'), shape, { relL2: 5e-7, maxAbs: 5e-6 }); // measured 5.1e-8, 4.8e-7
      const eps1 = new NoiseSchedule({ ...config('tiny-pipe-2b'), prediction_type: 'epsilon' });
      const tLow = t.map((x) => Math.min(x, 500)); // √ᾱ → 0 as t → 999: the ε inverse divides by it
      const noisyLow = eps1.addNoise(x0, eps, tLow);
      const backEps = eps1.predictX0(noisyLow, eps, tLow);
      expectClose('predictX0 (ε)', backEps, f32(f, 'noise.x0'), shape, { relL2: 5e-7, maxAbs: 5e-6 }); // measured 4.4e-8, 4.8e-7
      tf.dispose([noisy, v, back, noisyLow, backEps]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x0, eps]);
    });
  });

  it('timesteps are torch.randint(0, 1000, (B,)) draws', () => {
    const { f } = open('schedule.safetensors');
    const want = Array.from(f.read('timesteps.draw').data as ArrayLike<number | bigint>, Number);
    const s = new NoiseSchedule(config('tiny-pipe-2b'));
    const rng = new InjectedRandom([{ src: 'torch.randint', value: want }]);
    expect(s.sampleTimesteps(rng, want.length)).toEqual(want);
    const seeded = s.sampleTimesteps(new SeededRandom(3), 1000);
    expect(Math.min(...seeded)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...seeded)).toBeLessThan(1000);
  });
});

describe('get_random_mask', () => {
  const { f, meta } = open('masks.safetensors');
  const cases = meta.cases as { shape: [number, number, number, number]; type: number; draws: (LoggedDraw & { tensor?: string })[]; mask: string }[];

  it('the fixtures cover all ten video types and both image types', () => {
    const video = new Set(cases.filter((c) => c.shape[0] !== 1).map((c) => c.type));
    const image = new Set(cases.filter((c) => c.shape[0] === 1).map((c) => c.type));
    expect([...video].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...image].sort()).toEqual([0, 1]);
  });

  it.each(cases.map((c, i) => [i, c.type, c.shape.join('×')] as const))('case %i (type %i, %s) replays to the same mask', (i) => {
    const c = cases[i]!;
    const want = u8(f, c.mask);
    const draws = c.draws.map((d) => (d.tensor ? { ...d, value: Array.from(u8(f, d.tensor)) } : d));
    const rng = new InjectedRandom(draws);
    const got = getRandomMask(c.shape, rng);
    expect(rng.remaining).toBe(0);
    expect(got.type).toBe(c.type);
    expect(got.data.length).toBe(want.length);
    expect(Buffer.from(got.data).equals(Buffer.from(want))).toBe(true);
  });

  it('masked pixels are exactly −1 (collate_fn)', () => {
    const pv = f32(f, 'mpv.pixel_values');
    const mask = u8(f, meta.mpv_mask);
    const got = maskPixelValues(pv, mask, 9, 32, 48);
    expect(Array.from(got)).toEqual(Array.from(f32(f, 'mpv.mask_pixel_values')));
  });

  it('a seeded stream draws valid masks of every type over many draws', () => {
    const rng = new SeededRandom(7);
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const m = getRandomMask([9, 3, 16, 24], rng);
      expect(m.data.length).toBe(9 * 16 * 24);
      seen.add(m.type);
    }
    expect(seen.size).toBe(10);
  });

  it('--video-mask-probs reweights the video types (same draws per mask), images keep Fun\'s', () => {
    const probs = [0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0];
    const a = new SeededRandom(11);
    const count = [0, 0, 0];
    for (let i = 0; i < 400; i++) {
      const m = getRandomMask([9, 3, 16, 24], a, probs);
      expect([1, 2]).toContain(m.type);
      count[m.type]!++;
      // a type-2 mask keeps the first k ∈ [1, 4] frames whole (np.random.randint(1, 5)) and masks the rest
      if (m.type === 2) {
        const k = m.data.indexOf(1) / (16 * 24);
        expect(k >= 1 && k <= 4 && Number.isInteger(k)).toBe(true);
        expect(m.data.subarray(k * 16 * 24).every((v) => v === 1)).toBe(true);
      }
    }
    expect(count[1]! > 150 && count[2]! > 150).toBe(true); // binomial(400, ½): 150 is 5 σ below the mean
    // an image (f = 1) draws from IMAGE_MASK_PROBS (types 0, 1) whatever the video table says
    const img = new SeededRandom(12);
    const types = new Set(Array.from({ length: 100 }, () => getRandomMask([1, 3, 16, 24], img, [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).type));
    expect([...types].sort()).toEqual([0, 1]);
  });

  it('--mask-kept-frames fixes the k of types 2 and 3; the draws (and so every later mask) stay the same', () => {
    const probs = [0.2, 0, 0.4, 0.4, 0, 0, 0, 0, 0, 0];
    const plain = new SeededRandom(21);
    const kept = new SeededRandom(21);
    const plane = 16 * 24;
    const ks = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const a = getRandomMask([9, 3, 16, 24], plain, probs);
      const b = getRandomMask([9, 3, 16, 24], kept, probs, 1);
      expect(b.type).toBe(a.type);
      if (a.type === 0) expect(Array.from(b.data)).toEqual(Array.from(a.data));
      if (a.type === 2 || a.type === 3) {
        ks.add(a.data.indexOf(1) / plane);
        // frame 0 kept, then generated; type 3 also keeps the last frame
        const gen = Array.from({ length: 9 }, (_, t) => b.data.subarray(t * plane, (t + 1) * plane).every((v) => v === 1));
        expect(gen).toEqual(Array.from({ length: 9 }, (_, t) => t >= 1 && (a.type === 2 || t < 8)));
      }
    }
    expect([...ks].sort()).toEqual([1, 2, 3, 4]); // Fun's k varies where ours is fixed
    expect(plain.npRand()).toBe(kept.npRand()); // the streams are still in step
  });

  it('a draw-order difference fails naming the draw', () => {
    const rng = new InjectedRandom([{ src: 'np.choice', value: 2 }, { src: 'torch.randint', value: [3] }]);
    expect(() => getRandomMask([9, 3, 16, 16], rng)).toThrow(/draw #2 is torch.randint, but np.randint/);
  });
});

describe('resize_mask and reference noise', () => {
  const { f, meta } = open('resize_mask.safetensors');
  it.each((meta.cases as unknown[]).map((_, i) => i))('resize_mask case %i equals F.interpolate trilinear exactly', (i) => {
    const c = meta.cases[i] as { latent: [number, number, number]; process_first_frame_only: boolean };
    const inShape = f.entry(`resize.${i}.in`).shape as [number, number, number, number, number];
    const m = Float32Array.from(u8(f, `resize.${i}.in`));
    const got = resizeMask(m, inShape, c.latent, c.process_first_frame_only);
    expect(Array.from(got)).toEqual(Array.from(f32(f, `resize.${i}.out`)));
  });

  it('add_noise_to_reference_video with the injected σ and noise', () => {
    const shape = f.entry('refnoise.image').shape.slice();
    const rng = new InjectedRandom([
      { src: 'torch.normal', value: Array.from(f32(f, 'refnoise.sigma_normal')) },
      { src: 'randn', value: f32(f, 'refnoise.noise') },
    ]);
    const got = addNoiseToReferenceVideo(f32(f, 'refnoise.image'), shape, rng);
    expectClose('reference noise', got, f32(f, 'refnoise.out'), shape, { relL2: 1e-7, maxAbs: 1e-6 });
    // masked pixels stay exactly −1
    const img = f32(f, 'refnoise.image');
    for (let i = 0; i < img.length; i++) if (img[i] === -1) expect(got[i]).toBe(-1);
  });

  it('t2v flags: rand() only for fully masked samples, flag 0 below 0.9', () => {
    const rng = new InjectedRandom([{ src: 'np.rand', value: 0.95 }, { src: 'np.rand', value: 0.05 }]);
    expect(t2vFlags([[1, 1], [0, 1], [1, 1]], rng)).toEqual([1, 1, 0]);
    expect(rng.remaining).toBe(0);
  });

  it('inpaint latents: flag and scaling factor on both the mask channel and the latents, b f c h w', () => {
    const mask = tf.ones([2, 1, 3, 2, 2]);
    const lat = tf.fill([2, 4, 3, 2, 2], 2);
    const out = inpaintLatents(mask, lat, [1, 0], 0.5);
    expect(out.shape).toEqual([2, 3, 5, 2, 2]);
    const v = out.arraySync() as number[][][][][];
    expect(v[0]![1]![0]![0]![0]).toBe(0.5);
    expect(v[0]![1]![1]![0]![0]).toBe(1);
    expect(v[1]![2]![3]![1]![1]).toBe(0);
    tf.dispose([mask, lat, out]);
  });
});
