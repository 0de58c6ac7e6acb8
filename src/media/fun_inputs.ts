// Input loading exactly as CogVideoX-Fun's helpers do it (cogvideox/utils/utils.py at 6c39567), so the pipelines
// receive the same pixels as the reference:
//  - get_image_to_video_latent: `Image.open(p).convert("RGB").resize([W, H])` (Pillow's default BICUBIC);
//  - get_video_to_video_latent (mask): `Image.open(p).convert("L").resize((W, H))` (BICUBIC);
//  - get_video_to_video_latent (video path): cv2.VideoCapture, keep frame i when i % int(fps_src // fps) == 0,
//    `cv2.resize(frame, (W, H))` (INTER_LINEAR), BGR -> RGB, then the first `video_length` frames.
// Bit-exact with Pillow 12.3 and with opencv-python-headless 4.14 on x86-64 (test/media.test.ts).
import { readImage, readMask } from './image.js';
import type { RasterImage } from './raster.js';
import { resizeLinearCv2 } from './cv2_resize.js';
import { resizeImage } from './resize.js';
import { funFrameSkip, readVideo } from './video_read.js';

export interface FunSize {
  width: number;
  height: number;
}

/** A start/end image for image-to-video: RGB, resized with Pillow's bicubic. */
export async function readImageForFun(file: string, size: FunSize): Promise<RasterImage> {
  return resizeImage(await readImage(file), size.width, size.height, 'bicubic');
}

/** A V2V mask image: luminance, resized with Pillow's bicubic (the caller thresholds it: < 240 keeps the pixel). */
export async function readMaskForFun(file: string, size: FunSize): Promise<RasterImage> {
  return resizeImage(await readMask(file), size.width, size.height, 'bicubic');
}

export interface FunVideoOptions extends FunSize {
  /** Frames to keep after sampling (`video_length`). */
  videoLength: number;
  /** Sampling rate (`fps` argument; the predict scripts pass 8). null keeps every frame, as Fun's fps=None. */
  fps?: number | null;
  /** Optional system ffmpeg for decoding. */
  ffmpeg?: string;
}

export interface FunVideo {
  /** RGB HWC at width x height. */
  frames: Uint8Array[];
  width: number;
  height: number;
  sourceFps: number;
  /** `int(original_fps // fps)`; the reference raises ZeroDivisionError where this is 0 (source below `fps`), here it is 1. */
  frameSkip: number;
}

/** A V2V source video (file, GIF or folder of frames) read and resized as `get_video_to_video_latent` does. */
export async function readVideoForFun(file: string, opts: FunVideoOptions): Promise<FunVideo> {
  const fps = opts.fps === undefined ? 8 : opts.fps;
  const video = await readVideo(file, {
    ...(fps === null ? { step: 1 } : { sampleFps: fps }),
    maxFrames: opts.videoLength,
    ...(opts.ffmpeg ? { ffmpeg: opts.ffmpeg } : {}),
  });
  const frames = video.frames.map(
    (data) => resizeLinearCv2({ width: video.width, height: video.height, channels: 3, data }, opts.width, opts.height).data,
  );
  return { frames, width: opts.width, height: opts.height, sourceFps: video.fps, frameSkip: fps === null ? 1 : funFrameSkip(video.fps, fps) };
}
