// End-to-end parity of the pipelines with the original CogVideoX-Fun / diffusers pipelines on the tiny checkpoints
// (fixtures: reference/gen_pipelines.py, layout in reference/pipeline_fixtures.md). Every random draw of the reference
// is injected in call order; the text goes through our tokenizer and T5, the conditioning through our VAE.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { T5EncoderModel } from '../src/models/t5.js';
import { T5Tokenizer } from '../src/models/t5_tokenizer.js';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { AutoencoderKLCogVideoX } from '../src/models/vae.js';
import { CogVideoXFunPipeline } from '../src/pipelines/cogvideox_fun.js';
import { CogVideoXImageToVideoPipeline, CogVideoXPipeline } from '../src/pipelines/cogvideox.js';
import { CogVideoXVideoToVideoPipeline } from '../src/pipelines/video_to_video.js';
import type { PipelineOutput } from '../src/pipelines/common.js';
import { imageToVideoInputs, videoToVideoInputs, type RgbImage } from '../src/pipelines/inpaint.js';
import { readImage, readMask } from '../src/media/image.js';
import { resizeImage } from '../src/media/resize.js';
import { InjectedGenerator } from '../src/schedulers/generator.js';
import { loadScheduler } from '../src/schedulers/index.js';
import { BACKENDS, diff, expectClose, FIXTURES, loadFixture, useBackend, type Fixture, describeEachBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'pipelines');
const CASES = JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8')) as {
  cases: Record<string, Case>;
};

interface Case {
  pipeline: string;
  checkpoint: string;
  component_sha256: Record<string, string>;
  sampler: string;
  add_noise_in_inpaint_model: boolean;
  args: Record<string, unknown> & { prompt: string; negative_prompt: string | null; guidance_scale: number; num_inference_steps: number };
  draws: { key: string; shape: number[] }[];
  num_steps_run: number;
  tensors: Record<string, [string, number[]]>;
}

const TOL = { relL2: 1e-4 };

/** u8 [1, 3, F, H, W] fixture → one RgbImage per frame. */
function framesOf(fx: Fixture, key: string): RgbImage[] {
  const [, C, F, H, W] = fx.shape(key) as [number, number, number, number, number];
  const v = fx.f32(key);
  return Array.from({ length: F }, (_, f) => {
    const data = new Uint8Array(H * W * 3);
    for (let c = 0; c < C; c++) for (let i = 0; i < H * W; i++) data[i * 3 + c] = v[((c * F + f) * H * W) + i]!;
    return { width: W, height: H, data };
  });
}

async function components(c: Case, dir: string) {
  const tokenizer = await T5Tokenizer.fromPretrained(path.join(dir, 'tokenizer'));
  const textEncoder = await T5EncoderModel.fromPretrained(path.join(dir, 'text_encoder'));
  const transformer = await CogVideoXTransformer3DModel.fromPretrained(path.join(dir, 'transformer'));
  const vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(dir, 'vae'));
  const scheduler = loadScheduler(c.sampler, path.join(dir, 'scheduler'));
  return { tokenizer, textEncoder, transformer, vae, scheduler };
}

/** The Fun cases' inputs as a user passes them: image files, source frames, a mask image (high-level API). */
async function highLevelInputs(name: string): Promise<Record<string, unknown>> {
  const inp = (f: string) => path.join(DIR, 'inputs', f);
  const frames = async (n: number) => Promise.all(Array.from({ length: n }, (_, i) => readImage(inp(`v2v_0${i}.png`))));
  switch (name) {
    case 'fun_i2v':
      return { image: await readImage(inp('start_45x70.png')) };
    case 'fun_i2v_aug':
    case 'fun_i2v_n2': // one start image for both videos (the reference got its inputs repeated per video)
      return { image: await readImage(inp('start.png')) };
    case 'fun_start_end':
      return { image: await readImage(inp('start.png')), endImage: await readImage(inp('end.png')) };
    case 'fun_v2v':
      return { sourceVideo: await frames(9) };
    case 'fun_v2v_mask':
      return { sourceVideo: await frames(9), mask: await readMask(inp('v2v_mask_48x72.png')) };
    default:
      return {};
  }
}

async function runCase(name: string, highLevel = false): Promise<void> {
  const c = CASES.cases[name]!;
  const fx = loadFixture(path.join(DIR, `${name}.safetensors`));
  const dir = path.join(FIXTURES, c.checkpoint);
  for (const [file, sha] of Object.entries(c.component_sha256)) {
    const got = createHash('sha256').update(fs.readFileSync(path.join(dir, file))).digest('hex');
    expect(got, `${name}: ${file} changed since the fixture was generated (rerun reference/gen_pipelines.py)`).toBe(sha);
  }
  const generator = new InjectedGenerator(c.draws.map((d) => ({ data: fx.f32(d.key), shape: d.shape })));
  const comp = await components(c, dir);
  const got = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const onIntermediate = (k: string, t: tf.Tensor) => {
    got.set(k, (t.dataSync() as Float32Array).slice());
    shapes.set(k, t.shape.slice());
  };
  const a = c.args;
  const common = {
    prompt: a.prompt,
    negativePrompt: a.negative_prompt ?? undefined,
    height: a.height as number,
    width: a.width as number,
    numFrames: a.num_frames as number,
    numInferenceSteps: a.num_inference_steps,
    guidanceScale: a.guidance_scale,
    useDynamicCfg: (a.use_dynamic_cfg as boolean | undefined) ?? false,
    maxSequenceLength: (a.max_sequence_length as number | undefined) ?? 226,
    // the originals' prompt repeated prompt_batch times = numVideosPerPrompt (they overwrite num_videos_per_prompt)
    numVideosPerPrompt: (a.prompt_batch as number | undefined) ?? 1,
    generator,
    onIntermediate,
    onWarning: () => {},
  };
  let out: PipelineOutput;
  const steps: number[] = [];
  if (!c.pipeline.startsWith('CogVideoX-Fun CogVideoX_Fun_Pipeline_Inpaint')) {
    // diffusers' pipelines are loaded with from_pretrained(folder): the scheduler is the folder's _class_name, so no
    // sampler is passed here (the library default must pick the same class); CogVideoX-Fun's predict_t2v.py names
    // its sampler. Weights are loaded per stage from the folder.
    comp.textEncoder.dispose();
    comp.transformer.dispose();
    comp.vae.dispose();
    const fun = c.pipeline.startsWith('CogVideoX-Fun');
    const opts = fun ? { sampler: c.sampler } : {};
    const onStep = (s: { timestep: number }) => steps.push(s.timestep);
    let pipe: CogVideoXPipeline | CogVideoXImageToVideoPipeline | CogVideoXVideoToVideoPipeline | undefined;
    try {
      if (c.pipeline.includes('ImageToVideo')) {
        const p = await CogVideoXImageToVideoPipeline.fromPretrained(dir, opts);
        pipe = p;
        const [, , H, W] = fx.shape('input.image') as number[];
        const img = fx.f32('input.image');
        const data = new Uint8Array(H! * W! * 3);
        for (let ch = 0; ch < 3; ch++) for (let i = 0; i < H! * W!; i++) data[i * 3 + ch] = img[ch * H! * W! + i]!;
        expect(p.scheduler.name).toBe(c.sampler);
        out = await p.call({ ...common, image: { width: W!, height: H!, data }, onStep });
      } else if (c.pipeline.includes('VideoToVideo')) {
        const p = await CogVideoXVideoToVideoPipeline.fromPretrained(dir, opts);
        pipe = p;
        expect(p.scheduler.name).toBe(c.sampler);
        out = await p.call({ ...common, numFrames: undefined, video: framesOf(fx, 'input.video'), strength: a.strength as number, onStep });
      } else {
        const p = await CogVideoXPipeline.fromPretrained(dir, opts);
        pipe = p;
        expect(p.scheduler.name).toBe(c.sampler);
        expect(p.flavor).toBe(fun ? 'fun' : 'diffusers');
        out = await p.call({ ...common, onStep });
      }
    } finally {
      pipe?.dispose();
    }
  } else try {
    if (c.pipeline.startsWith('CogVideoX-Fun')) {
      // fun_i2v_aug: the reference sets add_noise_in_inpaint_model on the loaded model's config
      const pipe = new CogVideoXFunPipeline({
        ...comp,
        transformerConfig: { ...comp.transformer.config, add_noise_in_inpaint_model: c.add_noise_in_inpaint_model },
      });
      // the reference's own inputs: video = u8 / 255, mask 0 / 255
      const strength = (a.strength as number) ?? 1;
      if (highLevel) {
        out = await pipe.call({ ...common, ...(await highLevelInputs(name)), strength, onStep: (s) => steps.push(s.timestep) });
      } else {
        const video = tf.tidy(() => tf.div(tf.tensor(fx.f32('input.video'), fx.shape('input.video')), 255)) as tf.Tensor5D;
        const maskVideo = tf.tensor5d(fx.f32('input.mask_video'), fx.shape('input.mask_video') as [number, number, number, number, number]);
        try {
          out = await pipe.call({ ...common, video, maskVideo, strength, onStep: (s) => steps.push(s.timestep) });
        } finally {
          tf.dispose([video, maskVideo]);
        }
      }
    }
  } finally {
    comp.textEncoder.dispose();
    comp.transformer.dispose();
    comp.vae.dispose();
  }
  expect(generator.remaining, `${name}: every injected draw consumed`).toBe(0);
  expect(steps.length).toBe(c.num_steps_run);
  steps.forEach((t, k) => expect(t, `step ${k} timestep`).toBe(fx.f32(`step.${k}.t`)[0]));

  const check = (key: string, ours: string, firstHalf = false) => {
    const exp = fx.f32(key);
    const shape = fx.shape(key);
    let v = got.get(ours);
    expect(v, `${name}: pipeline did not produce ${ours}`).toBeDefined();
    if (firstHalf) v = v!.subarray(0, exp.length);
    if (highLevel && v!.length < exp.length && exp.length % v!.length === 0) {
      // conditioning given once (batch 1) where the reference got it once per video: its rows are identical
      expectClose(`${name} ${key} (batch row 0)`, v!, exp.subarray(0, v!.length), [1, ...shape.slice(1)], TOL);
      return;
    }
    expectClose(`${name} ${key}`, v!, exp, shape, TOL);
    if (!firstHalf) expect(shapes.get(ours)).toEqual(shape);
  };
  const keys = Object.keys(c.tensors);
  for (const k of ['init_latents', 'inpaint_latents', 'mask_latents', 'masked_latents', 'video_latents', 'image_latents', 'latents', 'video']) {
    if (keys.includes(k)) check(k, k);
  }
  if (keys.includes('mask')) check('mask', 'mask');
  for (let k = 0; k < c.num_steps_run; k++) {
    check(`step.${k}.transformer_in`, `step.${k}.transformer_in`, true);
    check(`step.${k}.noise_pred`, `step.${k}.noise_pred`);
    check(`step.${k}.noise_pred_cfg`, `step.${k}.noise_pred_cfg`);
    check(`step.${k}.latents`, `step.${k}.latents`);
  }
  // final uint8 frames of every video: ≥ 99.9 % equal
  const exp = fx.f32('frames_u8');
  const [nv, F, H, W] = fx.shape('frames_u8') as number[];
  expect(out!.videos!.length).toBe(nv);
  let equal = 0;
  let maxDiff = 0;
  out!.videos!.forEach((vid, b) => {
    expect(vid.frames.length).toBe(F);
    expect([vid.height, vid.width]).toEqual([H, W]);
    vid.frames.forEach((fr, f) => {
      for (let i = 0; i < fr.length; i++) {
        const d = Math.abs(fr[i]! - exp[(b * F! + f) * fr.length + i]!);
        if (d === 0) equal++;
        maxDiff = Math.max(maxDiff, d);
      }
    });
  });
  const share = equal / exp.length;
  console.log(`${name} frames_u8: ${(share * 100).toFixed(3)} % equal, max diff ${maxDiff}`);
  expect(share).toBeGreaterThanOrEqual(0.999);
}

describeEachBackend('pipelines vs the original (%s)', (backend) => {
  for (const name of Object.keys(CASES.cases)) {
    it(`${name}`, async () => {
      await useBackend(backend);
      const before = tf.memory().numTensors;
      await runCase(name);
      expect(tf.memory().numTensors, 'no tensor leaked').toBe(before);
    }, 240_000);
  }
});

describe(`Fun pipeline from image files / frames / mask image (${BACKENDS[0]})`, () => {
  for (const name of ['fun_t2v', 'fun_i2v', 'fun_start_end', 'fun_v2v_mask', 'fun_image', 'fun_i2v_n2']) {
    it(name, async () => {
      await useBackend(BACKENDS[0]!);
      const before = tf.memory().numTensors;
      await runCase(name, true);
      expect(tf.memory().numTensors, 'no tensor leaked').toBe(before);
    }, 240_000);
  }
});

describe('conditioning inputs as the predict scripts build them', () => {
  const same = (img: RgbImage, w: number, h: number) => {
    if (img.width !== w || img.height !== h) throw new Error('unexpected resize');
    return img;
  };
  it('start + end images → video and mask of fun_start_end', async () => {
    const fx = loadFixture(path.join(DIR, 'fun_start_end.safetensors'));
    const frames = framesOf(fx, 'input.video');
    const { video, maskVideo } = imageToVideoInputs(frames[0]!, frames[frames.length - 1]!, frames.length, 32, 48, same);
    expect(diff(video.dataSync(), fx.f32('input.video').map((x) => Math.fround(x / 255))).maxAbs).toBe(0);
    expect(diff(maskVideo.dataSync(), fx.f32('input.mask_video')).maxAbs).toBe(0);
    tf.dispose([video, maskVideo]);
  });
  it('a 45×70 start image file → the BICUBIC-resized video and mask of fun_i2v (PIL-exact resize)', async () => {
    const fx = loadFixture(path.join(DIR, 'fun_i2v.safetensors'));
    const img = await readImage(path.join(DIR, 'inputs', 'start_45x70.png'));
    const bicubic = (im: RgbImage, w: number, h: number) => resizeImage({ ...im, channels: 3 }, w, h, 'bicubic');
    const { video, maskVideo } = imageToVideoInputs(img, null, 9, 32, 48, bicubic);
    expect(diff(video.dataSync(), fx.f32('input.video').map((x) => Math.fround(x / 255))).maxAbs).toBe(0);
    expect(diff(maskVideo.dataSync(), fx.f32('input.mask_video')).maxAbs).toBe(0);
    tf.dispose([video, maskVideo]);
  });
  it('V2V mask image → the mask of fun_v2v_mask (grayscale, PIL BICUBIC, < 240 keeps)', async () => {
    const fx = loadFixture(path.join(DIR, 'fun_v2v_mask.safetensors'));
    const frames = framesOf(fx, 'input.video');
    const mask = await readMask(path.join(DIR, 'inputs', 'v2v_mask_48x72.png'));
    const gray = (im: { width: number; height: number; data: Uint8Array }, w: number, h: number) => resizeImage({ ...im, channels: 1 }, w, h, 'bicubic');
    const { video, maskVideo } = videoToVideoInputs(frames, 5, 32, 48, mask, gray);
    expect(diff(maskVideo.dataSync(), fx.f32('input.mask_video')).maxAbs).toBe(0);
    tf.dispose([video, maskVideo]);
  });
  it('source frames (no mask) → video and mask of fun_v2v', async () => {
    const fx = loadFixture(path.join(DIR, 'fun_v2v.safetensors'));
    const frames = framesOf(fx, 'input.video');
    const { video, maskVideo } = videoToVideoInputs(frames, 9, 32, 48, null, () => {
      throw new Error('no resize expected');
    });
    expect(diff(video.dataSync(), fx.f32('input.video').map((x) => Math.fround(x / 255))).maxAbs).toBe(0);
    expect(diff(maskVideo.dataSync(), fx.f32('input.mask_video')).maxAbs).toBe(0);
    tf.dispose([video, maskVideo]);
  });
  it('T2V → zero video, all-255 mask (fun_t2v)', async () => {
    const fx = loadFixture(path.join(DIR, 'fun_t2v.safetensors'));
    const { video, maskVideo } = imageToVideoInputs(null, null, 5, 32, 48, same);
    expect(diff(video.dataSync(), fx.f32('input.video')).maxAbs).toBe(0);
    expect(diff(maskVideo.dataSync(), fx.f32('input.mask_video')).maxAbs).toBe(0);
    tf.dispose([video, maskVideo]);
  });
});
