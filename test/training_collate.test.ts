// --random-hw-adapt (with and without --training-with-video-token-length) against CogVideoX-Fun's own collate_fn
// (fixture: reference/gen_training_collate.py → test/fixtures/training/collate.json): given the original's logged
// rng.choice draws, the batch gets the same downsample ratio, bucket size, resize, crop and frame count, and the
// masks are drawn on the same (full-length) shapes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { collatePlan, downsampleChoices, possibleShapes, type CollateExample } from '../src/training/collate.js';
import { InjectedRandom, SeededRandom, type LoggedDraw } from '../src/training/random.js';
import { FIXTURES } from './helpers.js';

interface Case {
  video_sample_size: number;
  image_sample_size: number;
  video_sample_n_frames: number;
  token_sample_size: number;
  training_with_video_token_length: boolean;
  random_hw_adapt: boolean;
  patch_size_t: number | null;
  examples: CollateExample[];
  draws: LoggedDraw[];
  resize: [number, number][];
  crop: [number, number][];
  mask_shapes: number[][];
  pixel_values: number[];
}

const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'training', 'collate.json'), 'utf8')) as { cases: Case[] };
const opts = (c: Case) => ({
  videoSampleSize: c.video_sample_size,
  imageSampleSize: c.image_sample_size,
  videoSampleNFrames: c.video_sample_n_frames,
  tokenSampleSize: c.token_sample_size,
  temporalCompression: 4,
  patchSizeT: c.patch_size_t,
  randomHwAdapt: c.random_hw_adapt,
  trainingWithVideoTokenLength: c.training_with_video_token_length,
});

describe('collate_fn with --random-hw-adapt (train.py:1028-1159)', () => {
  it('same sizes and frame counts as the original given its draws', () => {
    expect(fixture.cases.length).toBeGreaterThan(100);
    const ratios = new Set<number>();
    for (const c of fixture.cases) {
      const rng = new InjectedRandom(c.draws);
      const plan = collatePlan(c.examples, opts(c), rng);
      const what = JSON.stringify({ ...c, draws: c.draws.map((d) => d.value), resize: undefined, crop: undefined });
      expect(rng.remaining, what).toBe(0);
      const [B, F, , H, W] = c.pixel_values;
      expect([plan.frames, ...plan.geometry.size], what).toEqual([F, H, W]);
      expect(B).toBe(c.examples.length);
      // the geometry of examples[0] is applied to every example
      for (const r of c.resize) expect(plan.geometry.resize, what).toEqual(r);
      for (const cr of c.crop) expect(plan.geometry.crop, what).toEqual(cr);
      // masks are drawn on each example's full-length clip at the batch size, before the cut
      expect(c.mask_shapes, what).toEqual(c.examples.map((e) => [e.frames, 3, H, W]));
      ratios.add(plan.ratio);
      // every drawn geometry is among those the memory check considers
      expect(possibleShapes(c.examples[0]!, opts(c)).some((s) => s[1] === H && s[2] === W)).toBe(true);
    }
    // the fixture exercises several ratios (the draws are not all index 0)
    expect(ratios.size).toBeGreaterThan(4);
  });

  it('get_random_downsample_ratio lists (train.py:81-111)', () => {
    expect(downsampleChoices(1024, [2])).toEqual({ ratios: [1, 1.25, 1.5, 2, 2], p: [0.75, 0.0625, 0.0625, 0.0625, 0.0625] });
    expect(downsampleChoices(256, [4])).toEqual({ ratios: [1], p: [1] });
    expect(downsampleChoices(1536).ratios).toEqual([1, 1.25, 1.5, 2, 2.5, 3]);
    // the seeded stream gives valid choices, and a one-entry list still draws (numpy's choice(p=[1.0]) does)
    const rng = new SeededRandom(3);
    const before = rng.position.uniforms;
    collatePlan([{ type: 'image', frames: 1, height: 100, width: 100 }], { ...opts(fixture.cases[0]!), imageSampleSize: 256, randomHwAdapt: true }, rng);
    expect(rng.position.uniforms).toBe(before + 1);
    expect(() => collatePlan([], opts(fixture.cases[0]!), rng)).toThrow(/empty batch/);
  });

  it('a SeededRandom restored from a saved position continues the same stream (resume)', () => {
    const a = new SeededRandom(42);
    a.randn([3, 5]);
    a.npRand();
    a.torchRandint(0, 1000, 4);
    const b = new SeededRandom(42, a.position);
    expect(b.position).toEqual(a.position);
    expect(Array.from(b.randn([2, 3]))).toEqual(Array.from(a.randn([2, 3])));
    expect(b.npRand()).toBe(a.npRand());
    // a position far past what could be drawn and held in memory restores at once
    const far = new SeededRandom(42, { normals: 7_623_494_000, uniforms: 195_671_779 });
    expect(far.position).toEqual({ normals: 7_623_494_000, uniforms: 195_671_779 });
    expect(far.randn([4]).every(Number.isFinite)).toBe(true);
  });
});
