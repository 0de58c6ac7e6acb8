// diffusers v0.32.2 CogVideoXPipeline (THUDM CogVideoX-2b / 5b / 1.5 text-to-video) and
// CogVideoXImageToVideoPipeline (5b-I2V / 1.5-I2V): the same loop as the Fun pipeline without inpaint channels,
// diffusers' VAE decode chunking, and PIL-style rounding of the output frames.
import * as tf from '@tensorflow/tfjs-core';
import { nativeAttention } from '../nn/native.js';
import { resizeImage } from '../media/resize.js';
import type { T5EncoderModel } from '../models/t5.js';
import type { T5Tokenizer } from '../models/t5_tokenizer.js';
import type { CogVideoXTransformer3DModel, TransformerConfig } from '../models/transformer.js';
import type { AutoencoderKLCogVideoX } from '../models/vae.js';
import { PhiloxGenerator, type Generator } from '../schedulers/generator.js';
import type { Scheduler } from '../schedulers/scheduler.js';
import {
  checkAbort,
  checkFrameCount,
  checkSettings,
  decodeOutput,
  denoise,
  ropeTensors,
  type CommonCallOptions,
  type PipelineOutput,
} from './common.js';
import { ModelSlot, openModelFolder, type LoadOptions } from './components.js';
import type { RgbImage, RgbResizer } from './inpaint.js';
import { planMemory, type MemoryInputs, type MemoryPlan, type MemoryRequest } from './memory_plan.js';
import { encodePrompt } from './prompt.js';
import { maxFramesFor } from './rules.js';

export interface CogVideoXComponents {
  tokenizer: T5Tokenizer;
  textEncoder: T5EncoderModel | (() => Promise<T5EncoderModel>);
  transformer: CogVideoXTransformer3DModel | (() => Promise<CogVideoXTransformer3DModel>);
  transformerConfig?: TransformerConfig;
  vae: AutoencoderKLCogVideoX;
  scheduler: Scheduler;
  /** Component sizes for the memory plan (openModelFolder provides them). */
  memory?: Omit<MemoryInputs, 'backend'>;
}

export interface ImageToVideoCallOptions extends CommonCallOptions {
  /** The first frame. Any size: resized to (width, height) as diffusers' VideoProcessor (PIL LANCZOS). */
  image: RgbImage;
  resizeRgb?: RgbResizer;
}

// diffusers' VideoProcessor resizes PIL images with LANCZOS (bit-exact: src/media/resize.ts)
const lanczos: RgbResizer = (img, w, h) => {
  const r = resizeImage({ ...img, channels: 3 }, w, h, 'lanczos');
  return { width: r.width, height: r.height, data: r.data };
};

const DEFAULT_SAMPLER = 'DPM_Cog'; // THUDM cli_demo

abstract class CogVideoXBase {
  readonly tokenizer: T5Tokenizer;
  readonly vae: AutoencoderKLCogVideoX;
  scheduler: Scheduler;
  readonly transformerConfig: TransformerConfig;
  protected readonly textEncoder: ModelSlot<T5EncoderModel>;
  protected readonly transformer: ModelSlot<CogVideoXTransformer3DModel>;
  protected readonly memory: Omit<MemoryInputs, 'backend'> | null;

  constructor(c: CogVideoXComponents, expectedChannels: (latent: number) => number, what: string) {
    this.tokenizer = c.tokenizer;
    this.vae = c.vae;
    this.scheduler = c.scheduler;
    this.textEncoder = new ModelSlot(c.textEncoder);
    this.transformer = new ModelSlot(c.transformer);
    this.memory = c.memory ?? null;
    const config = c.transformerConfig ?? (typeof c.transformer === 'function' ? undefined : c.transformer.config);
    if (!config) throw new Error(`${what}: pass transformerConfig with a transformer loader`);
    this.transformerConfig = config;
    const want = expectedChannels(c.vae.config.latent_channels);
    if (config.in_channels !== want) throw new Error(`${what} needs a transformer with ${want} input channels, this one has ${config.in_channels}`);
  }

  /** The memory plan of a request on the current backend, or null without component sizes (models passed in). */
  planMemory(req: MemoryRequest): MemoryPlan | null {
    if (!this.memory) return null;
    return planMemory({ ...this.memory, vae: { ...this.memory.vae, tiling: this.vae.tiling }, backend: tf.getBackend(), fusedAttention: nativeAttention() !== null }, req);
  }

  dispose(): void {
    this.textEncoder.release();
    this.transformer.release();
    this.vae.release();
  }

  /** Shared body; `image` given → I2V. */
  protected async run(o: CommonCallOptions, image: RgbImage | null, resize: RgbResizer | undefined): Promise<PipelineOutput> {
    const tc = this.transformerConfig;
    const vae = this.vae;
    const spatial = vae.spatialCompression;
    const temporal = vae.temporalCompression;
    const sf = vae.scalingFactor;
    const warn = o.onWarning ?? ((m: string) => console.warn(m));
    const emit = o.onIntermediate ?? (() => {});

    const height = o.height ?? tc.sample_height * spatial;
    const width = o.width ?? tc.sample_width * spatial;
    let numFrames = o.numFrames ?? tc.sample_frames;
    const steps = o.numInferenceSteps ?? 50;
    const guidanceScale = o.guidanceScale ?? 6;
    const outputType = o.outputType ?? 'frames';
    checkSettings({ height, width, numInferenceSteps: steps, guidanceScale, outputType }, spatial * tc.patch_size);
    const { max, why } = maxFramesFor(tc, 'diffusers');
    checkFrameCount(numFrames, max, why);
    if (image) {
      if (!image || !(image.data instanceof Uint8Array) || image.data.length !== image.width * image.height * 3) throw new Error('image: expected an RGB image {width, height, data}');
    }
    const doCfg = guidanceScale > 1;
    if (o.checkMemory !== false) {
      const plan = this.planMemory({ height, width, numFrames, guidanceScale, image: !!image, maxSequenceLength: o.maxSequenceLength });
      if (plan && !plan.fits) throw new Error(`memory plan: ${plan.problems.join('; ')}`);
    }
    const generator: Generator = o.generator ?? new PhiloxGenerator(Math.floor(Math.random() * 2 ** 32));
    let pixels: RgbImage | null = null;
    if (image) {
      pixels = image.width === width && image.height === height ? image : (resize ?? lanczos)(image, width, height);
    }

    const held: tf.Tensor[] = [];
    try {
      checkAbort(o.signal);
      const stage = o.onStage ?? (() => {});
      stage('text', 'start');
      const promptEmbeds = await encodePrompt(o, doCfg, o.maxSequenceLength ?? 226, async () => ({ tokenizer: this.tokenizer, encoder: await this.textEncoder.get() }), warn);
      held.push(promptEmbeds);
      this.textEncoder.release();
      stage('text', 'end');
      const B = doCfg ? promptEmbeds.shape[0] / 2 : promptEmbeds.shape[0];

      const sched = this.scheduler;
      sched.setTimesteps(steps);
      const timesteps = sched.timesteps.slice();

      // 1.5: pad the latent count to a multiple of patch_size_t; the padding frames are dropped before decoding
      let latentFrames = Math.floor((numFrames - 1) / temporal) + 1;
      let additional = 0;
      if (tc.patch_size_t && latentFrames % tc.patch_size_t !== 0) {
        additional = tc.patch_size_t - (latentFrames % tc.patch_size_t);
        numFrames += additional * temporal;
        latentFrames = Math.floor((numFrames - 1) / temporal) + 1;
      }
      const h = height / spatial;
      const w = width / spatial;
      const C = vae.config.latent_channels;

      // I2V: image latents (posterior sample with the generator) first, then the noise (the reference's draw order)
      let imageLatents: tf.Tensor5D | undefined;
      let T = latentFrames;
      if (pixels) {
        stage('conditioning', 'start');
        if (tc.patch_size_t) T = T + (T % tc.patch_size_t);
        imageLatents = this.imageLatents(pixels, B, latentFrames, C, h, w, sf, generator);
        held.push(imageLatents);
        emit('image_latents', imageLatents);
        vae.release('encoder');
        stage('conditioning', 'end');
      }
      const shape = [B, T, C, h, w];
      let latents: tf.Tensor5D;
      if (o.latents) {
        if (o.latents.shape.join() !== shape.join()) throw new Error(`latents must be [${shape.join(', ')}], got [${o.latents.shape.join(', ')}]`);
        latents = tf.tidy(() => tf.mul(o.latents!, tf.scalar(sched.initNoiseSigma)) as tf.Tensor5D);
      } else {
        latents = tf.tidy(() => tf.mul(generator.randn(shape), tf.scalar(sched.initNoiseSigma)) as tf.Tensor5D);
      }
      emit('init_latents', latents);

      checkAbort(o.signal);
      stage('denoise', 'start');
      const transformer = await this.transformer.get();
      const rope = ropeTensors(transformer, h, w, T);
      if (rope) held.push(rope.cos, rope.sin);
      let imageInput: tf.Tensor5D | undefined;
      if (imageLatents) {
        imageInput = doCfg ? (tf.concat([imageLatents, imageLatents], 0) as tf.Tensor5D) : imageLatents;
        if (imageInput !== imageLatents) held.push(imageInput);
      }
      const final = denoise({
        transformer,
        scheduler: sched,
        timesteps,
        numInferenceSteps: steps,
        latents,
        promptEmbeds,
        doCfg,
        guidanceScale,
        useDynamicCfg: o.useDynamicCfg ?? false,
        imageLatents: imageInput,
        rope,
        ofs: tc.ofs_embed_dim ? 2.0 : undefined,
        generator,
        onStep: o.onStep,
        signal: o.signal,
        onIntermediate: o.onIntermediate,
      });
      this.transformer.release();
      stage('denoise', 'end');
      emit('latents', final);
      if (outputType === 'latent') return { tensor: final };

      held.push(final);
      checkAbort(o.signal);
      stage('decode', 'start');
      // 1.5: the padding latent frames are dropped before decoding
      const kept = additional ? tf.slice(final, [0, additional, 0, 0, 0], [B, T - additional, C, h, w]) : final;
      if (kept !== final) held.push(kept);
      const out = decodeOutput(vae, kept, { outputType, chunking: 'diffusers', rounding: 'round', emit });
      stage('decode', 'end');
      return out;
    } finally {
      tf.dispose(held);
    }
  }

  /**
   * diffusers I2V `prepare_latents`: VAE.encode(image).sample(generator) · scaling_factor (or ÷ with
   * invert_scale_latents) as latent frame 0, zeros after; 1.5 prepends the odd-count padding frames.
   */
  private imageLatents(img: RgbImage, B: number, n: number, C: number, h: number, w: number, sf: number, generator: Generator): tf.Tensor5D {
    const x = tf.tidy(() => {
      const hw = img.height * img.width;
      const chw = new Float32Array(3 * hw);
      for (let c = 0; c < 3; c++) for (let i = 0; i < hw; i++) chw[c * hw + i] = Math.fround(img.data[i * 3 + c]! / 255);
      return tf.sub(tf.mul(tf.tensor5d(chw, [1, 3, 1, img.height, img.width]), 2), 1) as tf.Tensor5D;
    });
    const parts: tf.Tensor5D[] = [];
    try {
      for (let b = 0; b < B; b++) {
        const post = this.vae.encode(x);
        try {
          parts.push(post.sample({ randn: (s) => generator.randn(s) }));
        } finally {
          post.dispose();
        }
      }
    } finally {
      x.dispose();
    }
    const invert = (this.vae.config as { invert_scale_latents?: boolean }).invert_scale_latents === true;
    return tf.tidy(() => {
      const z = tf.transpose(tf.concat(parts, 0), [0, 2, 1, 3, 4]); // [B, 1, C, h, w]
      const scaled = invert ? tf.mul(tf.scalar(1 / sf), z) : tf.mul(tf.scalar(sf), z);
      let out = n > 1 ? tf.concat([scaled, tf.zeros([B, n - 1, C, h, w])], 1) : scaled;
      const pt = this.transformerConfig.patch_size_t;
      if (pt && n % pt) out = tf.concat([tf.slice(out, [0, 0, 0, 0, 0], [B, n % pt, C, h, w]), out], 1);
      tf.dispose(parts);
      return out as tf.Tensor5D;
    });
  }
}

export class CogVideoXPipeline extends CogVideoXBase {
  constructor(c: CogVideoXComponents) {
    super(c, (latent) => latent, 'CogVideoXPipeline');
  }

  /** Opens a THUDM CogVideoX folder; the sampler defaults to DPM_Cog (THUDM cli_demo). */
  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<CogVideoXPipeline> {
    const f = await openModelFolder(dir, DEFAULT_SAMPLER, opts);
    return new CogVideoXPipeline(f);
  }

  call(o: CommonCallOptions): Promise<PipelineOutput> {
    return this.run(o, null, undefined);
  }
}

export class CogVideoXImageToVideoPipeline extends CogVideoXBase {
  constructor(c: CogVideoXComponents) {
    super(c, (latent) => 2 * latent, 'CogVideoXImageToVideoPipeline');
  }

  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<CogVideoXImageToVideoPipeline> {
    const f = await openModelFolder(dir, DEFAULT_SAMPLER, opts);
    return new CogVideoXImageToVideoPipeline(f);
  }

  call(o: ImageToVideoCallOptions): Promise<PipelineOutput> {
    if (!o || !o.image) throw new Error('CogVideoXImageToVideoPipeline: image is required');
    return this.run(o, o.image, o.resizeRgb);
  }
}
