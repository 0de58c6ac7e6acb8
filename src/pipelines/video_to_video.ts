// diffusers v0.32.2 CogVideoXVideoToVideoPipeline (diffusers/pipelines/cogvideo/pipeline_cogvideox_video2video.py),
// which THUDM's cli_demo runs for `--generate_type v2v` on its text-to-video checkpoints: the source video is
// VAE-encoded (a posterior sample with the generator), noised to the first timestep kept by `strength`, and denoised
// as text-to-video from there; diffusers' decode chunking and PIL rounding of the output frames.
import * as tf from '@tensorflow/tfjs-core';
import { framesToChannelsFirst } from '../media/raster.js';
import { PipelineBase, type PipelineComponents, type Run } from './base.js';
import { lanczosRgb } from './cogvideox.js';
import { checkFrameCount, type CommonCallOptions, type PipelineOutput } from './common.js';
import { openModelFolder, type LoadOptions } from './components.js';
import type { RgbImage, RgbResizer } from './inpaint.js';
import { maxFramesFor } from './rules.js';

export interface VideoToVideoCallOptions extends CommonCallOptions {
  /**
   * The source frames (RGB, any size: each is resized to (width, height) with PIL LANCZOS, as diffusers'
   * VideoProcessor). Every frame is used (numFrames is the frame count): 1 or 4k + 1 frames.
   */
  video: RgbImage[];
  /** Denoising strength in (0, 1] (diffusers' default 0.8): the share of the schedule that is run. */
  strength?: number;
  resizeRgb?: RgbResizer;
}

export class CogVideoXVideoToVideoPipeline extends PipelineBase {
  constructor(c: PipelineComponents) {
    super(c, ['t2v'], 'CogVideoXVideoToVideoPipeline', (kind, inC, C) =>
      `needs a THUDM text-to-video transformer with ${C} input channels, this one has ${inC}` +
        (kind === 'fun-inp' ? ' (a CogVideoX-Fun InP model: CogVideoXFunPipeline takes sourceVideo and strength)' : kind === 'fun-t2v' ? ' (a CogVideoX-Fun text-to-video model)' : ''),
    );
  }

  /** Opens a THUDM CogVideoX text-to-video folder; the sampler defaults to the folder's scheduler class. */
  static async fromPretrained(dir: string, opts: LoadOptions = {}): Promise<CogVideoXVideoToVideoPipeline> {
    return new CogVideoXVideoToVideoPipeline(await openModelFolder(dir, opts));
  }

  async call(o: VideoToVideoCallOptions): Promise<PipelineOutput> {
    if (!o || !Array.isArray(o.video) || o.video.length === 0) throw new Error('CogVideoXVideoToVideoPipeline: video (a non-empty array of RGB frames) is required');
    const tc = this.transformerConfig;
    const vae = this.vae;
    const spatial = vae.spatialCompression;
    const temporal = vae.temporalCompression;
    if (o.numFrames !== undefined && o.numFrames !== o.video.length) {
      throw new Error(`numFrames ${o.numFrames} differs from the ${o.video.length} source frames (the pipeline takes every frame)`);
    }
    const r = this.begin(o, { height: tc.sample_height * spatial, width: tc.sample_width * spatial, numFrames: o.video.length });
    const strength = o.strength ?? 0.8;
    if (!(strength > 0 && strength <= 1)) throw new RangeError(`strength must be in (0, 1], got ${strength}`);
    o.video.forEach((f, i) => {
      if (!f || !(f.data instanceof Uint8Array) || f.data.length !== f.width * f.height * 3) throw new Error(`video frame ${i}: expected an RGB image {width, height, data}`);
    });
    const { max, why } = maxFramesFor(tc, this.flavor);
    checkFrameCount(r.numFrames, max, why);
    const T = Math.floor((r.numFrames - 1) / temporal) + 1;
    // pipeline_cogvideox_video2video.py:727: the latent count must already be a multiple of patch_size_t
    if (tc.patch_size_t && T % tc.patch_size_t !== 0) {
      throw new Error(`${r.numFrames} frames give ${T} latent frames, not a multiple of patch_size_t ${tc.patch_size_t} (CogVideoX 1.5): use ${r.numFrames + temporal * (tc.patch_size_t - (T % tc.patch_size_t))} or ${r.numFrames - temporal * (T % tc.patch_size_t)} frames`);
    }
    this.checkMemory(r, { sourceVideo: true });
    const resize = o.resizeRgb ?? lanczosRgb;
    const frames = o.video.map((f) => (f.width === r.width && f.height === r.height ? f : resize(f, r.width, r.height)));

    // the strength slice (get_timesteps) is known before any model runs: an empty one is refused now
    const sched = this.scheduler;
    sched.setTimesteps(r.steps);
    const { timesteps, numInferenceSteps } = sched.getTimestepsForStrength(r.steps, strength);
    if (timesteps.length === 0) throw new Error(`strength ${strength} × ${r.steps} steps leaves no denoising step`);

    try {
      const { promptEmbeds, B } = await this.textStage(r);
      const h = r.height / spatial;
      const w = r.width / spatial;
      const shape = [B, T, vae.config.latent_channels, h, w];

      let latents: tf.Tensor5D;
      if (r.o.latents) {
        latents = this.initialNoise(r, shape);
      } else {
        // prepare_latents: scaling_factor · VAE.encode(video).sample(generator), then the noise draw, add_noise at
        // the first kept timestep (broadcast over the prompt batch), times init_noise_sigma
        await this.enter(r, 'conditioning');
        const videoLatents = await this.videoLatents(r, frames);
        r.held.push(videoLatents);
        r.emit('video_latents', videoLatents);
        vae.release('encoder');
        this.leave(r, 'conditioning');
        const noise = r.generator.randn(shape);
        const noised = tf.tidy(() => sched.addNoise(tf.broadcastTo(videoLatents, shape), noise, timesteps[0]!));
        noise.dispose();
        latents = tf.tidy(() => tf.mul(noised, tf.scalar(sched.initNoiseSigma)) as tf.Tensor5D);
        noised.dispose();
      }
      r.emit('init_latents', latents);
      const final = await this.denoiseStage(r, { latents, promptEmbeds, timesteps, numInferenceSteps, latentFrames: T });
      if (r.outputType === 'latent') return { tensor: final };
      r.held.push(final);
      return await this.decodeStage(r, final, 'diffusers');
    } catch (e) {
      this.abandon();
      throw e;
    } finally {
      tf.dispose(r.held);
    }
  }

  /** The source video's latents [1, T, C, h, w]: VideoProcessor.preprocess_video (f32(u8/255)·2 − 1), encode, sample. */
  private async videoLatents(r: Run, frames: RgbImage[]): Promise<tf.Tensor5D> {
    const F = frames.length;
    const H = r.height;
    const W = r.width;
    const x = tf.tensor5d(framesToChannelsFirst(frames.map((f) => f.data), H, W, 'signed'), [1, 3, F, H, W]);
    let post;
    try {
      post = await this.encode(r, x);
    } finally {
      x.dispose();
    }
    try {
      const z = post.sample({ randn: (s) => r.generator.randn(s) });
      return tf.tidy(() => {
        const v = tf.mul(tf.scalar(this.vae.scalingFactor), tf.transpose(z, [0, 2, 1, 3, 4])) as tf.Tensor5D;
        z.dispose();
        return v;
      });
    } finally {
      post.dispose();
    }
  }
}
