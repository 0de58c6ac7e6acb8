// GIF decoding (omggif) and encoding (gifenc), both pure JS.
import { createRequire } from 'node:module';
import omggif from 'omggif';
import type GifencModule from 'gifenc';
import type { Decoded } from './decoded.js';

export interface GifVideo {
  width: number;
  height: number;
  /** 100 / the most common frame delay in centiseconds, delays under 2 cs read as 10 cs (ffmpeg's GIF rule). */
  fps: number;
  frameCount: number;
  /**
   * RGB HWC frames, composited as a viewer shows them: a frame draws its rectangle over the canvas, skipping its
   * transparent index; disposal 2 clears that rectangle to transparent black afterwards, 3 restores what was under
   * it. The canvas starts transparent black (black in RGB). Frames with `keep(i)` are returned, at most `limit`.
   */
  decode(keep?: (i: number) => boolean, limit?: number): Uint8Array[];
}

export function openGif(bytes: Uint8Array): GifVideo {
  const reader = new omggif.GifReader(bytes);
  const { width, height } = reader;
  const frameCount = reader.numFrames();
  if (frameCount === 0) throw new Error('GIF has no frames');
  const delays = new Map<number, number>();
  for (let i = 0; i < frameCount; i++) {
    const d = reader.frameInfo(i).delay;
    const delay = d < 2 ? 10 : d;
    delays.set(delay, (delays.get(delay) ?? 0) + 1);
  }
  let best = 10;
  let count = 0;
  for (const [d, c] of delays) if (c > count || (c === count && d < best)) [best, count] = [d, c];
  const decode = (keep: (i: number) => boolean = () => true, limit = Infinity): Uint8Array[] => {
    const canvas = new Uint8Array(width * height * 4);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < frameCount && frames.length < limit; i++) {
      const info = reader.frameInfo(i);
      const under = info.disposal === 3 ? canvas.slice() : null;
      reader.decodeAndBlitFrameRGBA(i, canvas);
      if (keep(i)) frames.push(rgbaToRgb(canvas));
      if (info.disposal === 2) {
        for (let y = info.y; y < Math.min(info.y + info.height, height); y++) {
          canvas.fill(0, (y * width + info.x) * 4, (y * width + Math.min(info.x + info.width, width)) * 4);
        }
      } else if (under) {
        canvas.set(under);
      }
    }
    return frames;
  };
  return { width, height, fps: 100 / best, frameCount, decode };
}

/** First frame as Pillow opens a GIF: palette indices ("P"), transparency ignored by the RGB/L conversions. */
export function decodeGifFirstFrame(bytes: Uint8Array): Decoded {
  const reader = new omggif.GifReader(bytes);
  const info = reader.frameInfo(0);
  info.transparent_index = null; // frameInfo returns the reader's own record: draw every index
  const canvas = new Uint8Array(reader.width * reader.height * 4);
  reader.decodeAndBlitFrameRGBA(0, canvas);
  return { width: reader.width, height: reader.height, mode: 'RGB', data: rgbaToRgb(canvas) };
}

function rgbaToRgb(rgba: Uint8Array): Uint8Array {
  const n = rgba.length / 4;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[3 * i] = rgba[4 * i]!;
    out[3 * i + 1] = rgba[4 * i + 1]!;
    out[3 * i + 2] = rgba[4 * i + 2]!;
  }
  return out;
}

/**
 * Encodes RGB frames as a looping GIF with one 256-colour palette for the whole clip (gifenc's quantizer at rgb565
 * precision over up to ~1M pixels sampled from all frames; no flicker between frames), nearest-colour mapping
 * without dithering. The delay is floor(100 / fps) centiseconds (as Pillow writes `duration=1000/fps`), at least 2:
 * GIF cannot store exactly 8 fps, so 8 fps plays at 100/12 = 8.33.
 */
export async function encodeGif(
  frames: readonly Uint8Array[],
  width: number,
  height: number,
  fps: number,
  /** Awaited before each frame (lets a caller yield and check for an abort). */
  beforeFrame: () => Promise<void> = async () => undefined,
): Promise<Uint8Array> {
  // required, not imported: bundlers' ESM interop turns this CommonJS package's default export into GIFEncoder alone
  const { GIFEncoder, applyPalette, quantize } = createRequire(import.meta.url)('gifenc') as typeof GifencModule;
  const n = width * height;
  const stride = Math.max(1, Math.ceil((frames.length * n) / 1_000_000)) | 1; // odd: no aliasing with even widths
  const sample = new Uint8Array(Math.ceil((frames.length * n) / stride) * 4);
  let k = 0;
  for (let i = 0; i < frames.length * n; i += stride, k++) {
    const f = frames[Math.floor(i / n)]!;
    const p = (i % n) * 3;
    sample.set([f[p]!, f[p + 1]!, f[p + 2]!, 255], 4 * k);
  }
  const palette = quantize(sample.subarray(0, 4 * k), 256);
  const gif = GIFEncoder();
  const delayMs = Math.max(2, Math.floor(100 / fps)) * 10;
  const rgba = new Uint8Array(n * 4).fill(255);
  for (let fi = 0; fi < frames.length; fi++) {
    await beforeFrame();
    const frame = frames[fi]!;
    for (let i = 0; i < n; i++) {
      rgba[4 * i] = frame[3 * i]!;
      rgba[4 * i + 1] = frame[3 * i + 1]!;
      rgba[4 * i + 2] = frame[3 * i + 2]!;
    }
    gif.writeFrame(applyPalette(rgba, palette), width, height, fi === 0 ? { palette, delay: delayMs, repeat: 0 } : { delay: delayMs });
  }
  gif.finish();
  return gif.bytes();
}
