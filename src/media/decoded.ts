// Pixels as a decoder hands them over, in Pillow's mode names, and Pillow's conversions of them to RGB and L
// (libImaging/Convert.c: alpha is dropped without compositing, palettes are looked up, "I;16" is clipped at 255).
import { luma, type RasterImage } from './raster.js';

export interface Decoded {
  width: number;
  height: number;
  mode: 'L' | 'LA' | 'RGB' | 'RGBA' | 'I;16' | 'P';
  data: Uint8Array | Uint16Array;
  /** RGB triplets for mode P. */
  palette?: Uint8Array;
}

const BANDS = { L: 1, LA: 2, RGB: 3, RGBA: 4, 'I;16': 1, P: 1 } as const;

/** `Image.convert("RGB")`. */
export function decodedToRgb(img: Decoded): RasterImage {
  const { width, height, mode, data } = img;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const bands = BANDS[mode];
  for (let i = 0; i < n; i++) {
    let r: number, g: number, b: number;
    if (mode === 'P') {
      const k = 3 * data[i]!;
      r = img.palette![k]!;
      g = img.palette![k + 1]!;
      b = img.palette![k + 2]!;
    } else if (mode === 'RGB' || mode === 'RGBA') {
      r = data[i * bands]!;
      g = data[i * bands + 1]!;
      b = data[i * bands + 2]!;
    } else {
      const v = data[i * bands]!;
      r = g = b = mode === 'I;16' && v > 255 ? 255 : v;
    }
    out[3 * i] = r;
    out[3 * i + 1] = g;
    out[3 * i + 2] = b;
  }
  return { width, height, channels: 3, data: out };
}

/** `Image.convert("L")`. */
export function decodedToGray(img: Decoded): RasterImage {
  const { width, height, mode, data } = img;
  const n = width * height;
  const out = new Uint8Array(n);
  const bands = BANDS[mode];
  for (let i = 0; i < n; i++) {
    if (mode === 'P') {
      const k = 3 * data[i]!;
      out[i] = luma(img.palette![k]!, img.palette![k + 1]!, img.palette![k + 2]!);
    } else if (mode === 'RGB' || mode === 'RGBA') {
      out[i] = luma(data[i * bands]!, data[i * bands + 1]!, data[i * bands + 2]!);
    } else {
      const v = data[i * bands]!;
      out[i] = v > 255 ? 255 : v;
    }
  }
  return { width, height, channels: 1, data: out };
}
