// diffusers v0.32.2 CogVideoXPipeline (THUDM CogVideoX-2b / 5b / 1.5 text-to-video,
// diffusers/pipelines/cogvideo/pipeline_cogvideox.py) and CogVideoXImageToVideoPipeline (5b-I2V / 1.5-I2V,
// pipeline_cogvideox_image2video.py): the shared loop without inpaint channels, diffusers' VAE decode chunking and
// PIL-style rounding of the output frames.
//
// A CogVideoX-Fun text-to-video checkpoint (in_channels = latent channels, config saved by Fun's transformer class)
// runs here too, as CogVideoX-Fun's CogVideoX_Fun_Pipeline (cogvideox/pipeline/pipeline_cogvideox.py) computes it.
// That pipeline is diffusers' loop with three differences, all taken when `flavor` is 'fun': its `decode_latents`
// uses Fun's VAE (Fun's decode chunking) and returns (x/2 + 0.5).clamp(0, 1) that the predict scripts save truncated
// to uint8; it pads a CogVideoX 1.5 latent count only when num_frames != 1 (:776) and decodes the padding frames
// too (:862, no `latents[:, additional_frames:]`). The transformer follows Fun's position tables (flavor 'fun').
import * as tf from '@tensorflow/tfjs-core';
import { framesToChannelsFirst } from '../media/raster.js';
import { resizeImage } from '../media/resize.js';
import type { Generator } from '../schedulers/generator.js';
import { PipelineBase, type PipelineComponents, type Run } from './base.js';
import { checkFrameCount, type CommonCallOptions, type PipelineOutput } from './common.js';
import { openModelFolder, type LoadOptions } from './components.js';
import type { RgbImage, RgbResizer } from './inpaint.js';
import { maxFramesFor } from './rules.js';

export type CogVideoXComponents = PipelineComponents;

export interface ImageToVideoCallOptions extends CommonCallOptions {
  /** The first frame. Any size: resized to (width, height) as diffusers' VideoProcessor (PIL LANCZOS). */
  image: RgbImage;
  resizeRgb?: RgbResizer;
}

// diffusers' VideoProcessor resizes PIL images with LANCZOS (bit-exact: src/media/resize.ts)
export const lanczosRgb: RgbResizer = (img, w, h) => {
  const r = resizeImage({ ...img, channels: 3 }, w, h, 'lanczos');
  return { width: r.width, height: r.height, data: r.data };
};

/** An RGB image → [1, 3, 1, H, W] in [−1, 1]: VideoProcessor.preprocess, f32(u8 / 255)·2 − 1. */
export function imageToTensor(img: RgbImage): tf.Tensor5D {
  return tf.tensor5d(framesToChannelsFirst([img.data], img.height, img.width, 'signed'), [1, 3, 1, img.height, img.width]);
}

abstract class CogVideoXBase extends PipelineBase {
  /** Shared body; `image` given → I2V. */
  protected async run(o: CommonCallOptions, image: RgbImage | null, resize: RgbResizer | undefined): Promise<PipelineOutput> {
    const tc = this.transformerConfig;
    const vae = this.vae;
    const spatial = vae.spatialCompression;
    const temporal = vae.temporalCompression;
    const fun = this.flavor === 'fun';
    // defaults: diffusers' sample size × 8 and sample_frames; CogVideoX-Fun's signature 480 × 720, 49 frames
    const r = this.begin(o, fun ? { height: 480, width: 720, numFrames: 49 } : { height: tc.sample_height * spatial, width: tc.sample_width * spatial, numFrames: tc.sample_frames });
    const { max, why } = maxFramesFor(tc, this.flavor);
    checkFrameCount(r.numFrames, max, why);
    if (image && (!(image.data instanceof Uint8Array) || image.data.length !== image.width * image.height * 3)) {
      throw new Error('image: expected an RGB image {width, height, data}');
    }
    this.checkMemory(r, { image: !!image });
    let pixels: RgbImage | null = null;
    if (image) pixels = image.width === r.width && image.height === r.height ? image : (resize ?? lanczosRgb)(image, r.width, r.height);

    try {
      const { promptEmbeds, B } = await this.textStage(r);
      const sched = this.scheduler;
      sched.setTimesteps(r.steps);
      const timesteps = sched.timesteps.slice();

      // 1.5: pad the latent count to a multiple of patch_size_t (diffusers drops the padding frames before decoding)
      let numFrames = r.numFrames;
      let latentFrames = Math.floor((numFrames - 1) / temporal) + 1;
      let additional = 0;
      if (tc.patch_size_t && latentFrames % tc.patch_size_t !== 0 && !(fun && numFrames === 1)) {
        additional = tc.patch_size_t - (latentFrames % tc.patch_size_t);
        numFrames += additional * temporal;
        latentFrames = Math.floor((numFrames - 1) / temporal) + 1;
      }
      const h = r.height / spatial;
      const w = r.width / spatial;
      const C = vae.config.latent_channels;

      // I2V: image latents (posterior sample with the generator) first, then the noise (the reference's draw order)
      let imageLatents: tf.Tensor5D | undefined;
      let T = latentFrames;
      if (pixels) {
        await this.enter(r, 'conditioning');
        if (tc.patch_size_t) T = T + (T % tc.patch_size_t);
        imageLatents = await this.imageLatents(r, pixels, B, latentFrames, C, h, w, r.generator);
        r.held.push(imageLatents);
        r.emit('image_latents', imageLatents);
        vae.release('encoder');
        this.leave(r, 'conditioning');
      }
      const latents = this.initialNoise(r, [B, T, C, h, w]);
      r.emit('init_latents', latents);

      let imageInput: tf.Tensor5D | undefined;
      if (imageLatents) {
        imageInput = r.doCfg ? (tf.concat([imageLatents, imageLatents], 0) as tf.Tensor5D) : imageLatents;
        if (imageInput !== imageLatents) r.held.push(imageInput);
      }
      const final = await this.denoiseStage(r, {
        latents,
        promptEmbeds,
        timesteps,
        numInferenceSteps: r.steps,
        latentFrames: T,
        imageLatents: imageInput,
        ofs: tc.ofs_embed_dim ? 2.0 : undefined,
      });
      if (r.outputType === 'latent') return { tensor: final };
      r.held.push(final);
      const drop = fun ? 0 : additional;
      const kept = drop ? tf.slice(final, [0, drop, 0, 0, 0], [B, T - drop, C, h, w]) : final;
      if (kept !== final) r.held.push(kept);
      return await this.decodeStage(r, kept, this.flavor);
    } catch (e) {
      this.abandon();
      throw e;
    } finally {
      tf.dispose(r.held);
    }
  }

  /**
   * diffusers I2V `prepare_latents`: VAE.encode(image).sample(generator) · scaling_factor (or ÷ with
   * invert_scale_latents) as latent frame 0, zeros after; 1.5 prepends the odd-count padding frames. One encode per
   * video, in batch order (diffusers with the image given once per prompt).
   */
  private async imageLatents(r: Run, img: RgbImage, B: number, n: number, C: number, h: number, w: number, generator: Generator): Promise<tf.Tensor5D> {
    const sf = this.vae.scalingFactor;
    const x = imageToTensor(img);
    const parts: tf.Tensor5D[] = [];
    try {
      for (let b = 0; b < B; b++) {
        const post = await this.encode(r, x);
        try {
          parts.push(post.sample({ randn: (s) => generator.randn(s) }));
        } finally {
          post.dispose();
        }
      }
    } catch (e) {
      tf.dispose(parts);
      throw e;
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
    super(c, ['t2v', 'fun-t2v'], 'CogVideoXPipeline', (kind, inC, C) =>
      `needs a transformer with ${C} input channels, this one has ${inC}` +
        (kind === 'fun-inp' ? ' (a CogVideoX-Fun InP model: use CogVideoXFunPipeline)' : ' (an image-to-video model: use CogVideoXImageToVideoPipeline)'),
    );
  }

  /** Opens a THUDM CogVideoX (or CogVideoX-Fun text-to-video) folder; the sampler defaults to the folder's scheduler class. */
  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<CogVideoXPipeline> {
    return new CogVideoXPipeline(await openModelFolder(dir, opts));
  }

  call(o: CommonCallOptions): Promise<PipelineOutput> {
    return this.run(o, null, undefined);
  }
}

export class CogVideoXImageToVideoPipeline extends CogVideoXBase {
  constructor(c: CogVideoXComponents) {
    super(c, ['i2v'], 'CogVideoXImageToVideoPipeline', (kind, inC, C) =>
      `needs a transformer with ${2 * C} input channels, this one has ${inC}` +
        (kind === 'fun-inp' ? ' (a CogVideoX-Fun InP model: use CogVideoXFunPipeline, it takes a start image)' : ' (a text-to-video model: use CogVideoXPipeline)'),
    );
  }

  /** Opens a THUDM CogVideoX image-to-video folder; the sampler defaults to the folder's scheduler class. */
  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<CogVideoXImageToVideoPipeline> {
    return new CogVideoXImageToVideoPipeline(await openModelFolder(dir, opts));
  }

  call(o: ImageToVideoCallOptions): Promise<PipelineOutput> {
    if (!o || !o.image) throw new Error('CogVideoXImageToVideoPipeline: image is required');
    return this.run(o, o.image, o.resizeRgb);
  }
}
