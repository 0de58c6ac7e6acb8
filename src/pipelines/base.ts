// What every pipeline shares, written once: the components and when they are loaded, the memory plan, the request
// prologue (defaults, checks, generator), the text stage, the denoising stage, the VAE stages and the decode. The
// pipelines (cogvideox.ts, cogvideox_fun.ts, video_to_video.ts) add only what their original adds: the conditioning
// latents and their own defaults.
//
// Cancellation: every stage boundary and every denoising step first yields to the event loop, so an AbortSignal
// fired from a timer, a socket or another job is seen within one step; whatever the run allocated is disposed and the
// signal's reason is thrown.
import * as tf from '@tensorflow/tfjs-core';
import type { T5EncoderModel } from '../models/t5.js';
import type { T5Tokenizer } from '../models/t5_tokenizer.js';
import type { CogVideoXTransformer3DModel, TransformerConfig } from '../models/transformer.js';
import type { AutoencoderKLCogVideoX, DiagonalGaussianDistribution } from '../models/vae.js';
import { fusedAttentionAvailable } from '../nn/capabilities.js';
import { PhiloxGenerator, type Generator } from '../schedulers/generator.js';
import type { Scheduler } from '../schedulers/scheduler.js';
import { transformerFlavor, transformerKind, type TransformerFlavor, type TransformerKind } from '../weights/transformer_kind.js';
import {
  checkAbort,
  checkPositiveInt,
  checkSettings,
  decodeOutput,
  denoise,
  ropeTensors,
  yieldToEventLoop,
  type CommonCallOptions,
  type OutputType,
  type PipelineOutput,
  type PipelineStage,
} from './common.js';
import { ModelSlot } from './components.js';
import { planMemory, type MemoryInputs, type MemoryPlan, type MemoryRequest } from './memory_plan.js';
import { checkPromptInputs, encodePrompt } from './prompt.js';

export interface PipelineComponents {
  tokenizer: T5Tokenizer;
  textEncoder: T5EncoderModel | (() => Promise<T5EncoderModel>);
  transformer: CogVideoXTransformer3DModel | (() => Promise<CogVideoXTransformer3DModel>);
  /** Needed when the transformer is a loader (its config drives every check before compute). */
  transformerConfig?: TransformerConfig;
  vae: AutoencoderKLCogVideoX;
  scheduler: Scheduler;
  /** Component sizes for the memory plan (openModelFolder provides them). */
  memory?: Omit<MemoryInputs, 'backend'>;
  /**
   * Which original the pipeline follows where CogVideoX-Fun and diffusers differ (decode chunking, uint8 rounding);
   * default: the transformer instance's flavor, else what its config says (weights/transformer_kind.ts).
   */
  flavor?: TransformerFlavor;
}

/** One call's resolved settings and hooks (made by `begin`, before anything is loaded or computed). */
export interface Run {
  o: CommonCallOptions;
  height: number;
  width: number;
  numFrames: number;
  steps: number;
  guidanceScale: number;
  doCfg: boolean;
  outputType: OutputType;
  numVideosPerPrompt: number;
  /** T5 tokens per prompt: o.maxSequenceLength, else the transformer's max_text_seq_length (226 in every released config). */
  maxSequenceLength: number;
  /** prompts × numVideosPerPrompt */
  batch: number;
  generator: Generator;
  signal: AbortSignal | undefined;
  warn: (m: string) => void;
  emit: (name: string, t: tf.Tensor) => void;
  /** Tensors disposed when the call ends, however it ends. */
  held: tf.Tensor[];
}

export abstract class PipelineBase {
  readonly tokenizer: T5Tokenizer;
  readonly vae: AutoencoderKLCogVideoX;
  scheduler: Scheduler;
  readonly transformerConfig: TransformerConfig;
  /** The checkpoint's pipeline kind and the original this pipeline follows (decided once, from the config). */
  readonly kind: TransformerKind;
  readonly flavor: TransformerFlavor;
  protected readonly textEncoder: ModelSlot<T5EncoderModel>;
  protected readonly transformer: ModelSlot<CogVideoXTransformer3DModel>;
  protected readonly memory: Omit<MemoryInputs, 'backend'> | null;

  protected constructor(c: PipelineComponents, accepts: readonly TransformerKind[], what: string, wrongKind: (kind: TransformerKind, inChannels: number, latentChannels: number) => string) {
    this.tokenizer = c.tokenizer;
    this.vae = c.vae;
    this.scheduler = c.scheduler;
    this.textEncoder = new ModelSlot(c.textEncoder);
    this.transformer = new ModelSlot(c.transformer);
    this.memory = c.memory ?? null;
    const instance = typeof c.transformer === 'function' ? null : c.transformer;
    const config = c.transformerConfig ?? instance?.config;
    if (!config) throw new Error(`${what}: pass transformerConfig with a transformer loader`);
    this.transformerConfig = config;
    this.kind = transformerKind(config, c.vae.config.latent_channels, `${what}: transformer config`);
    if (!accepts.includes(this.kind)) throw new Error(`${what} ${wrongKind(this.kind, config.in_channels, c.vae.config.latent_channels)}`);
    this.flavor = c.flavor ?? instance?.flavor ?? transformerFlavor(config);
  }

  /** The memory plan of a request on the current backend, or null without component sizes (models passed in). */
  planMemory(req: MemoryRequest): MemoryPlan | null {
    if (!this.memory) return null;
    return planMemory({ ...this.memory, vae: { ...this.memory.vae, tiling: this.vae.tiling }, backend: tf.getBackend(), fusedAttention: fusedAttentionAvailable() }, req);
  }

  /** Frees the models this pipeline loaded (models passed in as instances stay with the caller). */
  dispose(): void {
    this.textEncoder.release();
    this.transformer.release();
    this.vae.release();
  }

  /** A failed or aborted call: frees what the stages had loaded (the models this pipeline owns, the VAE's weights). */
  protected abandon(): void {
    this.dispose();
  }

  /** Defaults and checks every pipeline applies first (nothing is loaded or computed yet). */
  protected begin(o: CommonCallOptions, defaults: { height: number; width: number; numFrames: number }): Run {
    const tc = this.transformerConfig;
    const height = o.height ?? defaults.height;
    const width = o.width ?? defaults.width;
    const steps = o.numInferenceSteps ?? 50;
    const guidanceScale = o.guidanceScale ?? 6;
    const outputType = o.outputType ?? 'frames';
    const numVideosPerPrompt = o.numVideosPerPrompt ?? 1;
    checkSettings({ height, width, numInferenceSteps: steps, guidanceScale, outputType }, this.vae.spatialCompression * tc.patch_size);
    checkPositiveInt('numVideosPerPrompt', numVideosPerPrompt);
    const batch = checkPromptInputs(o, guidanceScale > 1) * numVideosPerPrompt;
    return {
      o,
      height,
      width,
      numFrames: o.numFrames ?? defaults.numFrames,
      steps,
      guidanceScale,
      doCfg: guidanceScale > 1,
      outputType,
      numVideosPerPrompt,
      // diffusers' pipelines default to 226, which is max_text_seq_length in every released config; a folder trained
      // with fewer text tokens (the demo model: 32) would otherwise see ~200 pad embeddings it never saw in training
      maxSequenceLength: o.maxSequenceLength ?? tc.max_text_seq_length,
      batch,
      generator: o.generator ?? new PhiloxGenerator(Math.floor(Math.random() * 2 ** 32)),
      signal: o.signal,
      warn: o.onWarning ?? ((m: string) => console.warn(m)),
      emit: o.onIntermediate ?? (() => {}),
      held: [],
    };
  }

  /** Refuses a request the memory plan says will not fit (before any weight is read). */
  protected checkMemory(r: Run, req: Omit<MemoryRequest, 'height' | 'width' | 'numFrames' | 'guidanceScale' | 'maxSequenceLength'>): void {
    if (r.o.checkMemory === false) return;
    const plan = this.planMemory({ height: r.height, width: r.width, numFrames: r.numFrames, guidanceScale: r.guidanceScale, maxSequenceLength: r.maxSequenceLength, batch: r.batch, ...req });
    if (plan && !plan.fits) throw new Error(`memory plan: ${plan.problems.join('; ')}`);
  }

  /** A stage boundary: lets a pending abort fire, checks it, reports the stage. */
  protected async enter(r: Run, stage: PipelineStage): Promise<void> {
    checkAbort(r.signal);
    await yieldToEventLoop();
    checkAbort(r.signal);
    r.o.onStage?.(stage, 'start');
  }

  protected leave(r: Run, stage: PipelineStage): void {
    r.o.onStage?.(stage, 'end');
  }

  /**
   * The text stage: [negative, positive] T5 embeddings (each prompt's rows repeated numVideosPerPrompt times), T5
   * released after. Returns the embeddings (held by the run) and the batch B = prompts × videos per prompt.
   */
  protected async textStage(r: Run): Promise<{ promptEmbeds: tf.Tensor3D; B: number }> {
    await this.enter(r, 'text');
    const promptEmbeds = await encodePrompt(
      r.o,
      r.doCfg,
      r.maxSequenceLength,
      async () => ({ tokenizer: this.tokenizer, encoder: await this.textEncoder.get() }),
      r.warn,
      { numVideosPerPrompt: r.numVideosPerPrompt, signal: r.signal },
    );
    r.held.push(promptEmbeds);
    this.textEncoder.release();
    this.leave(r, 'text');
    return { promptEmbeds, B: r.doCfg ? promptEmbeds.shape[0] / 2 : promptEmbeds.shape[0] };
  }

  /** `prepare_latents` without conditioning: o.latents (checked) or a draw, times the scheduler's init sigma. */
  protected initialNoise(r: Run, shape: number[]): tf.Tensor5D {
    const sigma = this.scheduler.initNoiseSigma;
    const given = r.o.latents;
    if (given) {
      if (given.shape.join() !== shape.join()) throw new Error(`latents must be [${shape.join(', ')}], got [${given.shape.join(', ')}]`);
      return tf.tidy(() => tf.mul(given, tf.scalar(sigma)) as tf.Tensor5D);
    }
    return tf.tidy(() => tf.mul(r.generator.randn(shape), tf.scalar(sigma)) as tf.Tensor5D);
  }

  /** VAE encode, yielding between chunks so that the signal can stop it. */
  protected async encode(r: Run, x: tf.Tensor5D): Promise<DiagonalGaussianDistribution> {
    checkAbort(r.signal);
    return this.vae.encodeAsync(x, { signal: r.signal });
  }

  /**
   * The denoising stage: loads the transformer, runs the loop over `timesteps` (taking `latents` over), releases the
   * transformer. Returns the final latents (held by the run).
   */
  protected async denoiseStage(
    r: Run,
    a: {
      latents: tf.Tensor5D;
      promptEmbeds: tf.Tensor3D;
      timesteps: readonly number[];
      numInferenceSteps: number;
      latentFrames: number;
      inpaintLatents?: tf.Tensor5D;
      imageLatents?: tf.Tensor5D;
      ofs?: number;
    },
  ): Promise<tf.Tensor5D> {
    let latents: tf.Tensor5D | null = a.latents;
    try {
      await this.enter(r, 'denoise');
      const transformer = await this.transformer.get();
      const [, , , h, w] = a.latents.shape;
      const rope = ropeTensors(transformer, h, w, a.latentFrames);
      if (rope) r.held.push(rope.cos, rope.sin);
      const taken = latents;
      latents = null; // the loop owns it now
      const final = await denoise({
        transformer,
        scheduler: this.scheduler,
        timesteps: a.timesteps,
        numInferenceSteps: a.numInferenceSteps,
        latents: taken,
        promptEmbeds: a.promptEmbeds,
        doCfg: r.doCfg,
        guidanceScale: r.guidanceScale,
        useDynamicCfg: r.o.useDynamicCfg ?? false,
        inpaintLatents: a.inpaintLatents,
        imageLatents: a.imageLatents,
        rope,
        ofs: a.ofs,
        generator: r.generator,
        onStep: r.o.onStep,
        signal: r.signal,
        onIntermediate: r.o.onIntermediate,
      });
      this.transformer.release();
      this.leave(r, 'denoise');
      r.emit('latents', final);
      return final;
    } finally {
      latents?.dispose();
    }
  }

  /** The decode stage ('fun': CogVideoX-Fun's chunking and truncation to uint8; 'diffusers': its chunking, rounding). */
  protected async decodeStage(r: Run, latents: tf.Tensor5D, flavor: TransformerFlavor): Promise<PipelineOutput> {
    await this.enter(r, 'decode');
    const out = await decodeOutput(this.vae, latents, {
      outputType: r.outputType as 'frames' | 'tensor',
      chunking: flavor === 'fun' ? 'fun' : 'diffusers',
      rounding: flavor === 'fun' ? 'truncate' : 'round',
      emit: r.emit,
      signal: r.signal,
    });
    this.leave(r, 'decode');
    return out;
  }
}
