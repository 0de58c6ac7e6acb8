// CogVideoX-Fun's inpaint pipeline (CogVideoX-Fun cogvideox/pipeline/pipeline_cogvideox_inpaint.py) for the InP
// models (in_channels = 2·latent + 1): T2V, I2V from a start image, start + end images, V2V with a strength and an
// optional mask, one-frame image generation — one computation, selected by the conditioning video and mask.
import * as tf from '@tensorflow/tfjs-core';
import { resizeImage } from '../media/resize.js';
import { collectGarbage } from '../nn/backend.js';
import type { Generator } from '../schedulers/generator.js';
import { PipelineBase, type PipelineComponents, type Run } from './base.js';
import { checkAbort, checkFrameCount, type CommonCallOptions, type PipelineOutput } from './common.js';
import { openModelFolder, type LoadOptions } from './components.js';
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

export type FunComponents = PipelineComponents;

// The predict scripts' PIL `Image.resize((w, h))`: BICUBIC, bit-exact (src/media/resize.ts)
const pilBicubicRgb: RgbResizer = (img, w, h) => {
  const r = resizeImage({ ...img, channels: 3 }, w, h, 'bicubic');
  return { width: r.width, height: r.height, data: r.data };
};
const pilBicubicGray: GrayResizer = (img, w, h) => {
  const r = resizeImage({ ...img, channels: 1 }, w, h, 'bicubic');
  return { width: r.width, height: r.height, data: r.data };
};

export class CogVideoXFunPipeline extends PipelineBase {
  constructor(c: FunComponents) {
    super(c, ['fun-inp'], 'CogVideoXFunPipeline', (kind, inC, C) =>
      `needs an inpaint (InP) transformer with ${2 * C + 1} input channels, this one has ${inC}; ` +
        (kind === 'fun-t2v' ? 'a CogVideoX-Fun text-to-video model runs in CogVideoXPipeline' : 'use CogVideoXPipeline / CogVideoXImageToVideoPipeline for the THUDM checkpoints'),
    );
  }

  /**
   * Opens a CogVideoX-Fun model folder (e.g. CogVideoX-Fun-V1.1-2b-InP); the sampler defaults to the folder's
   * scheduler class (the predict scripts pick DDIM_Origin: pass `{ sampler: 'DDIM_Origin' }` to match them).
   */
  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<CogVideoXFunPipeline> {
    return new CogVideoXFunPipeline(await openModelFolder(dir, opts));
  }

  async call(o: FunCallOptions): Promise<PipelineOutput> {
    const tc = this.transformerConfig;
    const vae = this.vae;
    const sf = vae.scalingFactor;
    const spatial = vae.spatialCompression;
    const temporal = vae.temporalCompression;

    // ---- 1. checks, before anything is loaded or computed (defaults: the Fun pipeline's signature)
    const r = this.begin(o, { height: 480, width: 720, numFrames: 49 });
    const { height, width } = r;
    let numFrames = r.numFrames;
    const strength = o.strength ?? 1;
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
    const { max, why } = maxFramesFor(tc, this.flavor);
    checkFrameCount(numFrames, max, why);
    r.numFrames = numFrames;
    this.checkMemory(r, { image: fromImages, sourceVideo: fromFrames || fromTensors });
    const generator = r.generator;
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

    r.held.push(cond.video, cond.maskVideo);
    try {
      // ---- 3. text (T5 is released right after)
      const { promptEmbeds, B } = await this.textStage(r);
      if (cond.video.shape[0] !== 1 && cond.video.shape[0] !== B) throw new Error(`video batch ${cond.video.shape[0]} does not match the prompt batch ${B}`);

      // ---- 4. timesteps and the strength slice
      const sched = this.scheduler;
      sched.setTimesteps(r.steps);
      const { timesteps, numInferenceSteps } = sched.getTimestepsForStrength(r.steps, strength);
      if (timesteps.length === 0) throw new Error(`strength ${strength} × ${r.steps} steps leaves no denoising step`);

      await this.enter(r, 'conditioning');
      // ---- 5. pixel inputs; CogVideoX 1.5 clips an odd latent count (the pipeline drops frames)
      let videoLength = cond.video.shape[2];
      let initVideo = preprocessVideo(cond.video, height, width);
      r.held.push(initVideo);
      const pt = tc.patch_size_t;
      const latentLength = Math.floor((numFrames - 1) / temporal) + 1;
      if (pt && latentLength % pt !== 0) {
        numFrames = Math.max(1, numFrames - (latentLength % pt) * temporal);
        if (videoLength > numFrames) {
          r.warn(`CogVideoX 1.5 needs an even latent frame count: the conditioning video is clipped to ${numFrames} frames`);
          videoLength = numFrames;
          initVideo = clipFrames(initVideo, numFrames);
          cond.maskVideo = clipFrames(cond.maskVideo, numFrames);
          r.held.push(initVideo, cond.maskVideo);
        }
      }
      const T = Math.floor((videoLength - 1) / temporal) + 1;
      const h = height / spatial;
      const w = width / spatial;
      const latentShape = [B, T, vae.config.latent_channels, h, w];

      // ---- 6. initial latents (V2V: the source video's latents noised to the first timestep)
      let latents: tf.Tensor5D;
      if (strength < 1 && !o.latents) {
        const videoLatents = await this.encodeSample(r, initVideo, B, sf, generator);
        r.emit('video_latents', videoLatents);
        const noise = generator.randn(latentShape);
        latents = sched.addNoise(videoLatents, noise, timesteps[0]!) as tf.Tensor5D;
        tf.dispose([videoLatents, noise]);
      } else {
        latents = this.initialNoise(r, latentShape);
      }
      r.held.push(latents);
      r.emit('init_latents', latents);

      // ---- 7. inpaint latents [B, T, 17, h, w]: zeros when everything is generated
      const allGenerated = tf.tidy(() => tf.all(tf.equal(cond.maskVideo, 255)).dataSync()[0] === 1);
      let inpaint: tf.Tensor5D;
      if (allGenerated) {
        inpaint = tf.zeros([B, T, vae.config.latent_channels + 1, h, w]) as tf.Tensor5D;
        tf.tidy(() => r.emit('mask_latents', tf.zeros([B, 1, T, h, w])));
      } else {
        const m = preprocessMask(cond.maskVideo, height, width);
        r.held.push(m);
        r.emit('mask', m);
        let masked = maskedVideo(initVideo, m);
        r.held.push(masked);
        if (tc.add_noise_in_inpaint_model) {
          const eps = generator.randn(masked.shape);
          masked = addNoiseToReferenceVideo(masked, eps, o.noiseAugStrength ?? 0.0563);
          eps.dispose();
          r.held.push(masked);
        }
        checkAbort(r.signal);
        const maskedLatents = await this.encodeMode(r, masked, sf); // [B, 16, T, h, w]
        r.emit('masked_latents', maskedLatents);
        const maskLatents = tf.tidy(() => tf.mul(resizeMask(tf.sub(1, m) as tf.Tensor5D, T, h, w), tf.scalar(sf)) as tf.Tensor5D);
        r.emit('mask_latents', maskLatents);
        inpaint = tf.tidy(() => tf.transpose(tf.concat([maskLatents, maskedLatents], 1), [0, 2, 1, 3, 4]) as tf.Tensor5D);
        tf.dispose([maskedLatents, maskLatents]);
        if (inpaint.shape[0] !== B) {
          const one = inpaint;
          inpaint = tf.tile(one, [B, 1, 1, 1, 1]);
          one.dispose();
        }
      }
      r.emit('inpaint_latents', inpaint);
      const inpaintInput = r.doCfg ? (tf.concat([inpaint, inpaint], 0) as tf.Tensor5D) : inpaint;
      r.held.push(inpaint);
      if (inpaintInput !== inpaint) r.held.push(inpaintInput);
      vae.release('encoder'); // weights come back on the next encode
      collectGarbage();
      this.leave(r, 'conditioning');

      // ---- 8. denoising (the transformer is released after)
      r.held.splice(r.held.indexOf(latents), 1);
      const final = await this.denoiseStage(r, { latents, promptEmbeds, timesteps, numInferenceSteps, latentFrames: T, inpaintLatents: inpaintInput });
      if (r.outputType === 'latent') return { tensor: final };

      // ---- 9. decode (Fun chunking), (x/2 + 0.5).clamp(0, 1), uint8 by truncation
      r.held.push(final);
      return await this.decodeStage(r, final, 'fun');
    } catch (e) {
      this.abandon();
      throw e;
    } finally {
      tf.dispose(r.held);
    }
  }

  /** VAE.encode(x).sample() · scaling_factor per batch element, rearranged to [B, T, C, h, w] (V2V source). */
  private async encodeSample(r: Run, x: tf.Tensor5D, B: number, sf: number, generator: Generator): Promise<tf.Tensor5D> {
    const post = await this.encode(r, x);
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
  private async encodeMode(r: Run, x: tf.Tensor5D, sf: number): Promise<tf.Tensor5D> {
    const post = await this.encode(r, x);
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
