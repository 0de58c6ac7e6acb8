// What decides how a checkpoint runs (family, pipeline kind, flavor, default sampler: each decided once from the
// folder's own files) and cancellation from another event source (a timer) while a run is under way.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { inspectModelFolder } from '../src/cli/model_folder.js';
import { CogVideoXFunPipeline } from '../src/pipelines/cogvideox_fun.js';
import { CogVideoXImageToVideoPipeline, CogVideoXPipeline } from '../src/pipelines/cogvideox.js';
import { maxFramesFor } from '../src/pipelines/rules.js';
import { CogVideoXVideoToVideoPipeline } from '../src/pipelines/video_to_video.js';
import { PhiloxGenerator } from '../src/schedulers/generator.js';
import { folderSampler, SAMPLER_FOR_CLASS, SCHEDULER_NAMES, createScheduler } from '../src/schedulers/index.js';
import { readConfig } from '../src/weights/checkpoint.js';
import type { TransformerConfig } from '../src/weights/transformer_names.js';
import { BACKENDS, FIXTURES, TINY_MODEL, useBackend, describeEachBackend } from './helpers.js';

const FUN_T2V = path.join(FIXTURES, 'tiny-fun-t2v');
const PIPE_2B = path.join(FIXTURES, 'tiny-pipe-2b');

/** A copy of a model folder (components linked) whose transformer/config.json is `edit`ed. */
function folderWithConfig(src: string, edit: (c: Record<string, unknown>) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cvx-kind-'));
  for (const c of ['tokenizer', 'text_encoder', 'vae', 'scheduler']) fs.symlinkSync(fs.realpathSync(path.join(src, c)), path.join(dir, c));
  fs.mkdirSync(path.join(dir, 'transformer'));
  const t = fs.realpathSync(path.join(src, 'transformer'));
  fs.symlinkSync(path.join(t, 'diffusion_pytorch_model.safetensors'), path.join(dir, 'transformer', 'diffusion_pytorch_model.safetensors'));
  const c = JSON.parse(fs.readFileSync(path.join(t, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(c);
  fs.writeFileSync(path.join(dir, 'transformer', 'config.json'), JSON.stringify(c));
  return dir;
}

describe('checkpoint family, pipeline kind and flavor come from config.json', () => {
  beforeAll(async () => {
    await useBackend(BACKENDS[0]!);
  });
  it('a CogVideoX-Fun text-to-video folder (16 channels, add_noise_in_inpaint_model) is fun-t2v, runs in CogVideoXPipeline as Fun', async () => {
    expect(inspectModelFolder(FUN_T2V).kind).toBe('fun-t2v');
    expect(inspectModelFolder(FUN_T2V).defaultSampler).toBe('DDIM_Origin'); // the CLI's documented default for Fun
    const pipe = await CogVideoXPipeline.fromPretrained(FUN_T2V);
    expect([pipe.kind, pipe.flavor]).toEqual(['fun-t2v', 'fun']);
    pipe.dispose();
    await expect(CogVideoXFunPipeline.fromPretrained(FUN_T2V)).rejects.toThrow(/a CogVideoX-Fun text-to-video model runs in CogVideoXPipeline/);
    await expect(CogVideoXVideoToVideoPipeline.fromPretrained(FUN_T2V)).rejects.toThrow(/THUDM text-to-video/);
  });
  it('a THUDM folder is t2v with the diffusers flavor; the flavor override reaches the pipeline', async () => {
    expect(inspectModelFolder(PIPE_2B).kind).toBe('t2v');
    const pipe = await CogVideoXPipeline.fromPretrained(PIPE_2B);
    expect([pipe.kind, pipe.flavor]).toEqual(['t2v', 'diffusers']);
    pipe.dispose();
    const forced = await CogVideoXPipeline.fromPretrained(PIPE_2B, { flavor: 'fun' });
    expect(forced.flavor).toBe('fun');
    forced.dispose();
  });
  it('a Fun InP config whose channel count is not 33 is still Fun (the key, not the count, decides)', () => {
    const base = readConfig<TransformerConfig>(path.join(TINY_MODEL, 'transformer'));
    // Fun's 2b position table covers sample_frames only; diffusers' recomputed one takes up to 85
    expect(maxFramesFor({ ...base, in_channels: 9 } as TransformerConfig).max).toBe(base.sample_frames);
    const { add_noise_in_inpaint_model: _drop, ...thudm } = base as TransformerConfig & { add_noise_in_inpaint_model?: boolean };
    expect(maxFramesFor({ ...thudm, in_channels: 16 } as TransformerConfig).max).toBe(85);
  });
  it('a CogVideoX-Fun Control checkpoint is refused by name, in the CLI and the library', async () => {
    const dir = folderWithConfig(TINY_MODEL, (c) => (c.in_channels = 32));
    try {
      expect(() => inspectModelFolder(dir)).toThrow(/CogVideoX-Fun Control transformer \(in_channels 32 = 2 × 16.*not supported/);
      await expect(CogVideoXFunPipeline.fromPretrained(dir)).rejects.toThrow(/Control transformer/);
      await expect(CogVideoXImageToVideoPipeline.fromPretrained(dir)).rejects.toThrow(/Control transformer/);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });
});

describe('the default sampler is the folder scheduler class (diffusers from_pretrained)', () => {
  it('maps every diffusers class to the sampler reproducing it', () => {
    for (const [cls, name] of Object.entries(SAMPLER_FOR_CLASS)) expect(createScheduler(name, {}).className).toBe(cls);
    expect(new Set(Object.values(SAMPLER_FOR_CLASS))).toEqual(new Set(SCHEDULER_NAMES));
  });
  it('reads _class_name (2b: CogVideoXDDIMScheduler, 5b: CogVideoXDPMScheduler) and refuses unknown classes', async () => {
    expect(folderSampler(path.join(PIPE_2B, 'scheduler'))).toBe('DDIM_Cog');
    expect(folderSampler(path.join(FIXTURES, 'tiny-pipe-5b', 'scheduler'))).toBe('DPM_Cog');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cvx-sched-'));
    try {
      fs.writeFileSync(path.join(dir, 'scheduler_config.json'), JSON.stringify({ _class_name: 'LCMScheduler' }));
      expect(() => folderSampler(dir)).toThrow(/"_class_name" "LCMScheduler" is not a scheduler this port has/);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
    await useBackend(BACKENDS[0]!);
    const pipe = await CogVideoXPipeline.fromPretrained(PIPE_2B);
    expect(pipe.scheduler.name).toBe('DDIM_Cog');
    pipe.dispose();
  });
});

describeEachBackend('cancellation from a timer (%s)', (backend) => {
  it('an AbortController fired by setTimeout during a 400-step run stops within one step, frees everything, throws its reason', async () => {
    await useBackend(backend);
    const pipe = await CogVideoXPipeline.fromPretrained(PIPE_2B);
    const before = tf.memory().numTensors;
    const ctl = new AbortController();
    const reason = new Error('stopped by the timer');
    let stepsAtAbort = -1;
    let steps = 0;
    let firstStep = 0;
    const run = pipe.call({
      prompt: 'a panda',
      height: 32,
      width: 48,
      numFrames: 5,
      numInferenceSteps: 400,
      maxSequenceLength: 16,
      generator: new PhiloxGenerator(3),
      signal: ctl.signal,
      onStep: () => {
        steps++;
        // arm the timer once denoising runs (model loading takes a variable time)
        if (steps === 1) {
          firstStep = performance.now();
          setTimeout(() => {
            stepsAtAbort = steps;
            ctl.abort(reason);
          }, 40);
        }
      },
    });
    await expect(run).rejects.toBe(reason);
    const elapsed = performance.now() - firstStep;
    expect(stepsAtAbort, 'the timer fired during the run').toBeGreaterThan(0);
    expect(steps - stepsAtAbort, 'steps taken after the abort').toBeLessThanOrEqual(1);
    expect(steps).toBeLessThan(400);
    expect(elapsed).toBeLessThan(30_000);
    expect(tf.memory().numTensors, 'no tensor left').toBe(before);
    pipe.dispose();
  }, 120_000);
  it('an abort fired at the end of the text stage stops before any denoising step', async () => {
    await useBackend(backend);
    const pipe = await CogVideoXPipeline.fromPretrained(PIPE_2B);
    const before = tf.memory().numTensors;
    const ctl = new AbortController();
    const stages: string[] = [];
    let steps = 0;
    const run = pipe.call({
      prompt: 'a panda',
      height: 32,
      width: 48,
      numFrames: 5,
      numInferenceSteps: 4,
      maxSequenceLength: 16,
      signal: ctl.signal,
      onStep: () => steps++,
      onStage: (s, state) => {
        stages.push(`${s}:${state}`);
        if (s === 'text' && state === 'end') setTimeout(() => ctl.abort(), 0);
      },
    });
    await expect(run).rejects.toThrow(/abort/i);
    // the timer fires at the next stage boundary (text → denoise) or the first step's yield at the latest
    expect(steps).toBe(0);
    expect(stages.slice(0, 2)).toEqual(['text:start', 'text:end']);
    expect(stages).not.toContain('denoise:end');
    expect(tf.memory().numTensors).toBe(before);
    pipe.dispose();
  }, 60_000);
});

describe('the VAE / T5 entry points that yield are used when the models have them', () => {
  it('decodeAsync, encodeAsync and forwardAsync get the signal; the result is the same', async () => {
    await useBackend(BACKENDS[0]!);
    const dir = path.join(FIXTURES, 'tiny-pipe-5b-i2v');
    const req = { prompt: 'a panda', height: 64, width: 96, numFrames: 9, numInferenceSteps: 2, maxSequenceLength: 16, outputType: 'tensor' as const };
    const image = { width: 96, height: 64, data: new Uint8Array(96 * 64 * 3).map((_, i) => (i * 37) % 251) };
    const plain = await CogVideoXImageToVideoPipeline.fromPretrained(dir);
    const a = (await plain.call({ ...req, image, generator: new PhiloxGenerator(5) })).tensor!;
    plain.dispose();

    const pipe = await CogVideoXImageToVideoPipeline.fromPretrained(dir);
    const ctl = new AbortController();
    const seen: string[] = [];
    const vae = pipe.vae as typeof pipe.vae & Record<string, unknown>;
    vae.decodeAsync = async (z: tf.Tensor5D, o: { chunking: 'fun' | 'diffusers'; signal?: AbortSignal }) => {
      seen.push(`decode:${o.signal === ctl.signal}:${o.chunking}`);
      return pipe.vae.decode(z, { chunking: o.chunking });
    };
    vae.encodeAsync = async (x: tf.Tensor5D, o: { signal?: AbortSignal }) => {
      seen.push(`encode:${o.signal === ctl.signal}`);
      return pipe.vae.encode(x);
    };
    const { T5EncoderModel } = await import('../src/models/t5.js');
    const proto = T5EncoderModel.prototype as unknown as Record<string, unknown>;
    proto.forwardAsync = async function (this: { forward(ids: tf.Tensor2D): tf.Tensor3D }, ids: tf.Tensor2D, o: { signal?: AbortSignal }) {
      seen.push(`t5:${o.signal === ctl.signal}`);
      return this.forward(ids);
    };
    try {
      const b = (await pipe.call({ ...req, image, generator: new PhiloxGenerator(5), signal: ctl.signal })).tensor!;
      expect(seen).toEqual(['t5:true', 't5:true', 'encode:true', 'decode:true:diffusers']);
      // the same computation (tfjs-node's float results vary in the last bits from run to run)
      expect(tf.tidy(() => tf.div(tf.norm(tf.sub(a, b)), tf.norm(a)).dataSync()[0])).toBeLessThan(1e-5);
      tf.dispose([a, b]);
    } finally {
      delete proto.forwardAsync;
      pipe.dispose();
    }
  }, 60_000);
});

describe('numVideosPerPrompt', () => {
  it('must be a positive integer (checked before anything is loaded)', async () => {
    await useBackend(BACKENDS[0]!);
    const pipe = await CogVideoXPipeline.fromPretrained(PIPE_2B);
    await expect(pipe.call({ prompt: 'a', height: 32, width: 48, numFrames: 5, numVideosPerPrompt: 0 })).rejects.toThrow(/numVideosPerPrompt must be a positive integer, got 0/);
    await expect(pipe.call({ prompt: 'a', height: 32, width: 48, numFrames: 5, numVideosPerPrompt: 1.5 })).rejects.toThrow(/numVideosPerPrompt must be a positive integer/);
    pipe.dispose();
  });
});

describe('CogVideoXVideoToVideoPipeline requests', () => {
  const frame = (w = 48, h = 32) => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(100) });
  const base = { prompt: 'a panda', height: 32, width: 48, numInferenceSteps: 4, maxSequenceLength: 16 };
  it('refuses bad requests before any model is loaded, naming the problem', async () => {
    await useBackend(BACKENDS[0]!);
    const pipe = await CogVideoXVideoToVideoPipeline.fromPretrained(PIPE_2B);
    const before = tf.memory().numTensors;
    const five = Array.from({ length: 5 }, () => frame());
    await expect(pipe.call({ ...base, video: [] })).rejects.toThrow(/video \(a non-empty array of RGB frames\) is required/);
    await expect(pipe.call({ ...base, video: five, numFrames: 9 })).rejects.toThrow(/numFrames 9 differs from the 5 source frames/);
    await expect(pipe.call({ ...base, video: five.slice(0, 4) })).rejects.toThrow(/numFrames must be 1 or 4k \+ 1.*got 4/);
    await expect(pipe.call({ ...base, video: five, strength: 0 })).rejects.toThrow(/strength must be in \(0, 1\], got 0/);
    await expect(pipe.call({ ...base, video: [frame(), { width: 2, height: 2, data: new Uint8Array(3) }, frame(), frame(), frame()] })).rejects.toThrow(/video frame 1: expected an RGB image/);
    await expect(pipe.call({ ...base, video: five, strength: 0.1, numInferenceSteps: 4 })).rejects.toThrow(/leaves no denoising step/);
    expect(tf.memory().numTensors).toBe(before);
    pipe.dispose();
    // CogVideoX 1.5: the latent count must already be a multiple of patch_size_t (pipeline_cogvideox_video2video.py)
    const p15 = await CogVideoXVideoToVideoPipeline.fromPretrained(path.join(FIXTURES, 'tiny-pipe-1.5'));
    const nine = Array.from({ length: 9 }, () => frame());
    await expect(p15.call({ ...base, maxSequenceLength: 226, video: nine })).rejects.toThrow(/9 frames give 3 latent frames, not a multiple of patch_size_t 2.*use 13 or 5 frames/);
    p15.dispose();
  });
});
