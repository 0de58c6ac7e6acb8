// Reading videos as RGB frames: container files (MP4/H.264 and whatever else ffmpeg decodes), GIFs, folders of
// image frames (sorted naturally: frame_2 before frame_10) and single still images (one frame).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MediaError } from './errors.js';
import { decodeContainer, type FrameSelection } from './ffmpeg.js';
import { openGif } from './gif.js';
import { readFileOrThrow, readImage, sniffImageFormat } from './image.js';

export interface VideoFrames {
  /** RGB HWC, one per kept frame. */
  frames: Uint8Array[];
  width: number;
  height: number;
  /** The source's frame rate (cv2's CAP_PROP_FPS for containers; `folderFps` for folders and still images). */
  fps: number;
}

export interface ReadVideoOptions {
  /** Keep frame i when i % step === 0 (default 1: all). */
  step?: number;
  /** Derive the step from the source fps as CogVideoX-Fun does: floor(sourceFps / sampleFps), at least 1. Overrides `step`. */
  sampleFps?: number;
  /** Keep at most this many frames (decoding stops there). */
  maxFrames?: number;
  /** fps reported for a folder of frames or a still image, which have none (default 8). */
  folderFps?: number;
  /** Path of a system ffmpeg to decode containers with instead of the bundled wasm build (optional). */
  ffmpeg?: string;
}

const FRAME_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp']);
const naturalOrder = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' }).compare;

/** CogVideoX-Fun's `int(original_fps // fps)` (a floor for positive fps), kept at 1 where that is 0. */
export function funFrameSkip(sourceFps: number, sampleFps: number): number {
  return Math.max(1, Math.floor(sourceFps / sampleFps));
}

function selection(fps: number, opts: ReadVideoOptions): FrameSelection {
  const step = opts.sampleFps !== undefined ? funFrameSkip(fps, opts.sampleFps) : (opts.step ?? 1);
  const limit = opts.maxFrames ?? Infinity;
  if (!Number.isInteger(step) || step < 1) throw new MediaError('readVideo', `step must be a positive integer, got ${step}`);
  if (!(limit >= 1)) throw new MediaError('readVideo', `maxFrames must be at least 1, got ${limit}`);
  return { step, limit };
}

function readHead(file: string): Uint8Array {
  const fd = fs.openSync(file, 'r');
  try {
    const head = new Uint8Array(16);
    const n = fs.readSync(fd, head, 0, 16, 0);
    return head.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

async function readFolder(dir: string, opts: ReadVideoOptions): Promise<VideoFrames> {
  const names = fs
    .readdirSync(dir)
    .filter((n) => FRAME_EXT.has(path.extname(n).toLowerCase()) && !n.startsWith('.'))
    .sort(naturalOrder);
  if (names.length === 0) throw new MediaError(dir, `folder has no frame images (${[...FRAME_EXT].join(', ')})`);
  const fps = opts.folderFps ?? 8;
  const { step, limit } = selection(fps, opts);
  const frames: Uint8Array[] = [];
  let size: [number, number] | null = null;
  for (let i = 0; i < names.length && frames.length < limit; i += step) {
    const file = path.join(dir, names[i]!);
    const img = await readImage(file);
    if (size && (img.width !== size[0] || img.height !== size[1])) {
      throw new MediaError(file, `frame is ${img.width}x${img.height}, the first frame is ${size[0]}x${size[1]}`);
    }
    size ??= [img.width, img.height];
    frames.push(img.data);
  }
  return { frames, width: size![0], height: size![1], fps };
}

/**
 * Reads a video as RGB frames: a container file (decoded by the bundled wasm ffmpeg, or `opts.ffmpeg`), a GIF, a
 * folder of PNG/JPEG/WebP frames, or a still image (one frame). Frame selection (`step` / `sampleFps`, `maxFrames`)
 * is applied while decoding.
 */
export async function readVideo(source: string, opts: ReadVideoOptions = {}): Promise<VideoFrames> {
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (e) {
    throw new MediaError(source, 'video file or frame folder does not exist', { cause: e });
  }
  if (st.isDirectory()) return readFolder(source, opts);
  const format = sniffImageFormat(readHead(source));
  if (format === 'gif') {
    let gif;
    try {
      gif = openGif(readFileOrThrow(source, 'video file'));
    } catch (e) {
      throw new MediaError(source, `cannot decode GIF data: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    const { step, limit } = selection(gif.fps, opts);
    const frames = gif.decode((i) => i % step === 0, limit);
    return { frames, width: gif.width, height: gif.height, fps: gif.fps };
  }
  if (format) {
    const img = await readImage(source);
    return { frames: [img.data], width: img.width, height: img.height, fps: opts.folderFps ?? 8 };
  }
  const { info, frames } = await decodeContainer(source, (info) => selection(info.fps, opts), opts.ffmpeg);
  if (frames.length === 0) throw new MediaError(source, 'video has no decodable frames');
  return { frames, width: info.width, height: info.height, fps: info.fps };
}
