// Long-video generation vs CogVideoX-Fun's UI loop on the tiny Fun checkpoint (fixtures: reference/gen_long_video.py).
// Every random draw of the reference (all segments, one generator) is injected in call order.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { T5EncoderModel } from '../src/models/t5.js';
import { T5Tokenizer } from '../src/models/t5_tokenizer.js';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { AutoencoderKLCogVideoX } from '../src/models/vae.js';
import { CogVideoXFunPipeline, type FunCallOptions } from '../src/pipelines/cogvideox_fun.js';
import type { RgbImage } from '../src/pipelines/inpaint.js';
import { generateLongVideo, planLongVideo, type LongVideoOptions } from '../src/pipelines/long_video.js';
import { InjectedGenerator } from '../src/schedulers/generator.js';
import { loadScheduler } from '../src/schedulers/index.js';
import { BACKENDS, diff, FIXTURES, loadFixture, TINY_MODEL, useBackend, type Fixture, describeEachBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'long_video');

interface Case {
  sampler: string;
  args: {
    num_inference_steps: number;
    height: number;
    width: number;
    length_slider: number;
    partial_video_length: number;
    overlap_video_length: number;
  };
  draws: { key: string; shape: number[] }[];
  segments: { index: number; init_frames: number; num_frames: number; end_image: boolean; output_frames_after: number }[];
  output_frames: number;
  tensors: Record<string, [string, number[]]>;
}

const INDEX = JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8')) as {
  component_sha256: Record<string, string>;
  common_args: { prompt: string; negative_prompt: string; guidance_scale: number };
  cases: Record<string, Case>;
};
const CASES = INDEX.cases;

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** The start / end image as get_image_to_video_latent resized it (u8 [H, W, 3]); the resize has its own tests. */
function inputImage(fx: Fixture, c: Case, which: 'start' | 'end'): RgbImage | undefined {
  const key = `input.${which}_image`;
  if (!c.tensors[key]) return undefined;
  const [height, width] = fx.shape(key) as [number, number];
  return { width, height, data: Uint8Array.from(fx.f32(key)) };
}

/** [1, 3, F, H, W] → uint8 frames [H·W·3], as (x·255).astype(uint8) of float32 products. */
function truncFrames(video: Float32Array, F: number, H: number, W: number): Uint8Array[] {
  const plane = H * W;
  return Array.from({ length: F }, (_, f) => {
    const px = new Uint8Array(plane * 3);
    for (let ch = 0; ch < 3; ch++) for (let i = 0; i < plane; i++) px[i * 3 + ch] = Math.trunc(Math.fround(video[(ch * F + f) * plane + i]! * 255));
    return px;
  });
}

function equalShare(got: Uint8Array[], exp: Uint8Array[]): { share: number; maxDiff: number } {
  let equal = 0;
  let total = 0;
  let maxDiff = 0;
  got.forEach((g, f) => {
    for (let i = 0; i < g.length; i++) {
      const d = Math.abs(g[i]! - exp[f]![i]!);
      if (d === 0) equal++;
      maxDiff = Math.max(maxDiff, d);
      total++;
    }
  });
  return { share: equal / total, maxDiff };
}

/**
 * forced: each later segment gets the reference's start images instead of ours (which are checked first), so the
 * parity of the stitching is measured without the chain's sensitivity: a start pixel whose truncation flips by one
 * level (ours vs the reference's float output differing by ~1e-6) changes the next segment by up to ~1e-4 on the
 * random tiny model, and that grows from segment to segment.
 */
async function runCase(name: string, forced: boolean): Promise<void> {
  const c = CASES[name]!;
  const a = { ...INDEX.common_args, ...c.args };
  for (const [file, sha] of Object.entries(INDEX.component_sha256)) {
    expect(sha256(path.join(TINY_MODEL, file)), `${file} changed since the fixture was generated (rerun reference/gen_long_video.py)`).toBe(sha);
  }
  const fx = loadFixture(path.join(DIR, `${name}.safetensors`));
  const generator = new InjectedGenerator(c.draws.map((d) => ({ data: fx.f32(d.key), shape: d.shape })));
  const transformer = await CogVideoXTransformer3DModel.fromPretrained(path.join(TINY_MODEL, 'transformer'));
  const textEncoder = await T5EncoderModel.fromPretrained(path.join(TINY_MODEL, 'text_encoder'));
  const vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(TINY_MODEL, 'vae'));
  const pipe = new CogVideoXFunPipeline({
    tokenizer: await T5Tokenizer.fromPretrained(path.join(TINY_MODEL, 'tokenizer')),
    textEncoder,
    transformer,
    vae,
    scheduler: loadScheduler(c.sampler, path.join(TINY_MODEL, 'scheduler')),
  });
  const H = a.height;
  const W = a.width;
  const O = a.overlap_video_length;
  /** The reference's start images of segment i (u8 [1, 3, O, H, W]) as RgbImages. */
  const refStarts = (i: number): RgbImage[] => {
    const ref = fx.f32(`segment.${i}.start_images`);
    return Array.from({ length: O }, (_, j) => {
      const data = new Uint8Array(H * W * 3);
      for (let ch = 0; ch < 3; ch++) for (let p = 0; p < H * W; p++) data[p * 3 + ch] = ref[(ch * O + j) * H * W + p]!;
      return { width: W, height: H, data };
    });
  };
  let segment = 0;
  const runner = {
    transformerConfig: pipe.transformerConfig,
    call: (o: FunCallOptions) => {
      const i = segment++;
      if (i > 0) {
        // our start images vs the reference's
        const ours = o.image as RgbImage[];
        expect(ours.length).toBe(O);
        const r = equalShare(ours.map((g) => g.data), refStarts(i).map((g) => g.data));
        console.log(`${name} segment ${i} start images: ${(r.share * 100).toFixed(3)} % equal, max diff ${r.maxDiff}`);
        if (forced || i === 1) expect(r.share).toBeGreaterThanOrEqual(0.999);
        if (forced) return pipe.call({ ...o, image: refStarts(i) });
      }
      return pipe.call(o);
    },
  };
  let result;
  try {
    result = await generateLongVideo(runner, {
      prompt: a.prompt,
      negativePrompt: a.negative_prompt,
      height: H,
      width: W,
      numInferenceSteps: a.num_inference_steps,
      guidanceScale: a.guidance_scale,
      generator,
      totalFrames: a.length_slider,
      segmentFrames: a.partial_video_length,
      overlap: O,
      image: inputImage(fx, c, 'start'),
      endImage: inputImage(fx, c, 'end'),
      keepVideo: true,
      onWarning: () => {},
    });
  } finally {
    transformer.dispose();
    textEncoder.dispose();
    vae.dispose();
  }
  try {
    expect(generator.remaining, 'every injected draw consumed').toBe(0);
    expect(segment).toBe(c.segments.length);
    expect(result.segments.map((s) => [s.startFrame, s.numFrames, s.last])).toEqual(
      c.segments.map((s, i) => [s.init_frames, s.num_frames, i === c.segments.length - 1]),
    );
    expect(result.frames.length).toBe(c.output_frames);
    expect([result.height, result.width]).toEqual([H, W]);
    const F = c.output_frames;
    expect(result.video!.shape).toEqual([1, 3, F, H, W]);
    const ours = result.video!.dataSync() as Float32Array;
    // frames are the truncation of the float video
    expect(equalShare(result.frames, truncFrames(ours, F, H, W)).share).toBe(1);

    const tag = `${name} (${forced ? 'reference start images' : 'free-running'})`;
    let expFrames: Uint8Array[];
    if (c.tensors.video) {
      const ref = fx.f32('video');
      const d = diff(ours, ref);
      console.log(`${tag} video: max-abs ${d.maxAbs.toExponential(2)} rel-L2 ${d.relL2.toExponential(2)}`);
      expect(d.relL2).toBeLessThanOrEqual(forced ? 1e-4 : 1e-3);
      expFrames = truncFrames(ref, F, H, W);
    } else {
      const u8 = fx.f32('frames_u8'); // [1, F, H, W, 3]
      expFrames = Array.from({ length: F }, (_, f) => Uint8Array.from(u8.subarray(f * H * W * 3, (f + 1) * H * W * 3)));
    }
    const { share, maxDiff } = equalShare(result.frames, expFrames);
    console.log(`${tag} frames_u8: ${(share * 100).toFixed(3)} % equal, max diff ${maxDiff}`);
    // Every pixel is within one level of the reference's in both modes.
    expect(maxDiff).toBeLessThanOrEqual(1);
    if (forced) {
      expect(share).toBeGreaterThanOrEqual(0.999);
    } else {
      // Free-running, the share of equal pixels falls with the number of hand-overs a frame went through, and only
      // there. Why: the next segment's start images are the uint8 TRUNCATION of the float frames, as the UI does
      // ((x·255).astype(uint8), cogvideox/ui/ui.py). Where the reference's float value lies within ~1e-6 of a level
      // boundary, our ~1e-6 float difference moves the pixel to the other level: a start-image difference of 1/255
      // (≈ 4e-3), a thousand times the float difference, which the next segment (VAE encode → a random tiny
      // transformer, Euler A noise) carries into its frames. With the reference's start images (forced) every
      // segment is ≥ 99.9 % equal, so the stitching itself is exact; the drift is the chain's sensitivity, which the
      // reference has as much (it is not a bug to fix without changing the UI's computation).
      // Which pixels flip differs from run to run: the float output itself varies in its last bits between runs of
      // the same process (the first segment's frames, which no hand-over touches, come out 99.90 % equal in one run
      // and 99.97 % in the next), so the chain amplifies a different set each time.
      // Measured (t2v_overlap3, 2 hand-overs; AMD EPYC AVX-512, tfjs-node, two runs): segment 0 only 99.90–99.97 %,
      // after 1 hand-over 99.80–99.87 %, after 2 96.84–99.48 % in the worse run (98.85 % overall; 99.97 % overall
      // in the other; 98.36 % overall on an AVX2 EPYC).
      // Bounds: ≥ 99.9 % before any hand-over (as forced), ≥ 99 % after one, ≥ 90 % after two (≈ 3× the worst
      // error seen), every pixel within one level.
      const bound = [0.999, 0.99, 0.9];
      const starts = c.segments.map((s) => s.init_frames);
      result.frames.forEach((fr, f) => {
        const handOvers = starts.filter((st) => st <= f).length - 1;
        const r = equalShare([fr], [expFrames[f]!]);
        expect(r.share, `${tag} frame ${f} (${handOvers} hand-overs)`).toBeGreaterThanOrEqual(bound[Math.min(handOvers, 2)]!);
      });
    }
  } finally {
    result.video?.dispose();
  }
}

describeEachBackend("long video vs CogVideoX-Fun's UI loop (%s)", (backend) => {
  for (const name of Object.keys(CASES)) {
    // free-running on the first backend only: the chain logic is the same on every backend
    for (const forced of backend === BACKENDS[0] ? [true, false] : [true]) {
      it(`${name}${forced ? ' (reference start images)' : ' (free-running)'}`, async () => {
        await useBackend(backend);
        const before = tf.memory().numTensors;
        await runCase(name, forced);
        expect(tf.memory().numTensors, 'no tensor leaked').toBe(before);
      }, 240_000);
    }
  }
});

describe('planLongVideo: the UI loop schedule', () => {
  it('matches the reference segments', () => {
    for (const c of Object.values(CASES)) {
      const plan = planLongVideo(c.args.length_slider, c.args.partial_video_length, c.args.overlap_video_length);
      expect(plan.segments.map((s) => [s.startFrame, s.numFrames])).toEqual(c.segments.map((s) => [s.init_frames, s.num_frames]));
      expect(plan.outputFrames).toBe(c.output_frames);
    }
  });
  it('UI defaults (P 25, O 4)', () => {
    const p = planLongVideo(100);
    expect(p.segments.map((s) => s.numFrames)).toEqual([25, 25, 25, 25, 13]);
    expect(p.segments.map((s) => s.startFrame)).toEqual([0, 21, 42, 63, 84]);
    expect(p.outputFrames).toBe(25 + 3 * 21 + 9); // 97 of the 100 asked
    expect(planLongVideo(25).segments).toEqual([{ index: 0, startFrame: 0, numFrames: 25, last: true }]);
    expect(planLongVideo(3).segments).toEqual([{ index: 0, startFrame: 0, numFrames: 1, last: true }]);
  });
  it('refuses bad options and the 1-frame tail the reference cannot run', () => {
    expect(() => planLongVideo(0)).toThrow(/totalFrames/);
    expect(() => planLongVideo(10.5)).toThrow(/totalFrames/);
    expect(() => planLongVideo(50, 24)).toThrow(/segmentFrames must be 4k \+ 1/);
    expect(() => planLongVideo(50, 1)).toThrow(/segmentFrames/);
    expect(() => planLongVideo(50, 25, 0)).toThrow(/overlap must be an integer in 1…4/);
    expect(() => planLongVideo(50, 25, 5)).toThrow(/overlap/);
    expect(() => planLongVideo(50, 25, 2.5)).toThrow(/overlap/);
    // O = 3, P = 5: init 0, 2, 4, …; L = 8 → last segment at init 4 gets ((8 − 4 − 1) // 4)·4 + 1 = 1 frame
    expect(() => planLongVideo(8, 5, 3)).toThrow(/1-frame last segment.*use totalFrames 7 or 9/);
    expect(() => planLongVideo(7, 5, 2)).toThrow(/1-frame last segment/);
    // O = 1: runs (the reference's does too)
    expect(planLongVideo(6, 5, 1).segments.map((s) => s.numFrames)).toEqual([5, 1]);
  });
});

describe('generateLongVideo: checks before any compute', () => {
  const config = JSON.parse(fs.readFileSync(path.join(TINY_MODEL, 'transformer', 'config.json'), 'utf8'));
  const pipe = {
    transformerConfig: config,
    call: () => {
      throw new Error('the pipeline must not be called');
    },
  } as unknown as CogVideoXFunPipeline;
  const img: RgbImage = { width: 2, height: 2, data: new Uint8Array(12) };
  const bad: [Partial<LongVideoOptions> & Record<string, unknown>, RegExp][] = [
    [{ totalFrames: 17, segmentFrames: 9, overlap: 9 }, /overlap/],
    [{ totalFrames: 17, segmentFrames: 8 }, /segmentFrames/],
    [{ totalFrames: 0, segmentFrames: 9 }, /totalFrames/],
    [{ totalFrames: 17, segmentFrames: 13 }, /numFrames 13 is more than this model supports \(9/],
    [{ totalFrames: 17, segmentFrames: 9, endImage: img }, /endImage needs a start image/],
    [{ totalFrames: 17, segmentFrames: 9, sourceVideo: [img] }, /sourceVideo is not supported/],
    [{ totalFrames: 17, segmentFrames: 9, strength: 0.5 }, /strength must be 1/],
    [{ totalFrames: 17, segmentFrames: 9, outputType: 'latent' }, /outputType is not supported/],
    [{ totalFrames: 17, segmentFrames: 9, prompt: ['a', 'b'] }, /one prompt/],
  ];
  for (const [o, re] of bad) {
    it(`${JSON.stringify(Object.keys(o).filter((k) => k !== 'totalFrames'))} → ${re.source}`, async () => {
      await expect(generateLongVideo(pipe, { prompt: 'x', ...o } as LongVideoOptions)).rejects.toThrow(re);
    });
  }
});

describe('generateLongVideo: stitching on a stand-in pipeline', () => {
  const config = JSON.parse(fs.readFileSync(path.join(TINY_MODEL, 'transformer', 'config.json'), 'utf8'));
  const H = 2;
  const W = 3;
  /** Segment i's frame f, channel c, pixel p: a value in [0, 1] that differs per segment. */
  const value = (i: number, f: number, c: number, p: number) => Math.fround(((i * 37 + f * 11 + c * 5 + p * 3) % 97) / 96.5);
  const standIn = (calls: FunCallOptions[], failAt = -1) => ({
    transformerConfig: config,
    call: async (o: FunCallOptions) => {
      const i = calls.length;
      calls.push(o);
      if (i === failAt) throw new Error('segment failed');
      const F = o.numFrames!;
      const data = new Float32Array(3 * F * H * W);
      for (let c = 0; c < 3; c++) for (let f = 0; f < F; f++) for (let p = 0; p < H * W; p++) data[(c * F + f) * H * W + p] = value(i, f, c, p);
      return { tensor: tf.tensor5d(data, [1, 3, F, H, W]) };
    },
  });
  /** The UI loop on plain arrays: video[c][f][p], float32 arithmetic. */
  function expected(segFrames: number[], O: number): number[][][] {
    let out: number[][][] = [];
    segFrames.forEach((F, i) => {
      const seg = [0, 1, 2].map((c) => Array.from({ length: F }, (_, f) => Array.from({ length: H * W }, (_, p) => value(i, f, c, p))));
      if (i === 0) {
        out = seg;
        return;
      }
      out = out.map((ch, c) => {
        const n = ch.length;
        const blended = ch.map((fr, f) => {
          if (f < n - O) return fr;
          const k = f - (n - O);
          const w = Math.fround(k / O);
          const b = seg[c]![Math.min(k, F - 1)]!; // a 1-frame segment broadcasts
          return fr.map((x, p) => Math.fround(Math.fround(x * Math.fround(1 - w)) + Math.fround(b[p]! * w)));
        });
        return [...blended, ...seg[c]!.slice(O)];
      });
    });
    return out;
  }
  const u8 = (x: number) => Math.trunc(Math.fround(x * 255));

  for (const [total, P, O] of [[13, 5, 4], [9, 5, 3], [6, 5, 1], [20, 9, 2]] as const) {
    it(`total ${total}, segment ${P}, overlap ${O}: frames, start images, endImage on the last segment only`, async () => {
      const before = tf.memory().numTensors;
      const calls: FunCallOptions[] = [];
      const start: RgbImage = { width: W, height: H, data: new Uint8Array(H * W * 3).fill(7) };
      const end: RgbImage = { width: W, height: H, data: new Uint8Array(H * W * 3).fill(9) };
      const res = await generateLongVideo(standIn(calls), { prompt: 'x', totalFrames: total, segmentFrames: P, overlap: O, image: start, endImage: end });
      const plan = planLongVideo(total, P, O);
      expect(calls.map((c) => c.numFrames)).toEqual(plan.segments.map((s) => s.numFrames));
      expect(calls.map((c) => c.endImage)).toEqual(plan.segments.map((s) => (s.last ? end : undefined)));
      expect(calls.every((c) => c.outputType === 'tensor' && c.generator === calls[0]!.generator)).toBe(true);
      expect(calls[0]!.image).toBe(start);
      const exp = expected(plan.segments.map((s) => s.numFrames), O);
      expect(res.frames.length).toBe(plan.outputFrames);
      expect(exp[0]!.length).toBe(plan.outputFrames);
      res.frames.forEach((fr, f) => {
        for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) expect(fr[p * 3 + c], `frame ${f} px ${p} ch ${c}`).toBe(u8(exp[c]![f]![p]!));
      });
      // later segments start from the truncated last O frames of the video so far
      for (let i = 1; i < calls.length; i++) {
        const so = expected(plan.segments.slice(0, i).map((s) => s.numFrames), O);
        const n = so[0]!.length;
        const imgs = calls[i]!.image as RgbImage[];
        expect(imgs.length).toBe(O);
        imgs.forEach((img, j) => {
          expect([img.width, img.height]).toEqual([W, H]);
          for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) expect(img.data[p * 3 + c]).toBe(u8(so[c]![n - O + j]![p]!));
        });
      }
      expect(tf.memory().numTensors, 'no tensor leaked').toBe(before);
    });
  }

  it('a failing segment leaks nothing', async () => {
    const before = tf.memory().numTensors;
    await expect(generateLongVideo(standIn([], 2), { prompt: 'x', totalFrames: 20, segmentFrames: 5, overlap: 4, keepVideo: true })).rejects.toThrow('segment failed');
    expect(tf.memory().numTensors).toBe(before);
  });
});
