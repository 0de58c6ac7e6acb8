// What a checkpoint folder is, from its config files and safetensors headers only (no weights read): which
// pipeline runs it (decided by weights/transformer_kind.ts from transformer/config.json), which released variant it
// looks like, and what its files hold.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { maxFramesFor } from '../pipelines/rules.js';
import { readJson, WeightStore } from '../weights/checkpoint.js';
import { transformerFlavor, transformerKind, type TransformerKind } from '../weights/transformer_kind.js';
import { TRANSFORMER_DEFAULTS, type TransformerConfig } from '../weights/transformer_names.js';

export const COMPONENTS = ['tokenizer', 'text_encoder', 'transformer', 'vae', 'scheduler'] as const;

/** fun-inp: CogVideoX-Fun InP (T2V/I2V/V2V); fun-t2v: CogVideoX-Fun text-to-video; t2v / i2v: THUDM CogVideoX. */
export type PipelineKind = TransformerKind;

/**
 * The CLI's documented sampler defaults (the library's default is the folder's scheduler class): CogVideoX-Fun's
 * predict scripts use DDIM_Origin (predict_t2v.py:30), THUDM's cli_demo CogVideoXDPMScheduler.
 */
export function cliDefaultSampler(kind: PipelineKind): string {
  return kind === 'fun-inp' || kind === 'fun-t2v' ? 'DDIM_Origin' : 'DPM_Cog';
}

/** True for the CogVideoX-Fun checkpoints (their predict-script defaults apply). */
export function isFunKind(kind: PipelineKind): boolean {
  return kind === 'fun-inp' || kind === 'fun-t2v';
}

export interface ModelFolder {
  dir: string;
  kind: PipelineKind;
  /** e.g. "CogVideoX-Fun 2b InP", "CogVideoX1.5-5b-I2V" */
  variant: string;
  transformer: TransformerConfig;
  latentChannels: number;
  /** Pixel size of the transformer's training grid (sample_height/width × 8). */
  sampleHeight: number;
  sampleWidth: number;
  maxFrames: number;
  maxFramesWhy: string;
  defaultSampler: string;
}

function config(dir: string, component: string, file = 'config.json'): Record<string, unknown> {
  const p = path.join(dir, component, file);
  if (!fs.existsSync(p)) throw new Error(`${dir}: ${component}/${file} is missing`);
  const c = readJson(p);
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error(`${p}: expected a JSON object`);
  return c as Record<string, unknown>;
}

/** Checks the five diffusers components are there and reads the configs the CLI needs. */
export function inspectModelFolder(dir: string): ModelFolder {
  if (!fs.existsSync(dir)) throw new Error(`model folder not found: ${dir}`);
  if (!fs.statSync(dir).isDirectory()) throw new Error(`--model must be a folder (diffusers layout), got a file: ${dir}`);
  const missing = COMPONENTS.filter((c) => !fs.existsSync(path.join(dir, c)));
  if (missing.length) {
    throw new Error(`${dir} is not a complete CogVideoX model folder: missing ${missing.map((m) => `${m}/`).join(', ')} (expected ${COMPONENTS.join(', ')})`);
  }
  config(dir, 'scheduler', 'scheduler_config.json');
  config(dir, 'text_encoder');
  const transformer = { ...TRANSFORMER_DEFAULTS, ...config(dir, 'transformer') } as TransformerConfig;
  const vae = config(dir, 'vae');
  const latentChannels = typeof vae.latent_channels === 'number' ? vae.latent_channels : 16;
  const kind = transformerKind(transformer, latentChannels, `${dir}/transformer/config.json`);
  const { max, why } = maxFramesFor(transformer, transformerFlavor(transformer));
  // diffusers' vae_scale_factor_spatial = 2 ** (len(vae.config.block_out_channels) - 1) (diffusers pipelines/cogvideo/pipeline_cogvideox.py:185):
  // 8 for the released VAEs (4 blocks), 4 for the 3-block demo VAE
  const blocks = vae.block_out_channels;
  const spatial = Array.isArray(blocks) && blocks.length > 0 ? 2 ** (blocks.length - 1) : 8;
  return {
    dir,
    kind,
    variant: variantName(transformer, kind),
    transformer,
    latentChannels,
    sampleHeight: transformer.sample_height * spatial,
    sampleWidth: transformer.sample_width * spatial,
    maxFrames: max,
    maxFramesWhy: why,
    defaultSampler: cliDefaultSampler(kind),
  };
}

/** The released model a transformer config matches (by width and position encoding), or a description of it. */
export function variantName(c: TransformerConfig, kind: PipelineKind): string {
  const width = c.num_attention_heads * c.attention_head_dim;
  const size = width === 1920 && c.num_layers === 30 ? '2b' : width === 3072 && c.num_layers === 42 ? '5b' : null;
  const v15 = !!c.patch_size_t;
  if (!size) {
    const what = {
      'fun-inp': 'CogVideoX-Fun InP layout',
      'fun-t2v': 'CogVideoX-Fun text-to-video layout',
      t2v: 'CogVideoX text-to-video layout',
      i2v: 'CogVideoX image-to-video layout',
    }[kind];
    return `custom size (${c.num_layers} layers, width ${width}; ${what})`;
  }
  if (kind === 'fun-inp') return `CogVideoX-Fun ${v15 ? 'V1.5 ' : ''}${size} InP`;
  if (kind === 'fun-t2v') return `CogVideoX-Fun ${v15 ? 'V1.5 ' : ''}${size} (text to video)`;
  return `CogVideoX${v15 ? '1.5' : ''}-${size}${kind === 'i2v' ? '-I2V' : ''}`;
}

/** The part of demo.json's `output` the defaults read (src/cli/demo.ts DemoInfo). */
export interface DemoOutputSize {
  height: number;
  width: number;
  frames: number;
}

/** predict scripts: sample_size [384, 672], video_length 49 */
const FUN_DEFAULT = { height: 384, width: 672, frames: 49 };

/**
 * What `generate` makes when not told: Fun models the predict scripts' 384×672 × 49 frames, THUDM models (and the
 * tiny demo) their own training size and length; never more frames than the model takes. (The demo's length is its
 * config's sample_frames: a RoPE transformer has no position table to cap the frames at its training length.)
 */
export function defaultRequest(f: ModelFolder, demo = false, demoOutput?: DemoOutputSize | null): { height: number; width: number; frames: number } {
  const own = demo || !isFunKind(f.kind);
  // A demo folder's demo.json says what it was trained to make: a transformer whose patch was divided
  // (scripts/demo/repatch-dit.ts) keeps its RoPE positions by dividing sample_height/width, so the config no
  // longer tells its size.
  const size = demo && demoOutput ? demoOutput : { height: f.sampleHeight, width: f.sampleWidth, frames: f.transformer.sample_frames };
  const frames = Math.min(own ? size.frames : FUN_DEFAULT.frames, f.maxFrames);
  return {
    height: own ? size.height : FUN_DEFAULT.height,
    width: own ? size.width : FUN_DEFAULT.width,
    frames: frames <= 1 ? 1 : Math.floor((frames - 1) / 4) * 4 + 1,
  };
}

export interface ComponentFiles {
  component: string;
  files: { name: string; bytes: number }[];
  tensors: number;
  /** Tensor count and stored bytes per safetensors dtype. */
  dtypes: Record<string, { tensors: number; bytes: number }>;
  /** Parameters (elements) over all tensors. */
  parameters: number;
}

/** File sizes and dtypes of one component's weights (headers only). */
export function describeWeights(dir: string, component: string): ComponentFiles {
  const location = path.join(dir, component);
  const store = WeightStore.open(location);
  try {
    const dtypes: ComponentFiles['dtypes'] = {};
    let parameters = 0;
    let tensors = 0;
    for (const f of store.files) {
      for (const e of f.entries.values()) {
        const d = (dtypes[e.dtype] ??= { tensors: 0, bytes: 0 });
        d.tensors++;
        d.bytes += e.end - e.begin;
        parameters += e.shape.reduce((a, b) => a * b, 1);
        tensors++;
      }
    }
    return {
      component,
      files: store.files.map((f) => ({ name: path.relative(location, f.path), bytes: fs.statSync(f.path).size })),
      tensors,
      dtypes,
      parameters,
    };
  } finally {
    store.close();
  }
}
