// OpenCV's `cv2.resize(src, (w, h))` (INTER_LINEAR, the default) on 8-bit images, as CogVideoX-Fun's V2V reader
// applies it to every kept frame. Follows modules/imgproc/src/resize.cpp of OpenCV 4.x; bit-exact with
// opencv-python-headless 4.14 on x86-64 (test/fixtures/media, and 400 random sizes of 1 and 3 channels checked once):
//  - same size: a copy;
//  - exact 2x shrink on both axes: INTER_AREA's fast path, (a + b + c + d + 2) >> 2;
//  - otherwise: source coordinate fx = float((dx + 0.5) * scale - 0.5), weights round(w * 2048) (11 bits), x taps
//    clamped to the border, a horizontal pass into int32, then a vertical pass rounded the way OpenCV's SIMD kernel
//    (VResizeLinearVec_32s8u) does: ((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16), then (v + 2) >> 2. That wheel
//    applies it to every byte of a row. OpenCV's plain-C path rounds as (S0 * b0 + S1 * b1 + 2^21) >> 22 instead, so
//    a build without SIMD (or one that leaves row tails to C) can differ from this by 1 on some pixels.
import { MediaError } from './errors.js';
import { checkRaster, type RasterImage } from './raster.js';

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;
/** cvRound on a float: round half to even. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const f32 = Math.fround;

function areaFast2x(img: RasterImage, outW: number, outH: number): Uint8Array {
  const { width, channels: cn, data } = img;
  const rowLen = outW * cn;
  const out = new Uint8Array(outH * rowLen);
  for (let dy = 0; dy < outH; dy++) {
    const r0 = 2 * dy * width * cn;
    const r1 = r0 + width * cn;
    for (let i = 0; i < rowLen; i++) {
      const c = i % cn;
      const s = 2 * (i - c) + c;
      out[dy * rowLen + i] = (data[r0 + s]! + data[r0 + s + cn]! + data[r1 + s]! + data[r1 + s + cn]! + 2) >> 2;
    }
  }
  return out;
}

/**
 * `cv2.resize(img, (width, height))` with INTER_LINEAR on an 8-bit image with 1 or 3 channels (channel order does
 * not matter: every channel is filtered the same way).
 */
export function resizeLinearCv2(img: RasterImage, width: number, height: number): RasterImage {
  checkRaster(img);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new MediaError('resizeLinearCv2', `target size must be positive integers, got ${width}x${height}`);
  }
  const { width: sw, height: sh, channels: cn, data } = img;
  if (sw === width && sh === height) return { width, height, channels: cn, data: data.slice() };
  const scaleX = 1 / (width / sw);
  const scaleY = 1 / (height / sh);
  const isAreaFast = Math.abs(scaleX - Math.round(scaleX)) < Number.EPSILON && Math.abs(scaleY - Math.round(scaleY)) < Number.EPSILON;
  if (isAreaFast && Math.round(scaleX) === 2 && Math.round(scaleY) === 2) {
    return { width, height, channels: cn, data: areaFast2x(img, width, height) };
  }

  // Horizontal taps (per output pixel): source x, weights; xmax = first dx whose right tap leaves the image.
  const xofs = new Int32Array(width);
  const alpha = new Int32Array(width * 2);
  let xmax = width;
  for (let dx = 0; dx < width; dx++) {
    let fx = f32((dx + 0.5) * scaleX - 0.5);
    let sx = Math.floor(fx);
    fx = f32(fx - sx);
    if (sx < 0) {
      fx = 0;
      sx = 0;
    }
    if (sx + 1 >= sw) {
      xmax = Math.min(xmax, dx);
      if (sx >= sw - 1) {
        fx = 0;
        sx = sw - 1;
      }
    }
    xofs[dx] = sx;
    alpha[2 * dx] = roundHalfEven(f32(f32(1 - fx) * COEF_SCALE));
    alpha[2 * dx + 1] = roundHalfEven(f32(fx * COEF_SCALE));
  }
  const rowLen = width * cn;
  // Horizontal pass over every source row into int32.
  const hrows = new Int32Array(sh * rowLen);
  for (let y = 0; y < sh; y++) {
    const src = y * sw * cn;
    const dst = y * rowLen;
    for (let dx = 0; dx < width; dx++) {
      const s = src + xofs[dx]! * cn;
      for (let c = 0; c < cn; c++) {
        hrows[dst + dx * cn + c] =
          dx < xmax ? data[s + c]! * alpha[2 * dx]! + data[s + c + cn]! * alpha[2 * dx + 1]! : data[s + c]! * COEF_SCALE;
      }
    }
  }
  // Vertical pass with the SIMD kernel's rounding.
  const out = new Uint8Array(height * rowLen);
  for (let dy = 0; dy < height; dy++) {
    let fy = f32((dy + 0.5) * scaleY - 0.5);
    const sy = Math.floor(fy);
    fy = f32(fy - sy);
    const b0 = roundHalfEven(f32(f32(1 - fy) * COEF_SCALE));
    const b1 = roundHalfEven(f32(fy * COEF_SCALE));
    const r0 = Math.min(Math.max(sy, 0), sh - 1) * rowLen;
    const r1 = Math.min(Math.max(sy + 1, 0), sh - 1) * rowLen;
    for (let i = 0; i < rowLen; i++) {
      const v = (((((hrows[r0 + i]! >> 4) * b0) >> 16) + (((hrows[r1 + i]! >> 4) * b1) >> 16) + 2) >> 2);
      out[dy * rowLen + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width, height, channels: cn, data: out };
}
