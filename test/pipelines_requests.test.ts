// Pipeline requests: bad ones fail with a clear message before any model is loaded or run; folder loading stages
// the models (T5 gone before the transformer, the transformer before the decode) and computes what the parity test does.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { T5Tokenizer } from '../src/models/t5_tokenizer.js';
import { AutoencoderKLCogVideoX } from '../src/models/vae.js';
import { CogVideoXFunPipeline, type FunCallOptions } from '../src/pipelines/cogvideox_fun.js';
import { CogVideoXPipeline } from '../src/pipelines/cogvideox.js';
import { sizeFromReference } from '../src/pipelines/rules.js';
import { InjectedGenerator, PhiloxGenerator } from '../src/schedulers/generator.js';
import { loadScheduler } from '../src/schedulers/index.js';
import { readConfig } from '../src/weights/checkpoint.js';
import type { TransformerConfig } from '../src/weights/transformer_names.js';
import { BACKENDS, FIXTURES, loadFixture, TINY_MODEL, useBackend } from './helpers.js';

const never = async (): Promise<never> => {
  throw new Error('a model was loaded for a request that should have been refused');
};

async function guardedFun(): Promise<CogVideoXFunPipeline> {
  return new CogVideoXFunPipeline({
    tokenizer: await T5Tokenizer.fromPretrained(path.join(TINY_MODEL, 'tokenizer')),
    textEncoder: never,
    transformer: never,
    transformerConfig: readConfig<TransformerConfig>(path.join(TINY_MODEL, 'transformer')),
    vae: await AutoencoderKLCogVideoX.fromPretrained(path.join(TINY_MODEL, 'vae')),
    scheduler: loadScheduler('DDIM_Origin', path.join(TINY_MODEL, 'scheduler')),
  });
}

const img = (w: number, h: number) => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(128) });

describe('invalid requests fail before compute', () => {
  beforeAll(async () => {
    await useBackend(BACKENDS[0]!);
  });
  const base: FunCallOptions = { prompt: 'a dog', height: 32, width: 48, numFrames: 5, numInferenceSteps: 2 };
  const cases: [string, FunCallOptions, RegExp][] = [
    ['end image without start', { ...base, endImage: img(48, 32) }, /endImage needs a start image/],
    ['strength 0', { ...base, sourceVideo: [img(48, 32)], strength: 0 }, /strength must be in \(0, 1\]/],
    ['strength 1.5', { ...base, sourceVideo: [img(48, 32)], strength: 1.5 }, /strength must be in \(0, 1\]/],
    ['strength < 1 without a source video', { ...base, strength: 0.5 }, /needs a source video/],
    ['frames not 4k+1', { ...base, numFrames: 6 }, /numFrames must be 1 or 4k \+ 1.*got 6; nearest: 5 or 9/],
    // the tiny Fun-2b config has sample_frames 9 (the real one 49)
    ['too many frames for the 2b position table', { ...base, numFrames: 13 }, /numFrames 13 is more than this model supports \(9: its position table covers 9 frames\)/],
    ['height not a multiple of 16', { ...base, height: 40 }, /height must be a positive multiple of 16.*got 40/],
    ['width not a multiple of 16', { ...base, width: 50 }, /width must be a positive multiple of 16.*got 50/],
    ['negative guidance', { ...base, guidanceScale: -1 }, /guidanceScale must be a finite number ≥ 0, got -1/],
    ['zero steps', { ...base, numInferenceSteps: 0 }, /numInferenceSteps must be a positive integer/],
    ['no prompt', { ...base, prompt: undefined }, /provide prompt or promptEmbeds/],
    ['a broken image', { ...base, image: { width: 4, height: 4, data: new Uint8Array(5) } }, /start image 0: expected 4×4×3 uint8 values, got 5/],
    ['mask without a source video', { ...base, mask: { width: 48, height: 32, data: new Uint8Array(48 * 32) } }, /mask applies to sourceVideo/],
    ['image and source video', { ...base, image: img(48, 32), sourceVideo: [img(48, 32)] }, /only one of/],
    ['bad output type', { ...base, outputType: 'gif' as never }, /outputType must be/],
  ];
  for (const [what, opts, msg] of cases) {
    it(what, async () => {
      const pipe = await guardedFun();
      const before = tf.memory().numTensors;
      await expect(pipe.call(opts)).rejects.toThrow(msg);
      expect(tf.memory().numTensors).toBe(before);
    });
  }
  it('unknown scheduler name', async () => {
    await expect(CogVideoXFunPipeline.fromPretrained(TINY_MODEL, { sampler: 'DDIM_Fast' })).rejects.toThrow(
      /unknown scheduler "DDIM_Fast"; valid names: "DDIM_Origin", "DDIM_Cog", "DPM_Cog", "Euler", "Euler A", "DPM\+\+", "PNDM"/,
    );
  });
  it('a model folder missing a component', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cvx-'));
    for (const c of ['tokenizer', 'text_encoder', 'scheduler']) fs.symlinkSync(path.join(TINY_MODEL, c), path.join(dir, c));
    await expect(CogVideoXFunPipeline.fromPretrained(dir)).rejects.toThrow(/missing transformer\/, vae\//);
    fs.rmSync(dir, { recursive: true });
  });
  it('a THUDM checkpoint in the Fun pipeline, and the reverse', async () => {
    await expect(CogVideoXFunPipeline.fromPretrained(path.join(FIXTURES, 'tiny-pipe-2b'))).rejects.toThrow(/needs an inpaint \(InP\) transformer with 33 input channels, this one has 16/);
    await expect(CogVideoXPipeline.fromPretrained(TINY_MODEL)).rejects.toThrow(/needs a transformer with 16 input channels, this one has 33/);
  });
  it('an abort signal stops before the next step and leaves no tensors', async () => {
    const pipe = await CogVideoXFunPipeline.fromPretrained(TINY_MODEL);
    const ctl = new AbortController();
    const before = tf.memory().numTensors;
    const run = pipe.call({ ...base, numInferenceSteps: 3, signal: ctl.signal, generator: new PhiloxGenerator(1), onStep: () => ctl.abort() });
    await expect(run).rejects.toThrow(/abort/i);
    pipe.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('folder loading', () => {
  beforeAll(async () => {
    await useBackend(BACKENDS[0]!);
  });
  it('fromPretrained(tiny Fun folder) reproduces fun_t2v, with the models loaded per stage', async () => {
    const fx = loadFixture(path.join(FIXTURES, 'pipelines', 'fun_t2v.safetensors'));
    // the fixture ran the predict scripts' sampler; the library default would be the folder's CogVideoXDDIMScheduler
    const pipe = await CogVideoXFunPipeline.fromPretrained(TINY_MODEL, { sampler: 'DDIM_Origin' });
    const before = tf.memory().numTensors;
    const out = await pipe.call({
      prompt: 'The dog is shaking head. The video is of high quality, and the view is very clear. High quality, masterpiece, best quality, highres, ultra-detailed, fantastic.',
      negativePrompt:
        'The video is not of a high quality, it has a low resolution. Watermark present in each frame. The background is solid. Strange body and strange trajectory. Distortion. ',
      height: 32,
      width: 48,
      numFrames: 5,
      numInferenceSteps: 5,
      generator: new InjectedGenerator([{ data: fx.f32('draw.00.latents'), shape: fx.shape('draw.00.latents') }]),
      outputType: 'latent',
    });
    const latents = out.tensor!;
    const exp = fx.f32('latents');
    const got = latents.dataSync();
    let num = 0;
    let den = 0;
    for (let i = 0; i < exp.length; i++) {
      num += (got[i]! - exp[i]!) ** 2;
      den += exp[i]! ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(1e-4);
    latents.dispose();
    expect(tf.memory().numTensors, 'the staged models left nothing on the backend').toBe(before);
    pipe.dispose();
  });
});

describe('resolution buckets', () => {
  it('resize to the reference image as the Fun UI', () => {
    expect(sizeFromReference(720, 1280, 512)).toEqual([384, 672]); // 0.5625 → key 0.57
    expect(sizeFromReference(1024, 1024, 768)).toEqual([768, 768]);
    expect(sizeFromReference(1280, 720, 960)).toEqual([1248, 720]); // 1.78 → key 1.75: [672, 384] × 1.875
    expect(() => sizeFromReference(0, 10)).toThrow(/positive/);
  });
});
