// CogVideoX-Fun's inpaint pipeline (cogvideox/pipeline/pipeline_cogvideox_inpaint.py, spec §4) for the InP models
// (33 input channels): T2V, I2V from a start image, start + end images, V2V with a strength and an optional mask,
// one-frame image generation — one computation, selected by the conditioning video and mask.
import * as tf from '@tensorflow/tfjs-core';
import { nativeAttention } from '../nn/native.js';
import { resizeImage } from '../media/resize.js';
import { collectGarbage } from '../nn/backend.js';
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
import {
  addNoiseToReferenceVideo,
  imageToVideoInputs,
  maskedVideo,
  preprocessMask,
  preprocessVideo,
  resizeMask,
  videoToVideoInputs,
  type GrayImage,
  type GrayResizer,
  type RgbImage,
  type RgbResizer,
} from './inpaint.js';
import { planMemory, type MemoryInputs, type MemoryPlan, type MemoryRequest } from './memory_plan.js';
import { encodePrompt } from './prompt.js';
import { maxFramesFor } from './rules.js';

export interface FunCallOptions extends CommonCallOptions {
  /** Start image (I2V), or a list of k images for frames 0…k−1. Any size: resized as the reference (PIL BICUBIC). */
  image?: RgbImage | RgbImage[];
  /** End image(s) for the last frame(s); needs `image`. */
  endImage?: RgbImage | RgbImage[];
  /** Source frames for V2V, at the target size (the first numFrames are used). */
  sourceVideo?: RgbImage[];
  /** V2V mask: < 240 keeps the source pixel, ≥ 240 regenerates it. */
  mask?: GrayImage;
  /** The reference pipeline's own inputs instead of the above: [B, 3, F, H, W] in [0, 1] and [B, 1, F, H, W] 0/255. */
  video?: tf.Tensor5D;
  maskVideo?: tf.Tensor5D;
  /** V2V denoising strength in (0, 1]; default 1. */
  strength?: number;
  /** σ of the inpaint noise augmentation (only when the transformer config enables it); default 0.0563. */
  noiseAugStrength?: number;
  /** Image resizers (default: PIL-exact BICUBIC, as the predict scripts). */
  resizeRgb?: RgbResizer;
  resizeGray?: GrayResizer;
}

export interface FunComponents {
  tokenizer: T5Tokenizer;
  textEncoder: T5EncoderModel | (() => Promise<T5EncoderModel>);
  transformer: CogVideoXTransformer3DModel | (() => Promise<CogVideoXTransformer3DModel>);
  /** Needed when the transformer is a loader (its config drives every check before compute). */
  transformerConfig?: TransformerConfig;
  vae: AutoencoderKLCogVideoX;
  scheduler: Scheduler;
  /** Component sizes for the memory plan (openModelFolder provides them). */
  memory?: Omit<MemoryInputs, 'backend'>;
}

const DEFAULT_SAMPLER = 'DDIM_Origin'; // predict_*.py

// The predict scripts' PIL `Image.resize((w, h))`: BICUBIC, bit-exact (src/media/resize.ts)
const pilBicubicRgb: RgbResizer = (img, w, h) => {
  const r = resizeImage({ ...img, channels: 3 }, w, h, 'bicubic');
  return { width: r.width, height: r.height, data: r.data };
};
const pilBicubicGray: GrayResizer = (img, w, h) => {
  const r = resizeImage({ ...img, channels: 1 }, w, h, 'bicubic');
  return { width: r.width, height: r.height, data: r.data };
};

export class CogVideoXFunPipeline {
  readonly tokenizer: T5Tokenizer;
  readonly vae: AutoencoderKLCogVideoX;
  scheduler: Scheduler;
  readonly transformerConfig: TransformerConfig;
  private readonly textEncoder: ModelSlot<T5EncoderModel>;
  private readonly transformer: ModelSlot<CogVideoXTransformer3DModel>;
  private readonly memory: Omit<MemoryInputs, 'backend'> | null;

  constructor(c: FunComponents) {
    this.tokenizer = c.tokenizer;
    this.vae = c.vae;
    this.scheduler = c.scheduler;
    this.textEncoder = new ModelSlot(c.textEncoder);
    this.transformer = new ModelSlot(c.transformer);
    this.memory = c.memory ?? null;
    const config = c.transformerConfig ?? (typeof c.transformer === 'function' ? undefined : c.transformer.config);
    if (!config) throw new Error('CogVideoXFunPipeline: pass transformerConfig with a transformer loader');
    this.transformerConfig = config;
    const latentC = c.vae.config.latent_channels;
    if (config.in_channels !== 2 * latentC + 1) {
      throw new Error(
        `CogVideoXFunPipeline needs an inpaint (InP) transformer with ${2 * latentC + 1} input channels, this one has ${config.in_channels}; ` +
          'use CogVideoXPipeline / CogVideoXImageToVideoPipeline for the THUDM checkpoints',
      );
    }
  }

  /** Opens a CogVideoX-Fun model folder (e.g. CogVideoX-Fun-V1.1-2b-InP); the sampler defaults to DDIM_Origin. */
  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<CogVideoXFunPipeline> {
    const f = await openModelFolder(dir, DEFAULT_SAMPLER, opts);
    return new CogVideoXFunPipeline({ ...f, transformerConfig: f.transformerConfig });
  }

  /** Frees the models this pipeline loaded (models passed in as instances stay with the caller). */
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

  async call(o: FunCallOptions): Promise<PipelineOutput> {
    const tc = this.transformerConfig;
    const vae = this.vae;
    const sf = vae.scalingFactor;
    const spatial = vae.spatialCompression;
    const temporal = vae.temporalCompression;
    const warn = o.onWarning ?? ((m: string) => console.warn(m));
    const emit = o.onIntermediate ?? (() => {});

    // ---- 1. checks, before anything is loaded or computed
    const height = o.height ?? 480; // the Fun pipeline's signature defaults
    const width = o.width ?? 720;
    let numFrames = o.numFrames ?? 49;
    const steps = o.numInferenceSteps ?? 50;
    const guidanceScale = o.guidanceScale ?? 6;
    const strength = o.strength ?? 1;
    const outputType = o.outputType ?? 'frames';
    checkSettings({ height, width, numInferenceSteps: steps, guidanceScale, outputType }, spatial * tc.patch_size);
    if (!(strength > 0 && strength <= 1)) throw new RangeError(`strength must be in (0, 1], got ${strength}`);
    if (o.endImage && !o.image) throw new Error('endImage needs a start image (image)');
    const fromImages = !!o.image;
    const fromFrames = !!o.sourceVideo;
    const fromTensors = !!o.video;
    if (Number(fromImages) + Number(fromFrames) + Number(fromTensors) > 1) throw new Error('pass only one of image(/endImage), sourceVideo, video');
    if (o.mask && !fromFrames) throw new Error('mask applies to sourceVideo (V2V)');
    if (o.maskVideo && !o.video) throw new Error('maskVideo needs video');
    if (strength < 1 && !fromFrames && !fromTensors) throw new Error(`strength ${strength} < 1 needs a source video (sourceVideo) to start from`);
    if (o.video && !o.maskVideo) throw new Error('video needs maskVideo (0 = keep, 255 = generate), as the reference pipeline');
    if (fromTensors) numFrames = o.video!.shape[2];
    else if (fromFrames) numFrames = Math.min(numFrames, o.sourceVideo!.length);
    const { max, why } = maxFramesFor(tc);
    checkFrameCount(numFrames, max, why);
    const doCfg = guidanceScale > 1;
    if (o.checkMemory !== false) {
      const plan = this.planMemory({ height, width, numFrames, guidanceScale, image: fromImages, sourceVideo: fromFrames || fromTensors, maxSequenceLength: o.maxSequenceLength });
      if (plan && !plan.fits) throw new Error(`memory plan: ${plan.problems.join('; ')}`);
    }
    const generator: Generator = o.generator ?? new PhiloxGenerator(Math.floor(Math.random() * 2 ** 32));
    const resizeRgb = o.resizeRgb ?? pilBicubicRgb;
    const resizeGray = o.resizeGray ?? pilBicubicGray;

    // ---- 2. conditioning video and mask, as the predict scripts build them
    let cond: { video: tf.Tensor5D; maskVideo: tf.Tensor5D };
    if (fromTensors) {
      checkVideoTensors(o.video!, o.maskVideo!);
      cond = { video: tf.clone(o.video!), maskVideo: tf.clone(o.maskVideo!) };
    } else if (fromFrames) {
      cond = videoToVideoInputs(o.sourceVideo!, numFrames, height, width, o.mask, resizeGray);
    } else {
      cond = imageToVideoInputs(o.image, o.endImage, numFrames, height, width, resizeRgb);
    }

    const held: tf.Tensor[] = [cond.video, cond.maskVideo];
    try {
      checkAbort(o.signal);
      // ---- 3. text (T5 is released right after)
      const stage = o.onStage ?? (() => {});
      stage('text', 'start');
      const promptEmbeds = await encodePrompt(o, doCfg, o.maxSequenceLength ?? 226, async () => ({ tokenizer: this.tokenizer, encoder: await this.textEncoder.get() }), warn);
      held.push(promptEmbeds);
      this.textEncoder.release();
      stage('text', 'end');
      const B = doCfg ? promptEmbeds.shape[0] / 2 : promptEmbeds.shape[0];
      if (cond.video.shape[0] !== 1 && cond.video.shape[0] !== B) throw new Error(`video batch ${cond.video.shape[0]} does not match the prompt batch ${B}`);

      // ---- 4. timesteps and the strength slice
      const sched = this.scheduler;
      sched.setTimesteps(steps);
      const { timesteps, numInferenceSteps } = sched.getTimestepsForStrength(steps, strength);
      if (timesteps.length === 0) throw new Error(`strength ${strength} × ${steps} steps leaves no denoising step`);

      stage('conditioning', 'start');
      // ---- 5. pixel inputs; CogVideoX 1.5 clips an odd latent count (the pipeline drops frames)
      let videoLength = cond.video.shape[2];
      let initVideo = preprocessVideo(cond.video, height, width);
      held.push(initVideo);
      const pt = tc.patch_size_t;
      const latentLength = Math.floor((numFrames - 1) / temporal) + 1;
      if (pt && latentLength % pt !== 0) {
        numFrames = Math.max(1, numFrames - (latentLength % pt) * temporal);
        if (videoLength > numFrames) {
          warn(`CogVideoX 1.5 needs an even latent frame count: the conditioning video is clipped to ${numFrames} frames`);
          videoLength = numFrames;
          initVideo = clipFrames(initVideo, numFrames);
          cond.maskVideo = clipFrames(cond.maskVideo, numFrames);
          held.push(initVideo, cond.maskVideo);
        }
      }
      const T = Math.floor((videoLength - 1) / temporal) + 1;
      const h = height / spatial;
      const w = width / spatial;
      const latentShape = [B, T, vae.config.latent_channels, h, w];

      // ---- 6. initial latents (V2V: the source video's latents noised to the first timestep)
      let latents: tf.Tensor5D;
      if (o.latents) {
        if (o.latents.shape.join() !== latentShape.join()) throw new Error(`latents must be [${latentShape.join(', ')}], got [${o.latents.shape.join(', ')}]`);
        latents = tf.tidy(() => tf.mul(o.latents!, tf.scalar(sched.initNoiseSigma)) as tf.Tensor5D);
      } else if (strength < 1) {
        const videoLatents = this.encodeSample(initVideo, B, sf, generator);
        emit('video_latents', videoLatents);
        const noise = generator.randn(latentShape);
        latents = sched.addNoise(videoLatents, noise, timesteps[0]!) as tf.Tensor5D;
        tf.dispose([videoLatents, noise]);
      } else {
        latents = tf.tidy(() => tf.mul(generator.randn(latentShape), tf.scalar(sched.initNoiseSigma)) as tf.Tensor5D);
      }
      held.push(latents);
      emit('init_latents', latents);

      // ---- 7. inpaint latents [B, T, 17, h, w]: zeros when everything is generated
      const allGenerated = tf.tidy(() => tf.all(tf.equal(cond.maskVideo, 255)).dataSync()[0] === 1);
      let inpaint: tf.Tensor5D;
      if (allGenerated) {
        inpaint = tf.zeros([B, T, vae.config.latent_channels + 1, h, w]) as tf.Tensor5D;
        tf.tidy(() => emit('mask_latents', tf.zeros([B, 1, T, h, w])));
      } else {
        const m = preprocessMask(cond.maskVideo, height, width);
        held.push(m);
        emit('mask', m);
        let masked = maskedVideo(initVideo, m);
        held.push(masked);
        if (tc.add_noise_in_inpaint_model) {
          const eps = generator.randn(masked.shape);
          masked = addNoiseToReferenceVideo(masked, eps, o.noiseAugStrength ?? 0.0563);
          eps.dispose();
          held.push(masked);
        }
        checkAbort(o.signal);
        const maskedLatents = this.encodeMode(masked, sf); // [B, 16, T, h, w]
        emit('masked_latents', maskedLatents);
        const maskLatents = tf.tidy(() => tf.mul(resizeMask(tf.sub(1, m) as tf.Tensor5D, T, h, w), tf.scalar(sf)) as tf.Tensor5D);
        emit('mask_latents', maskLatents);
        inpaint = tf.tidy(() => tf.transpose(tf.concat([maskLatents, maskedLatents], 1), [0, 2, 1, 3, 4]) as tf.Tensor5D);
        tf.dispose([maskedLatents, maskLatents]);
        if (inpaint.shape[0] !== B) {
          const one = inpaint;
          inpaint = tf.tile(one, [B, 1, 1, 1, 1]);
          one.dispose();
        }
      }
      emit('inpaint_latents', inpaint);
      const inpaintInput = doCfg ? (tf.concat([inpaint, inpaint], 0) as tf.Tensor5D) : inpaint;
      held.push(inpaint, inpaintInput);
      vae.release('encoder'); // weights come back on the next encode
      collectGarbage();
      stage('conditioning', 'end');

      // ---- 8. denoising (the transformer is released after)
      checkAbort(o.signal);
      stage('denoise', 'start');
      const transformer = await this.transformer.get();
      const rope = ropeTensors(transformer, h, w, T);
      if (rope) held.push(rope.cos, rope.sin);
      held.splice(held.indexOf(latents), 1);
      const final = denoise({
        transformer,
        scheduler: sched,
        timesteps,
        numInferenceSteps,
        latents,
        promptEmbeds,
        doCfg,
        guidanceScale,
        useDynamicCfg: o.useDynamicCfg ?? false,
        inpaintLatents: inpaintInput,
        rope,
        generator,
        onStep: o.onStep,
        signal: o.signal,
        onIntermediate: o.onIntermediate,
      });
      this.transformer.release();
      stage('denoise', 'end');
      emit('latents', final);
      if (outputType === 'latent') return { tensor: final };

      // ---- 9. decode (Fun chunking), (x/2 + 0.5).clamp(0, 1), uint8 by truncation
      held.push(final);
      checkAbort(o.signal);
      stage('decode', 'start');
      const out = decodeOutput(vae, final, { outputType, chunking: 'fun', rounding: 'truncate', emit });
      stage('decode', 'end');
      return out;
    } finally {
      tf.dispose(held);
    }
  }

  /** VAE.encode(x).sample() · scaling_factor per batch element, rearranged to [B, T, C, h, w] (V2V source). */
  private encodeSample(x: tf.Tensor5D, B: number, sf: number, generator: Generator): tf.Tensor5D {
    const post = this.vae.encode(x);
    try {
      const z = post.sample({ randn: (shape) => generator.randn(shape) });
      return tf.tidy(() => {
        let v = tf.transpose(tf.mul(z, tf.scalar(sf)), [0, 2, 1, 3, 4]);
        if (v.shape[0] !== B) v = tf.tile(v, [B / v.shape[0]!, 1, 1, 1, 1]);
        z.dispose();
        return v as tf.Tensor5D;
      });
    } finally {
      post.dispose();
    }
  }

  /** VAE.encode(x).mode() · scaling_factor → [B, C, T, h, w] (masked video). */
  private encodeMode(x: tf.Tensor5D, sf: number): tf.Tensor5D {
    const post = this.vae.encode(x);
    try {
      return tf.tidy(() => tf.mul(post.mean, tf.scalar(sf)) as tf.Tensor5D);
    } finally {
      post.dispose();
    }
  }
}

function clipFrames(x: tf.Tensor5D, F: number): tf.Tensor5D {
  const [B, C, , H, W] = x.shape;
  return tf.slice(x, [0, 0, 0, 0, 0], [B, C, F, H, W]);
}

function checkVideoTensors(video: tf.Tensor5D, mask: tf.Tensor5D): void {
  if (video.rank !== 5 || video.shape[1] !== 3) throw new Error(`video must be [B, 3, F, H, W] in [0, 1], got [${video.shape.join(', ')}]`);
  if (mask.rank !== 5 || mask.shape[1] !== 1) throw new Error(`maskVideo must be [B, 1, F, H, W] (0 keep / 255 generate), got [${mask.shape.join(', ')}]`);
  const [B, , F, H, W] = video.shape;
  if (mask.shape[0] !== B || mask.shape[2] !== F || mask.shape[3] !== H || mask.shape[4] !== W) {
    throw new Error(`maskVideo [${mask.shape.join(', ')}] does not match video [${video.shape.join(', ')}]`);
  }
}
