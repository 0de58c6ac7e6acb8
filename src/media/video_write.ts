// Writing RGB frames as MP4 (H.264), GIF, a single PNG or a folder of PNG frames, chosen by the path. Every write
// is atomic (temp name in the same directory, then rename): on an error or an abort nothing is left behind.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withAtomicOutput } from './atomic.js';
import { createH264Encoder } from './codecs.js';
import { MediaError } from './errors.js';
import { encodeGif } from './gif.js';
import { encodePng } from './image.js';
import { rgbToYuv420 } from './yuv.js';

export interface VideoToWrite {
  /** RGB HWC, width * height * 3 bytes each. */
  frames: readonly Uint8Array[];
  width: number;
  height: number;
}

export interface WriteVideoOptions {
  /** Frames per second (default 8, as the CogVideoX-Fun predict scripts save). */
  fps?: number;
  /**
   * MP4 quality 0..10, higher is better (default 8). The wasm encoder uses QP = round(40 - 2.5 * quality)
   * (8 -> QP 20), a system ffmpeg the same number as libx264 CRF.
   */
  quality?: number;
  /** Path of a system ffmpeg to encode MP4 with (libx264, yuv420p) instead of the bundled wasm encoder. Optional. */
  ffmpeg?: string;
  /** Stops the write between frames; the partial output is removed and the signal's reason thrown. */
  signal?: AbortSignal;
}

export type VideoFormat = 'mp4' | 'gif' | 'png' | 'dir';

/** Output kind from the path: .mp4, .gif, .png (one frame); no extension or an existing folder: PNG frames. */
export function videoFormatFor(target: string): VideoFormat {
  const ext = path.extname(target).toLowerCase();
  if (ext === '.mp4') return 'mp4';
  if (ext === '.gif') return 'gif';
  if (ext === '.png') return 'png';
  if (ext === '' || target.endsWith(path.sep) || (fs.existsSync(target) && fs.statSync(target).isDirectory())) return 'dir';
  throw new MediaError(target, `unsupported output extension '${ext}' (use .mp4, .gif, .png or a folder for PNG frames)`);
}

function checkVideo(video: VideoToWrite, target: string, fps: number, quality: number): void {
  const { frames, width, height } = video;
  if (frames.length === 0) throw new MediaError(target, 'no frames to write');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new MediaError(target, `frame size must be positive integers, got ${width}x${height}`);
  }
  frames.forEach((f, i) => {
    if (f.length !== width * height * 3) {
      throw new MediaError(target, `frame ${i} has ${f.length} bytes, expected ${width}x${height}x3 = ${width * height * 3}`);
    }
  });
  if (!(fps > 0) || !Number.isFinite(fps)) throw new MediaError(target, `fps must be a positive number, got ${fps}`);
  if (!(quality >= 0 && quality <= 10)) throw new MediaError(target, `quality must be in 0..10, got ${quality}`);
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function mp4Wasm(video: VideoToWrite, tmp: string, fps: number, quality: number, signal?: AbortSignal): Promise<void> {
  const enc = await createH264Encoder();
  const name = `out_${process.pid}_${Math.random().toString(36).slice(2)}.mp4`; // the encoders share one MEMFS
  let finalized = false;
  try {
    enc.width = video.width;
    enc.height = video.height;
    enc.frameRate = fps;
    enc.quantizationParameter = Math.round(40 - 2.5 * quality);
    enc.speed = 4;
    enc.groupOfPictures = 20;
    enc.outputFilename = name;
    enc.initialize();
    for (const f of video.frames) {
      signal?.throwIfAborted();
      // Our own BT.601 conversion: the package's RGBA path is off by 2-3 levels on saturated colours.
      enc.addFrameYuv(rgbToYuv420(f, video.width, video.height));
      await nextTick();
    }
    signal?.throwIfAborted();
    enc.finalize();
    finalized = true;
    fs.writeFileSync(tmp, enc.FS.readFile(name));
  } finally {
    // Always finalize before delete: deleting an unfinished encoder aborts the package's one wasm instance.
    try {
      if (!finalized) enc.finalize();
      enc.FS.unlink(name);
    } catch {
      // nothing was written
    }
    enc.delete();
  }
}

async function mp4System(video: VideoToWrite, tmp: string, ffmpeg: string, fps: number, quality: number, signal?: AbortSignal): Promise<void> {
  const args = [
    '-nostdin', '-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${video.width}x${video.height}`,
    '-r', String(fps), '-i', 'pipe:0', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', String(Math.round(40 - 2.5 * quality)),
    '-movflags', '+faststart', '-f', 'mp4', tmp,
  ];
  const child = spawn(ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (e) => reject(new MediaError(tmp, `cannot run ${ffmpeg}: ${e.message}`, { cause: e })));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new MediaError(tmp, `ffmpeg failed (exit ${code}): ${Buffer.concat(err).toString().trim()}`))));
  });
  done.catch(() => undefined); // observed below; avoids an unhandled rejection while frames are still being written
  try {
    for (const f of video.frames) {
      signal?.throwIfAborted();
      if (!child.stdin.write(f)) await new Promise((resolve) => child.stdin.once('drain', resolve));
    }
    child.stdin.end();
  } catch (e) {
    child.kill();
    await done.catch(() => undefined);
    throw e;
  }
  await done;
}

/**
 * Writes frames to `target`: .mp4 (H.264 via the bundled wasm encoder, or a system ffmpeg when given), .gif
 * (looping, 256-colour palette per frame), .png (exactly one frame) or a folder (frame_0000.png, ...). Atomic.
 * MP4 needs even width and height (4:2:0 chroma).
 */
export async function writeVideo(video: VideoToWrite, target: string, opts: WriteVideoOptions = {}): Promise<void> {
  const fps = opts.fps ?? 8;
  const quality = opts.quality ?? 8;
  const { signal } = opts;
  checkVideo(video, target, fps, quality);
  const format = videoFormatFor(target);
  signal?.throwIfAborted();
  const { frames, width, height } = video;
  switch (format) {
    case 'mp4':
      if (width % 2 || height % 2) {
        throw new MediaError(target, `MP4 (H.264 4:2:0) needs an even width and height, got ${width}x${height}; write .gif or PNG frames instead`);
      }
      return withAtomicOutput(target, (tmp) =>
        opts.ffmpeg ? mp4System(video, tmp, opts.ffmpeg, fps, quality, signal) : mp4Wasm(video, tmp, fps, quality, signal),
      );
    case 'gif':
      return withAtomicOutput(target, async (tmp) => {
        const bytes = await encodeGif(frames, width, height, fps, async () => {
          await nextTick();
          signal?.throwIfAborted();
        });
        fs.writeFileSync(tmp, bytes);
      });
    case 'png':
      if (frames.length !== 1) throw new MediaError(target, `a .png holds one frame, got ${frames.length}; give a folder path for PNG frames`);
      return withAtomicOutput(target, async (tmp) => fs.writeFileSync(tmp, encodePng({ width, height, channels: 3, data: frames[0]! })));
    case 'dir':
      return withAtomicOutput(
        target.replace(/[\\/]+$/, ''),
        async (tmp) => {
          fs.mkdirSync(tmp);
          const digits = Math.max(4, String(frames.length - 1).length);
          for (let i = 0; i < frames.length; i++) {
            signal?.throwIfAborted();
            const name = `frame_${String(i).padStart(digits, '0')}.png`;
            fs.writeFileSync(path.join(tmp, name), encodePng({ width, height, channels: 3, data: frames[i]! }));
            await nextTick();
          }
        },
        'dir',
      );
  }
}
