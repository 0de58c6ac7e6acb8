// Pillow's `Image.resize((w, h), filter)` for 8-bit L and RGB images, bit-exact with Pillow 12.3
// (src/libImaging/Resample.c, Geometry.c `ImagingScaleAffine`, _imaging.c `_resize`, Image.py `resize`).
//
// Convolution filters: separable, horizontal pass then vertical pass, each rounding to 8 bits. Per output pixel the
// filter is centred at in0 + (x + 0.5) * scale, its support widened by the downscale factor (antialiasing), weights
// normalised to sum 1 and converted to fixed point with PRECISION_BITS = 22 (round half away from zero), then
// accumulated in integers from 1 << 21 and clipped to 0..255. A pass whose size does not change is skipped (not an
// identity convolution: lanczos taps at integer offsets are ~1e-17, not 0). NEAREST is an affine scale whose source
// coordinate is accumulated by repeated addition in double precision and truncated. Same size returns a copy.
import { MediaError } from './errors.js';
import { checkRaster, type RasterImage } from './raster.js';

export type ResampleFilter = 'nearest' | 'box' | 'bilinear' | 'hamming' | 'bicubic' | 'lanczos';

interface Filter {
  fn: (x: number) => number;
  support: number;
}

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);
const F054 = Math.fround(0.54); // C float literals 0.54f / 0.46f, promoted to double
const F046 = Math.fround(0.46);

function sinc(x: number): number {
  if (x === 0) return 1;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

const FILTERS: Record<Exclude<ResampleFilter, 'nearest'>, Filter> = {
  box: { support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: {
    support: 1,
    fn: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  hamming: {
    support: 1,
    fn: (x) => {
      if (x < 0) x = -x;
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x = x * Math.PI;
      return (Math.sin(x) / x) * (F054 + F046 * Math.cos(x));
    },
  },
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, fn: (x) => (-3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

interface Coeffs {
  ksize: number;
  /** [xmin, count] per output pixel. */
  bounds: Int32Array;
  /** Fixed-point weights, ksize per output pixel. */
  kk: Int32Array;
}

/** Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc` for the box [0, inSize). */
function precomputeCoeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize; // (double)(in1 - in0) / outSize with in0 = 0, in1 = inSize (exact floats)
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const invFilterscale = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let ww = 0;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * invFilterscale);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      kk[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = Math.floor(ss / ONE); // ss >> PRECISION_BITS (arithmetic shift)
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** One pass (Resample.c `_ImagingResample{Horizontal,Vertical}_8bpc`); every band is filtered the same way. */
function resamplePass(
  src: Uint8Array,
  srcW: number,
  ch: number,
  outW: number,
  outH: number,
  horizontal: boolean,
  c: Coeffs,
): Uint8Array {
  const out = new Uint8Array(outW * outH * ch);
  const { ksize, bounds, kk } = c;
  if (horizontal) {
    for (let y = 0; y < outH; y++) {
      const row = y * srcW * ch;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[2 * xx]!;
        const n = bounds[2 * xx + 1]!;
        const kOff = xx * ksize;
        for (let b = 0; b < ch; b++) {
          let ss = HALF;
          for (let x = 0; x < n; x++) ss += src[row + (x + xmin) * ch + b]! * kk[kOff + x]!;
          out[(y * outW + xx) * ch + b] = clip8(ss);
        }
      }
    }
  } else {
    const rowLen = srcW * ch;
    for (let yy = 0; yy < outH; yy++) {
      const ymin = bounds[2 * yy]!;
      const n = bounds[2 * yy + 1]!;
      const kOff = yy * ksize;
      for (let i = 0; i < rowLen; i++) {
        let ss = HALF;
        for (let y = 0; y < n; y++) ss += src[(y + ymin) * rowLen + i]! * kk[kOff + y]!;
        out[yy * rowLen + i] = clip8(ss);
      }
    }
  }
  return out;
}

/** Geometry.c `ImagingScaleAffine` (what `resize` does for NEAREST): coordinates accumulated, then truncated. */
function nearest(img: RasterImage, outW: number, outH: number): Uint8Array {
  const { width, height, channels: ch, data } = img;
  const a0 = width / outW;
  const a4 = height / outH;
  const xintab = new Int32Array(outW);
  let xo = a0 * 0.5;
  for (let x = 0; x < outW; x++) {
    xintab[x] = xo < 0 ? -1 : Math.trunc(xo);
    xo += a0;
  }
  const out = new Uint8Array(outW * outH * ch);
  let yo = a4 * 0.5;
  for (let y = 0; y < outH; y++) {
    const yi = yo < 0 ? -1 : Math.trunc(yo);
    yo += a4;
    if (yi < 0 || yi >= height) continue; // stays 0, as Pillow's zero fill
    for (let x = 0; x < outW; x++) {
      const xi = xintab[x]!;
      if (xi < 0 || xi >= width) continue;
      for (let b = 0; b < ch; b++) out[(y * outW + x) * ch + b] = data[(yi * width + xi) * ch + b]!;
    }
  }
  return out;
}

/**
 * Resizes like Pillow 12.3 `Image.resize((width, height), filter)` on an 8-bit "L" or "RGB" image, bit for bit.
 * Pillow's default filter (and CogVideoX-Fun's start/end image resize) is bicubic; diffusers' VaeImageProcessor uses
 * lanczos.
 */
export function resizeImage(img: RasterImage, width: number, height: number, filter: ResampleFilter = 'bicubic'): RasterImage {
  checkRaster(img);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new MediaError('resizeImage', `target size must be positive integers, got ${width}x${height}`);
  }
  const { channels } = img;
  if (width === img.width && height === img.height) return { width, height, channels, data: img.data.slice() };
  if (filter === 'nearest') return { width, height, channels, data: nearest(img, width, height) };
  const f = FILTERS[filter];
  if (!f) throw new MediaError('resizeImage', `unknown filter '${String(filter)}'`);
  let data = img.data;
  let w = img.width;
  if (width !== img.width) {
    data = resamplePass(data, w, channels, width, img.height, true, precomputeCoeffs(w, width, f));
    w = width;
  }
  if (height !== img.height) {
    data = resamplePass(data, w, channels, w, height, false, precomputeCoeffs(img.height, height, f));
  }
  return { width, height, channels, data: data === img.data ? data.slice() : data };
}
