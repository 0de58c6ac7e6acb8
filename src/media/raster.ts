// The in-memory image type of src/media and its small helpers.
import { MediaError } from './errors.js';

/** 8-bit image, rows top to bottom, channels interleaved (HWC): RGB when `channels` is 3, luminance (PIL "L") when 1. */
export interface RasterImage {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

/** Checks sizes and buffer length; `what` names the image in the error. */
export function checkRaster(img: RasterImage, what = 'image'): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new MediaError(what, `width and height must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3) throw new MediaError(what, `channels must be 1 or 3, got ${String(channels)}`);
  if (data.length !== width * height * channels) {
    throw new MediaError(what, `data has ${data.length} bytes, expected ${width}x${height}x${channels} = ${width * height * channels}`);
  }
}

/** PIL's `convert("L")` from RGB: ITU-R 601-2 luma in 16-bit fixed point, rounded (libImaging/Convert.c `L24`). */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** RGB → L as PIL `convert("L")`; L images are returned as they are. */
export function toGray(img: RasterImage): RasterImage {
  if (img.channels === 1) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  const d = img.data;
  for (let i = 0, j = 0; i < n; i++, j += 3) out[i] = luma(d[j]!, d[j + 1]!, d[j + 2]!);
  return { width: img.width, height: img.height, channels: 1, data: out };
}

/** L → RGB (grey replicated, as PIL `convert("RGB")`); RGB images are returned as they are. */
export function toRgb(img: RasterImage): RasterImage {
  if (img.channels === 3) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = img.data[i]!;
  return { width: img.width, height: img.height, channels: 3, data: out };
}

const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255); // f32(u8 / 255): torch's uint8 tensor / 255
const SIGNED = UNIT.map((u) => u * 2 - 1); // f32(f32(u8 / 255)·2 − 1): VideoProcessor.preprocess's [−1, 1]

/**
 * RGB frames (HWC u8, H·W·3 bytes each) → channels first [3, F, H, W] float32, 'unit' [0, 1] or 'signed' [−1, 1]
 * (the same f32 values torch's ops give), written into `out` at `offset` (one clip of a batch; a new array by default).
 */
export function framesToChannelsFirst(frames: readonly Uint8Array[], height: number, width: number, range: 'unit' | 'signed', out?: Float32Array, offset = 0): Float32Array {
  const plane = height * width;
  const F = frames.length;
  const lut = range === 'unit' ? UNIT : SIGNED;
  const dst = out ?? new Float32Array(3 * F * plane);
  frames.forEach((px, t) => {
    if (px.length !== plane * 3) throw new Error(`frame ${t}: expected ${width}x${height}x3 = ${plane * 3} bytes, got ${px.length}`);
    for (let c = 0; c < 3; c++) {
      const base = offset + (c * F + t) * plane;
      for (let i = 0; i < plane; i++) dst[base + i] = lut[px[i * 3 + c]!]!;
    }
  });
  return dst;
}
