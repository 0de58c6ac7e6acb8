// CogVideoX-Fun's inpaint conditioning (cogvideox/pipeline/pipeline_cogvideox_inpaint.py, cogvideox/utils/utils.py).
// 1. Inputs as the predict scripts build them (cogvideox/utils/utils.py): `video` [1, 3, F, H, W] in [0, 1] and
//    `mask_video` [1, 1, F, H, W] with 0 = keep, 255 = generate — from start / end images (I2V), source frames (V2V)
//    or nothing (T2V: zero video, all-255 mask).
// 2. The pipeline's own steps: normalise, binarise, masked video (−1 where generated), optional noise augmentation,
//    VAE mode() latents, the first-frame/rest trilinear mask resize, channel order [mask | masked latents].
import * as tf from '@tensorflow/tfjs-core';
import { framesToChannelsFirst } from '../media/raster.js';
import { resizeLinear, resizeNearest } from '../nn/resize.js';

/** An 8-bit RGB image, [H, W, 3] row-major. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** An 8-bit single-channel image, [H, W] row-major. */
export interface GrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Resizes an RGB image as PIL `Image.resize((w, h))` (BICUBIC) does; supplied by the media module. */
export type RgbResizer = (img: RgbImage, width: number, height: number) => RgbImage;
export type GrayResizer = (img: GrayImage, width: number, height: number) => GrayImage;

export interface ConditioningVideo {
  /** [1, 3, F, H, W], u8 / 255 in float32 */
  video: tf.Tensor5D;
  /** [1, 1, F, H, W], 0 (keep) or 255 (generate) */
  maskVideo: tf.Tensor5D;
}

function checkImage(img: RgbImage, what: string, channels = 3): void {
  if (!img || !Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1) {
    throw new Error(`${what}: not an image (width/height missing)`);
  }
  if (!(img.data instanceof Uint8Array) || img.data.length !== img.width * img.height * channels) {
    throw new Error(`${what}: expected ${img.width}×${img.height}×${channels} uint8 values, got ${img.data?.length}`);
  }
}

/** u8 frames [F][H·W·3] → [1, 3, F, H, W] float32 in [0, 1] (torch: uint8 tensor / 255). */
function framesToVideo(frames: Uint8Array[], height: number, width: number): tf.Tensor5D {
  return tf.tensor5d(framesToChannelsFirst(frames, height, width, 'unit'), [1, 3, frames.length, height, width]);
}

function maskTensor(mask: Uint8Array, F: number, height: number, width: number): tf.Tensor5D {
  return tf.tensor5d(Float32Array.from(mask), [1, 1, F, height, width]);
}

/**
 * `get_image_to_video_latent(start, end, video_length, sample_size)`: start image(s) resized to (width, height) and
 * tiled over the frames (a list of k images fills frames 0…k−1, the rest repeat image 0), end image(s) in the last
 * frame(s); mask 0 on the given frames, 255 elsewhere. No images: T2V (zero video, all 255).
 */
export function imageToVideoInputs(
  start: RgbImage | RgbImage[] | null | undefined,
  end: RgbImage | RgbImage[] | null | undefined,
  numFrames: number,
  height: number,
  width: number,
  resize: RgbResizer,
): ConditioningVideo {
  const plane = height * width;
  if (!start) {
    if (end) throw new Error('an end image needs a start image (image); for T2V pass neither');
    return { video: tf.zeros([1, 3, numFrames, height, width]) as tf.Tensor5D, maskVideo: tf.fill([1, 1, numFrames, height, width], 255) as tf.Tensor5D };
  }
  const starts = (Array.isArray(start) ? start : [start]).map((img, i) => {
    checkImage(img, `start image ${i}`);
    return resize(img, width, height).data;
  });
  if (starts.length === 0) throw new Error('image: empty list of start images');
  if (starts.length > numFrames) throw new Error(`${starts.length} start images do not fit in ${numFrames} frames`);
  const frames = Array.from({ length: numFrames }, (_, f) => (f < starts.length ? starts[f]! : starts[0]!));
  const mask = new Uint8Array(numFrames * plane).fill(255, starts.length * plane);
  if (end) {
    const ends = (Array.isArray(end) ? end : [end]).map((img, i) => {
      checkImage(img, `end image ${i}`);
      return resize(img, width, height).data; // the reference resizes to the start image's (already target) size
    });
    if (ends.length > numFrames) throw new Error(`${ends.length} end images do not fit in ${numFrames} frames`);
    ends.forEach((px, i) => {
      const f = numFrames - ends.length + i;
      frames[f] = px;
      mask.fill(0, f * plane, (f + 1) * plane);
    });
  }
  return { video: framesToVideo(frames, height, width), maskVideo: maskTensor(mask, numFrames, height, width) };
}

/**
 * `get_video_to_video_latent(frames, video_length, sample_size, validation_video_mask)` for frames already decoded
 * and sampled: the first `numFrames` frames (no resize on this path in the reference: frames must be at the target
 * size); mask from a grayscale image resized to the target (PIL BICUBIC), < 240 → 0 (keep) else 255, on every frame;
 * no mask → 255 everywhere.
 */
export function videoToVideoInputs(
  frames: RgbImage[],
  numFrames: number,
  height: number,
  width: number,
  mask: GrayImage | null | undefined,
  resizeGray: GrayResizer,
): ConditioningVideo {
  if (!Array.isArray(frames) || frames.length === 0) throw new Error('sourceVideo: no frames');
  const used = frames.slice(0, numFrames);
  used.forEach((fr, i) => {
    checkImage(fr, `sourceVideo frame ${i}`);
    if (fr.width !== width || fr.height !== height) {
      throw new Error(`sourceVideo frame ${i} is ${fr.width}×${fr.height}, expected ${width}×${height} (resize frames when reading the video)`);
    }
  });
  const F = used.length;
  const plane = height * width;
  let maskData: Uint8Array;
  if (mask) {
    checkImage(mask as RgbImage, 'mask', 1);
    const m = resizeGray(mask, width, height).data;
    maskData = new Uint8Array(F * plane);
    for (let f = 0; f < F; f++) for (let i = 0; i < plane; i++) maskData[f * plane + i] = m[i]! < 240 ? 0 : 255;
  } else {
    maskData = new Uint8Array(F * plane).fill(255);
  }
  return { video: framesToVideo(used.map((fr) => fr.data), height, width), maskVideo: maskTensor(maskData, F, height, width) };
}

/** VaeImageProcessor.preprocess on [N, C, H, W]: nearest resize (torch default), then 2x − 1 unless min < 0. */
export function preprocessVideo(video: tf.Tensor5D, height: number, width: number): tf.Tensor5D {
  return tf.tidy(() => {
    const resized = resizeFrames(video, height, width);
    const normalize = (tf.min(resized).dataSync()[0] ?? 0) >= 0;
    return (normalize ? tf.sub(tf.mul(resized, 2), 1) : resized) as tf.Tensor5D;
  });
}

/** The mask processor: nearest resize, binarise (< 0.5 → 0, else 1). */
export function preprocessMask(maskVideo: tf.Tensor5D, height: number, width: number): tf.Tensor5D {
  return tf.tidy(() => tf.cast(tf.greaterEqual(resizeFrames(maskVideo, height, width), 0.5), 'float32') as tf.Tensor5D);
}

/** [B, C, F, H, W] → nearest-resized to (height, width) per frame (identity when already that size). */
function resizeFrames(x: tf.Tensor5D, height: number, width: number): tf.Tensor5D {
  const [B, C, F, H, W] = x.shape;
  if (H === height && W === width) return tf.clone(x);
  return tf.tidy(() => {
    const cl = tf.reshape(tf.transpose(x, [0, 2, 3, 4, 1]), [B * F, H, W, C]); // channels last
    const r = resizeNearest(cl, [height, width]);
    return tf.transpose(tf.reshape(r, [B, F, height, width, C]), [0, 4, 1, 2, 3]) as tf.Tensor5D;
  });
}

/** masked_video = init·(m < 0.5) + 1·(m > 0.5)·(−1), m broadcast over the 3 channels. */
export function maskedVideo(initVideo: tf.Tensor5D, mask: tf.Tensor5D): tf.Tensor5D {
  return tf.tidy(() => tf.where(tf.less(tf.broadcastTo(mask, initVideo.shape), 0.5), initVideo, tf.fill(initVideo.shape, -1)) as tf.Tensor5D);
}

/** `add_noise_to_reference_video(x, ratio)`: x + ε·f32(ratio), except where x is exactly −1. ε is [B, 3, F, H, W]. */
export function addNoiseToReferenceVideo(x: tf.Tensor5D, noise: tf.Tensor, ratio: number): tf.Tensor5D {
  return tf.tidy(() => tf.add(x, tf.where(tf.equal(x, -1), tf.zerosLike(x), tf.mul(noise, tf.scalar(ratio)))) as tf.Tensor5D);
}

/**
 * `resize_mask(mask, latent)`: frame 0 → trilinear (align_corners=False) to (1, h, w), frames 1… → (T − 1, h, w).
 * mask [B, 1, F, H, W] → [B, 1, T, h, w].
 */
export function resizeMask(mask: tf.Tensor5D, T: number, h: number, w: number): tf.Tensor5D {
  return tf.tidy(() => {
    const [B, C, F, H, W] = mask.shape;
    const cl = tf.transpose(mask, [0, 2, 3, 4, 1]); // [B, F, H, W, C]
    const first = resizeLinear(tf.slice(cl, [0, 0, 0, 0, 0], [B, 1, H, W, C]), [1, h, w]);
    const parts = [first];
    if (T - 1 > 0) parts.push(resizeLinear(tf.slice(cl, [0, 1, 0, 0, 0], [B, F - 1, H, W, C]), [T - 1, h, w]));
    return tf.transpose(tf.concat(parts, 1), [0, 4, 1, 2, 3]) as tf.Tensor5D;
  });
}
