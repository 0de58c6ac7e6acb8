// Validation videos during training, as CogVideoX-Fun's log_validation (scripts/train.py:154-265,
// train_lora.py:154-268): for every prompt, one video and one single-frame image with the weights being trained,
// negative prompt "bad detailed", height = width = --video-sample-size, a DDIM sampler from the model's
// scheduler_config.json (DDIMScheduler.from_pretrained), one generator seeded with --seed shared by all calls of one
// validation; saved as OUT/sample/sample-{step}-{i}.gif and sample-{step}-image-{i}.gif (save_videos_grid, 12 fps).
//   --train-mode inpaint: CogVideoX_Fun_Pipeline_Inpaint with an all-generate mask (get_image_to_video_latent(None,
//     None)), (N − 1) // I · I + 1 frames at guidance 6 (train_lora.py: 7), then 1 frame at the pipeline default (6);
//   --train-mode normal: the text-to-video pipeline, N frames, then 1 frame, both at the default guidance (6).
// The pipeline default is 50 steps; --validation-inference-steps (ours) lowers it.
// Differences: the trained weights enter as a forward-time parameter lookup on the training model instead of a
// second transformer (no copy of the frozen weights; LoRA as W + multiplier·(alpha/rank)·up·down, what merge_lora
// computes); T5 does not run here (the prompts' embeddings are computed with the training captions and cached); the
// generator is our Philox stream (torch seeds do not carry over). Errors are reported and training continues, as the
// original's `except Exception` does.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeVideo } from '../media/video_write.js';
import type { CogVideoXTransformer3DModel, TransformerInputs } from '../models/transformer.js';
import type { T5Tokenizer } from '../models/t5_tokenizer.js';
import type { AutoencoderKLCogVideoX } from '../models/vae.js';
import { CogVideoXPipeline } from '../pipelines/cogvideox.js';
import { CogVideoXFunPipeline } from '../pipelines/cogvideox_fun.js';
import type { PipelineOutput } from '../pipelines/common.js';
import { PhiloxGenerator } from '../schedulers/generator.js';
import { loadScheduler } from '../schedulers/index.js';
import type { LoraNetwork } from './lora.js';

export const VALIDATION_NEGATIVE_PROMPT = 'bad detailed';

export interface ValidationOptions {
  modelDir: string;
  out: string;
  trainMode: 'inpaint' | 'normal';
  mode: 'full' | 'lora';
  prompts: readonly string[];
  /** T5 output [L, D] per text (the prompts and VALIDATION_NEGATIVE_PROMPT) */
  embeds: ReadonlyMap<string, { data: Float32Array; shape: number[] }>;
  videoSampleSize: number;
  videoSampleNFrames: number;
  temporalCompression: number;
  numInferenceSteps: number;
  seed: number;
}

/** The trained weights: full fine-tune → the host values by name; LoRA → the network (merged at forward time). */
export type TrainedWeights =
  | { kind: 'full'; values: ReadonlyMap<string, Float32Array>; shapes: ReadonlyMap<string, readonly number[]> }
  | { kind: 'lora'; net: LoraNetwork };

/** Tensors for the trained weights (the caller disposes them). */
function weightTensors(model: CogVideoXTransformer3DModel, w: TrainedWeights): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  if (w.kind === 'full') {
    for (const [n, v] of w.values) out.set(n, tf.tensor(v, w.shapes.get(n)!.slice()));
    return out;
  }
  const net = w.net;
  for (const t of net.targets) {
    const name = `${t.module}.weight`;
    const merged = tf.tidy(() => {
      const base = model.readParameter(name) as tf.Tensor2D;
      const down = tf.tensor2d(net.params.get(`${t.name}.lora_down.weight`)!, [net.rank, t.inFeatures]);
      const up = tf.tensor2d(net.params.get(`${t.name}.lora_up.weight`)!, [t.outFeatures, net.rank]);
      return net.effectiveWeight(base, down, up);
    });
    out.set(name, merged);
  }
  return out;
}

/** The training model seen with other weights: forward() looks the trained tensors up; nothing of the model changes. */
function withWeights(model: CogVideoXTransformer3DModel, weights: ReadonlyMap<string, tf.Tensor>): CogVideoXTransformer3DModel {
  const view = Object.create(model) as CogVideoXTransformer3DModel;
  view.forward = (inputs: TransformerInputs, opts = {}) => model.forward(inputs, { ...opts, params: (n) => weights.get(n) ?? opts.params?.(n) });
  view.dispose = () => {}; // the pipeline never owns it
  return view;
}

/** Runs one validation at `step`; returns the files written. */
export async function runValidation(
  o: ValidationOptions,
  step: number,
  parts: { model: CogVideoXTransformer3DModel; weights: TrainedWeights; vae: AutoencoderKLCogVideoX; tokenizer: T5Tokenizer },
): Promise<string[]> {
  const weights = weightTensors(parts.model, parts.weights);
  const written: string[] = [];
  try {
    const components = {
      tokenizer: parts.tokenizer,
      textEncoder: async () => {
        throw new Error('validation: T5 is not loaded during training (prompt embeddings are cached)');
      },
      transformer: withWeights(parts.model, weights),
      vae: parts.vae,
      scheduler: loadScheduler('DDIM_Origin', path.join(o.modelDir, 'scheduler')),
    };
    const inpaint = o.trainMode === 'inpaint';
    const pipe = inpaint ? new CogVideoXFunPipeline(components) : new CogVideoXPipeline(components);
    const generator = new PhiloxGenerator(o.seed);
    const I = o.temporalCompression;
    const N = o.videoSampleNFrames;
    const videoFrames = inpaint ? (N !== 1 ? Math.floor((N - 1) / I) * I + 1 : 1) : N;
    const videoGuidance = inpaint ? (o.mode === 'lora' ? 7 : 6) : 6;
    const embed = (text: string) => {
      const e = o.embeds.get(text);
      if (!e) throw new Error(`validation: no cached T5 embedding for "${text}"`);
      return tf.tensor3d(e.data, [1, e.shape[0]!, e.shape[1]!]);
    };
    const dir = path.join(o.out, 'sample');
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < o.prompts.length; i++) {
      for (const [frames, guidance, name] of [
        [videoFrames, videoGuidance, `sample-${step}-${i}.gif`],
        [1, 6, `sample-${step}-image-${i}.gif`],
      ] as const) {
        const promptEmbeds = embed(o.prompts[i]!);
        const negativePromptEmbeds = embed(VALIDATION_NEGATIVE_PROMPT);
        let r: PipelineOutput;
        try {
          r = await pipe.call({
            promptEmbeds,
            negativePromptEmbeds,
            numFrames: frames,
            height: o.videoSampleSize,
            width: o.videoSampleSize,
            guidanceScale: guidance,
            numInferenceSteps: o.numInferenceSteps,
            generator,
            checkMemory: false,
            onWarning: () => {},
          });
        } finally {
          tf.dispose([promptEmbeds, negativePromptEmbeds]);
        }
        const v = r.videos![0]!;
        const file = path.join(dir, name);
        await writeVideo({ frames: v.frames, width: v.width, height: v.height }, file, { fps: 12 });
        written.push(file);
      }
    }
  } finally {
    tf.dispose([...weights.values()]);
  }
  return written;
}
