// A pipeline's models, and when they are in memory. A model given as an instance stays loaded (the caller owns it);
// a model the pipeline loads from a folder is loaded when its stage starts and disposed when it ends, so T5 is gone
// before the transformer runs and the transformer before the VAE decodes (the memory plan assumes this).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { T5EncoderModel } from '../models/t5.js';
import { collectGarbage } from '../nn/backend.js';
import { T5Tokenizer } from '../models/t5_tokenizer.js';
import { CogVideoXTransformer3DModel, type TransformerConfig } from '../models/transformer.js';
import { AutoencoderKLCogVideoX } from '../models/vae.js';
import { folderSampler, loadScheduler } from '../schedulers/index.js';
import type { Scheduler } from '../schedulers/scheduler.js';
import { readConfig, WeightStore } from '../weights/checkpoint.js';
import type { LoraSpec } from '../weights/lora.js';
import { chooseResidency, type Residency } from '../weights/residency.js';
import type { T5Config } from '../weights/t5_names.js';
import { transformerFlavor, transformerKind, type TransformerFlavor } from '../weights/transformer_kind.js';
import type { MemoryInputs } from './memory_plan.js';

/** A model that is either held (given by the caller) or loaded per stage. */
export class ModelSlot<T extends { dispose(): void }> {
  private current: T | null;
  private readonly owned: boolean;

  constructor(source: T | (() => Promise<T>)) {
    this.owned = typeof source === 'function';
    this.current = this.owned ? null : (source as T);
    this.load = this.owned ? (source as () => Promise<T>) : async () => source as T;
  }

  private readonly load: () => Promise<T>;

  /** The model, loading it if needed. */
  async get(): Promise<T> {
    if (!this.current) this.current = await this.load();
    return this.current;
  }

  /** End of a stage: frees a model this slot loaded (a model the caller passed in stays). */
  release(): void {
    if (this.owned && this.current) {
      this.current.dispose();
      this.current = null;
      collectGarbage(); // host-resident weights go now, not at V8's leisure
    }
  }

  get isOwned(): boolean {
    return this.owned;
  }
}

export interface LoadOptions {
  /**
   * Sampler name (CogVideoX-Fun's `scheduler_dict` keys), built from the folder's scheduler_config.json. Default:
   * the class that file names (`_class_name`), as diffusers' `from_pretrained` builds it.
   */
  sampler?: string;
  /**
   * Follow CogVideoX-Fun ('fun') or diffusers ('diffusers') where they differ (position tables, decode chunking,
   * uint8 rounding). Default: what transformer/config.json says (weights/transformer_kind.ts).
   */
  flavor?: TransformerFlavor;
  /** Weight residency of the transformer ('auto' picks from sizes; see weights/residency.ts). */
  residency?: Residency | 'auto';
  /** Weight residency of the T5 encoder (default 'auto': T5-XXL is streamed from disk block by block). */
  textEncoderResidency?: Residency | 'auto';
  /** VAE weights resident or per block (see AutoencoderKLCogVideoX). */
  vaeWeights?: 'resident' | 'block';
  /** LoRAs merged into the transformer as CogVideoX-Fun's merge_lora (in order). */
  loras?: LoraSpec[];
}

export interface FolderComponents {
  dir: string;
  tokenizer: T5Tokenizer;
  textEncoder: () => Promise<T5EncoderModel>;
  transformer: () => Promise<CogVideoXTransformer3DModel>;
  transformerConfig: TransformerConfig;
  vae: AutoencoderKLCogVideoX;
  scheduler: Scheduler;
  flavor: TransformerFlavor;
  /** sizes and residencies for the memory plan (backend filled in at plan time) */
  memory: Omit<MemoryInputs, 'backend'>;
}

/** Stored and float32 bytes of a component's safetensors (headers only). */
export function componentBytes(dir: string): { storedBytes: number; fp32Bytes: number } {
  const store = WeightStore.open(dir);
  try {
    let fp32Bytes = 0;
    for (const k of store.keys()) fp32Bytes += 4 * store.entry(k).shape.reduce((a, b) => a * b, 1);
    return { storedBytes: store.storedBytes, fp32Bytes };
  } finally {
    store.close();
  }
}

const COMPONENTS = ['tokenizer', 'text_encoder', 'transformer', 'vae', 'scheduler'] as const;

/**
 * Opens a diffusers-layout model folder (tokenizer/, text_encoder/, transformer/, vae/, scheduler/). Every
 * component's config and tensor headers are checked now, so a broken folder fails before any compute; weights are
 * read when a stage needs them.
 */
export async function openModelFolder(dir: string, opts: LoadOptions = {}): Promise<FolderComponents> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`model folder not found: ${dir}`);
  const missing = COMPONENTS.filter((c) => !fs.existsSync(path.join(dir, c)));
  if (missing.length) {
    throw new Error(`${dir} is not a complete CogVideoX model folder: missing ${missing.map((m) => `${m}/`).join(', ')} (expected ${COMPONENTS.join(', ')})`);
  }
  const sub = (c: string) => path.join(dir, c);
  const scheduler = loadScheduler(opts.sampler ?? folderSampler(sub('scheduler')), sub('scheduler'));
  const tokenizer = await T5Tokenizer.fromPretrained(sub('tokenizer'));
  const residency = opts.residency ?? 'auto';
  const t5Residency = opts.textEncoderResidency ?? 'auto';
  // the pipeline kind first: a checkpoint no pipeline runs (a CogVideoX-Fun Control model) is refused by name
  const vaeConfig = readConfig<{ latent_channels?: number }>(sub('vae'));
  transformerKind(readConfig<TransformerConfig>(sub('transformer')), vaeConfig.latent_channels ?? 16, `${sub('transformer')}/config.json`);
  // header / config checks now, with nothing read: 'disk' residency loads no block weights
  (await T5EncoderModel.fromPretrained(sub('text_encoder'), { residency: 'disk' })).dispose();
  const probe = await CogVideoXTransformer3DModel.fromPretrained(sub('transformer'), { residency: 'disk', loras: opts.loras }); // LoRA files checked too
  const transformerConfig = probe.config;
  probe.dispose();
  const flavor = opts.flavor ?? transformerFlavor(transformerConfig);
  const vae = await AutoencoderKLCogVideoX.fromPretrained(sub('vae'), { weights: opts.vaeWeights });
  const sizes = { t5: componentBytes(sub('text_encoder')), transformer: componentBytes(sub('transformer')), vae: componentBytes(sub('vae')) };
  const pick = (s: { storedBytes: number; fp32Bytes: number }, r: Residency | 'auto'): Residency => (r === 'auto' ? chooseResidency(s.fp32Bytes, s.storedBytes) : r);
  const memory: Omit<MemoryInputs, 'backend'> = {
    t5: { ...sizes.t5, config: readConfig<T5Config>(sub('text_encoder')), residency: pick(sizes.t5, t5Residency) },
    transformer: { ...sizes.transformer, config: transformerConfig, residency: pick(sizes.transformer, residency) },
    vae: { ...sizes.vae, config: vae.config, weights: vae.weightResidency, tiling: vae.tiling },
  };
  return {
    memory,
    dir,
    tokenizer,
    textEncoder: () => T5EncoderModel.fromPretrained(sub('text_encoder'), { residency: t5Residency }),
    transformer: () => CogVideoXTransformer3DModel.fromPretrained(sub('transformer'), { residency, loras: opts.loras, flavor }),
    transformerConfig,
    vae,
    scheduler,
    flavor,
  };
}
