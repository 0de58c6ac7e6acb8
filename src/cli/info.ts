// `cogvideox-fun info DIR`: what a checkpoint folder is, from configs and safetensors headers (nothing is loaded).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { componentBytes } from '../pipelines/components.js';
import { planMemory, type MemoryInputs, type MemoryPlan } from '../pipelines/memory_plan.js';
import { readConfig } from '../weights/checkpoint.js';
import { chooseResidency } from '../weights/residency.js';
import type { T5Config } from '../weights/t5_names.js';
import type { VaeConfig } from '../weights/vae_names.js';
import { UsageError } from './errors.js';
import { demoKnowledge, demoModelDir, readDemoInfo, type DemoInfo } from './demo.js';
import { COMPONENTS, defaultRequest, describeWeights, inspectModelFolder, type ComponentFiles, type ModelFolder } from './model_folder.js';
import { INFO_USAGE } from './usage.js';
import { fusedAttentionAvailable } from '../nn/capabilities.js';

const PIPELINES: Record<ModelFolder['kind'], string> = {
  'fun-inp': 'CogVideoXFunPipeline (CogVideoX-Fun inpaint: text, image, start+end image and video to video)',
  'fun-t2v': "CogVideoXPipeline (text to video, as CogVideoX-Fun's CogVideoX_Fun_Pipeline)",
  t2v: 'CogVideoXPipeline (text to video) and CogVideoXVideoToVideoPipeline (--video)',
  i2v: 'CogVideoXImageToVideoPipeline (image to video)',
};

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

function params(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

export interface FolderInfo {
  dir: string;
  variant: string;
  kind: ModelFolder['kind'];
  pipeline: string;
  defaultSampler: string;
  transformer: {
    layers: number;
    heads: number;
    headDim: number;
    inChannels: number;
    positionEncoding: string;
    sampleSize: { height: number; width: number; frames: number };
    maxFrames: number;
    maxFramesWhy: string;
    temporalPatch: number | null;
    noiseAugmentation: boolean;
  };
  tokenizer: { files: string[] };
  scheduler: Record<string, unknown>;
  weights: ComponentFiles[];
  totalBytes: number;
  /** The folder's demo.json (a demo model: what it knows, whether it is trained); null without one. */
  demo: DemoInfo | null;
  /** The memory plan of `request` on each backend (the pipelines refuse a request whose plan does not fit). */
  memory: { request: MemoryRequestInfo; plans: Record<'tensorflow' | 'wasm', MemoryPlan> };
}

export interface MemoryRequestInfo {
  height: number;
  width: number;
  numFrames: number;
  guidanceScale: number;
}

/** What the memory plan needs, from headers and configs (as openModelFolder gathers it, without loading anything). */
function memoryInputs(f: ModelFolder, residency: 'auto' | 'resident' | 'host' | 'disk', backend: string): Omit<MemoryInputs, 'backend'> {
  const sub = (c: string) => path.join(f.dir, c);
  const sizes = { t5: componentBytes(sub('text_encoder')), transformer: componentBytes(sub('transformer')), vae: componentBytes(sub('vae')) };
  const pick = (s: { storedBytes: number; fp32Bytes: number }) => (residency === 'auto' ? chooseResidency(s.fp32Bytes, s.storedBytes, backend) : residency);
  return {
    t5: { ...sizes.t5, config: readConfig<T5Config>(sub('text_encoder')), residency: pick(sizes.t5) },
    transformer: { ...sizes.transformer, config: f.transformer, residency: pick(sizes.transformer) },
    vae: { ...sizes.vae, config: readConfig<VaeConfig>(sub('vae')), weights: 'block', tiling: false },
  };
}

export function folderInfo(dir: string, request?: Partial<MemoryRequestInfo>, tiling = false): FolderInfo {
  const f = inspectModelFolder(dir);
  const c = f.transformer;
  const pe = c.use_rotary_positional_embeddings
    ? `3D RoPE${c.use_learned_positional_embeddings ? ' + learned' : ''}`
    : c.use_learned_positional_embeddings
      ? 'learned'
      : f.kind === 'fun-inp' || f.kind === 'fun-t2v'
        ? 'sincos (Fun: stored table interpolated)'
        : 'sincos';
  const weights = (['text_encoder', 'transformer', 'vae'] as const).map((comp) => describeWeights(dir, comp));
  const scheduler = JSON.parse(fs.readFileSync(path.join(dir, 'scheduler', 'scheduler_config.json'), 'utf8')) as Record<string, unknown>;
  const demo = readDemoInfo(dir);
  // a demo folder's demo.json says what it was trained at: a repatched transformer's config names a smaller sample
  // size (scripts/demo/repatch-dit.ts)
  const trained = demo ? demo.output : { height: f.sampleHeight, width: f.sampleWidth, frames: c.sample_frames };
  return {
    dir,
    variant: f.variant,
    kind: f.kind,
    pipeline: PIPELINES[f.kind],
    defaultSampler: f.defaultSampler,
    transformer: {
      layers: c.num_layers,
      heads: c.num_attention_heads,
      headDim: c.attention_head_dim,
      inChannels: c.in_channels,
      positionEncoding: pe,
      sampleSize: { height: trained.height, width: trained.width, frames: trained.frames },
      maxFrames: f.maxFrames,
      maxFramesWhy: f.maxFramesWhy,
      temporalPatch: c.patch_size_t ?? null,
      noiseAugmentation: c.add_noise_in_inpaint_model === true,
    },
    tokenizer: { files: fs.readdirSync(path.join(dir, 'tokenizer')).sort() },
    scheduler: {
      class: scheduler._class_name,
      prediction_type: scheduler.prediction_type,
      timestep_spacing: scheduler.timestep_spacing,
      snr_shift_scale: scheduler.snr_shift_scale,
    },
    weights,
    totalBytes: weights.reduce((a, w) => a + w.files.reduce((b, x) => b + x.bytes, 0), 0),
    demo,
    memory: plans(f, { ...defaultFor(f, demo), ...request }, tiling),
  };
}

/** `demo`: the folder's demo.json, which sets the size only when the folder is the demo model. */
function defaultFor(f: ModelFolder, demo: DemoInfo | null): MemoryRequestInfo {
  const isDemo = path.resolve(f.dir) === demoModelDir();
  const d = defaultRequest(f, isDemo, isDemo ? demo?.output : null);
  return { height: d.height, width: d.width, numFrames: d.frames, guidanceScale: 6 };
}

function plans(f: ModelFolder, request: MemoryRequestInfo, tiling: boolean): FolderInfo['memory'] {
  const req = { ...request, image: false, sourceVideo: false, maxSequenceLength: f.transformer.max_text_seq_length };
  // each backend with the residency 'auto' would pick there (wasm: only what fits its heap is resident)
  const plan = (backend: 'tensorflow' | 'wasm') => {
    const inputs = memoryInputs(f, 'auto', backend);
    inputs.vae.tiling = tiling;
    return planMemory({ ...inputs, backend, fusedAttention: backend === 'tensorflow' && fusedAttentionAvailable() }, req);
  };
  return { request, plans: { tensorflow: plan('tensorflow'), wasm: plan('wasm') } };
}

export function formatInfo(i: FolderInfo): string {
  const t = i.transformer;
  const lines = [
    `${path.basename(i.dir)}  (${i.dir})`,
    `  variant      ${i.variant}`,
    `  pipeline     ${i.pipeline}; default sampler ${i.defaultSampler}`,
    `  transformer  ${t.layers} layers × ${t.heads} heads × ${t.headDim}, ${t.inChannels} input channels, ${t.positionEncoding}` +
      (t.temporalPatch ? `, temporal patch ${t.temporalPatch}` : '') +
      (i.kind === 'fun-inp' ? `, reference-video noise augmentation ${t.noiseAugmentation ? 'on' : 'off'}` : ''),
    `  trained at   ${t.sampleSize.width}×${t.sampleSize.height}, ${t.sampleSize.frames} frames; at most ${t.maxFrames} frames per run (${t.maxFramesWhy})`,
    `  scheduler    ${String(i.scheduler.class)} (${String(i.scheduler.prediction_type)}, ${String(i.scheduler.timestep_spacing)} spacing)`,
    `  tokenizer    ${i.tokenizer.files.join(', ')}`,
    `  weights      ${formatBytes(i.totalBytes)} in all`,
  ];
  for (const w of i.weights) {
    const dtypes = Object.entries(w.dtypes)
      .map(([d, v]) => `${d.toLowerCase()} ${v.tensors} tensors ${formatBytes(v.bytes)}`)
      .join(', ');
    const files = w.files.length === 1 ? w.files[0]!.name : `${w.files.length} shards`;
    lines.push(`    ${w.component.padEnd(14)}${params(w.parameters)} parameters, ${files}, ${formatBytes(w.files.reduce((a, x) => a + x.bytes, 0))}: ${dtypes}`);
  }
  if (i.demo) lines.push('  demo model   what it knows (demo.json):', ...demoKnowledge(i.demo, '    '));
  const r = i.memory.request;
  lines.push(`  memory       plan for ${r.width}×${r.height}, ${r.numFrames} frames, guidance ${r.guidanceScale} (peak per stage; the run is refused if it does not fit):`);
  for (const [backend, p] of Object.entries(i.memory.plans)) {
    const stages = p.stages.map((s) => `${s.stage} ${formatBytes(s.rssBytes)}`).join(', ');
    const heap = backend === 'wasm' ? `, wasm heap ${formatBytes(p.peakHeapBytes)} of ${formatBytes(p.limits.heapBytes)}` : '';
    lines.push(`    ${backend.padEnd(14)}RSS ${formatBytes(p.peakRssBytes)} of ${formatBytes(p.limits.ramBytes)}${heap} — ${p.fits ? 'fits' : 'does NOT fit'} (${stages})`);
    for (const problem of p.problems) lines.push(`      ${problem}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function info(argv: readonly string[]): Promise<number> {
  let values: { json?: boolean; help?: boolean; height?: string; width?: string; frames?: string; tiling?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options: {
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        debug: { type: 'boolean' },
        height: { type: 'string' },
        width: { type: 'string' },
        frames: { type: 'string' },
        tiling: { type: 'boolean' },
      },
      allowPositionals: true,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]!);
  }
  if (values.help) {
    process.stdout.write(INFO_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`info takes one model folder, got ${positionals.length} arguments (components: ${COMPONENTS.join(', ')})`);
  const request: Partial<MemoryRequestInfo> = {};
  for (const [flag, key] of [['height', 'height'], ['width', 'width'], ['frames', 'numFrames']] as const) {
    const v = values[flag];
    if (v === undefined) continue;
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`--${flag} must be a positive integer, got "${v}"`);
    request[key] = Number(v);
  }
  const i = folderInfo(path.resolve(positionals[0]!), request, values.tiling === true);
  process.stdout.write(values.json ? `${JSON.stringify(i, null, 2)}\n` : formatInfo(i));
  return 0;
}
