// 8-bit planar YUV (4:2:0 / 4:2:2) to RGB the way OpenCV's video reader gets it from swscale on x86-64: the
// unscaled yuv2rgb path (sws_scale with SWS_BICUBIC, no SWS_ACCURATE_RND) running ffmpeg's SSSE3 kernel,
// libswscale/x86/yuv_2_rgb.asm, with the coefficients of the stream's colour matrix (opencv-python 4.14 follows
// the tag: BT.709 streams are converted with BT.709; untagged ones with BT.601). Chroma is nearest (each chroma
// sample covers its 2x2 / 2x1 luma block). Per pixel, in 16-bit lanes with samples shifted up 3 bits:
//   y' = mulhi((Y << 3) - yOffset, yCoeff),  u = sat16((U << 3) - 1024),  v = sat16((V << 3) - 1024)
//   B = y' + mulhi(u, ubCoeff),  R = y' + mulhi(v, vrCoeff),  G = y' + sat16(mulhi(u, ugCoeff) + mulhi(v, vgCoeff))
// clamped to 0..255, with the coefficients of yuv2rgb.c `ff_yuv2rgb_c_init_tables` (contrast and saturation 1,
// brightness 0). ffmpeg's portable C path (what the wasm build runs) rounds differently by up to ~3 levels.

/** libswscale's ff_yuv2rgb_coeffs (crv, cbu, cgu, cgv in 16.16) by ffprobe `color_space` name; others: BT.601. */
const COEFFS: Record<string, readonly [number, number, number, number]> = {
  bt601: [104597, 132201, 25675, 53279],
  bt709: [117489, 138438, 13975, 34925],
  fcc: [104448, 132798, 24759, 53109],
  smpte240m: [117579, 136230, 16907, 35559],
  bt2020nc: [110013, 140363, 12277, 42626],
  bt2020c: [110013, 140363, 12277, 42626],
};

export function yuvMatrixFor(colorSpace: string | undefined): string {
  return colorSpace && COEFFS[colorSpace] ? colorSpace : 'bt601';
}

const roundToInt16 = (f: number) => Math.max(-0x8000, Math.min(0x7fff, Math.floor((f + 0x8000) / 0x10000)));
const sat16 = (v: number) => (v < -0x8000 ? -0x8000 : v > 0x7fff ? 0x7fff : v);
const mulhi = (a: number, b: number) => (a * b) >> 16;

interface Tables {
  y: Int32Array;
  ub: Int32Array;
  ug: Int32Array;
  vr: Int32Array;
  vg: Int32Array;
}

function tables(matrix: string, fullRange: boolean): Tables {
  const k = COEFFS[matrix] ?? COEFFS.bt601!;
  let [crv, cbu, cgu, cgv]: number[] = [k[0], k[1], -k[2], -k[3]];
  let cy = 1 << 16;
  let oy = 0;
  if (!fullRange) {
    cy = Math.trunc((cy * 255) / 219);
    oy = 16 << 16;
  } else {
    [crv, cbu, cgu, cgv] = [crv!, cbu!, cgu!, cgv!].map((c) => Math.trunc((c * 224) / 255));
  }
  const yCoeff = roundToInt16(cy * 8192);
  const yOffset = roundToInt16(oy * 8);
  const [vrC, ubC, ugC, vgC] = [crv!, cbu!, cgu!, cgv!].map((c) => roundToInt16(c * 8192));
  const t: Tables = { y: new Int32Array(256), ub: new Int32Array(256), ug: new Int32Array(256), vr: new Int32Array(256), vg: new Int32Array(256) };
  for (let i = 0; i < 256; i++) {
    const y = (((i << 3) - yOffset) << 16) >> 16; // psubw wraps
    const c = sat16((i << 3) - 1024);
    t.y[i] = mulhi(y, yCoeff);
    t.ub[i] = mulhi(c, ubC!);
    t.ug[i] = mulhi(c, ugC!);
    t.vr[i] = mulhi(c, vrC!);
    t.vg[i] = mulhi(c, vgC!);
  }
  return t;
}

const cache = new Map<string, Tables>();
const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** Bytes of one planar frame: full-size Y, then U and V at ceil(w/2) x ceil(h / 2^vshift). */
export function yuvFrameBytes(width: number, height: number, vshift: 0 | 1): number {
  const cw = (width + 1) >> 1;
  const ch = vshift ? (height + 1) >> 1 : height;
  return width * height + 2 * cw * ch;
}

/** Converts one planar 4:2:0 (vshift 1) or 4:2:2 (vshift 0) frame to RGB HWC; `matrix` as from yuvMatrixFor. */
export function yuvPlanarToRgb(
  frame: Uint8Array,
  width: number,
  height: number,
  vshift: 0 | 1,
  fullRange: boolean,
  matrix = 'bt601',
): Uint8Array {
  const key = `${matrix}/${fullRange}`;
  let t = cache.get(key);
  if (!t) cache.set(key, (t = tables(yuvMatrixFor(matrix), fullRange)));
  const cw = (width + 1) >> 1;
  const ch = vshift ? (height + 1) >> 1 : height;
  const uBase = width * height;
  const vBase = uBase + cw * ch;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const crow = (y >> vshift) * cw;
    for (let x = 0; x < width; x++) {
      const Y = t.y[frame[y * width + x]!]!;
      const U = frame[uBase + crow + (x >> 1)]!;
      const V = frame[vBase + crow + (x >> 1)]!;
      const o = (y * width + x) * 3;
      out[o] = clamp8(sat16(Y + t.vr[V]!));
      out[o + 1] = clamp8(sat16(Y + sat16(t.ug[U]! + t.vg[V]!)));
      out[o + 2] = clamp8(sat16(Y + t.ub[U]!));
    }
  }
  return out;
}

/**
 * RGB HWC (even width and height) to planar 4:2:0 BT.601 limited range, rounded: the inverse of what decoders and
 * cv2 assume for an untagged stream. Chroma is the mean of each 2x2 block.
 */
export function rgbToYuv420(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array((width * height * 3) / 2);
  const cw = width / 2;
  const uBase = width * height;
  const vBase = uBase + cw * (height / 2);
  for (let i = 0, n = width * height; i < n; i++) {
    const r = rgb[3 * i]!;
    const g = rgb[3 * i + 1]!;
    const b = rgb[3 * i + 2]!;
    out[i] = Math.round(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255);
  }
  for (let cy = 0; cy < height / 2; cy++) {
    for (let cx = 0; cx < cw; cx++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) {
        const o = ((2 * cy + dy) * width + 2 * cx + dx) * 3;
        r += rgb[o]!;
        g += rgb[o + 1]!;
        b += rgb[o + 2]!;
      }
      r /= 4;
      g /= 4;
      b /= 4;
      out[uBase + cy * cw + cx] = clamp8(Math.round(128 + (-37.797 * r - 74.203 * g + 112 * b) / 255));
      out[vBase + cy * cw + cx] = clamp8(Math.round(128 + (112 * r - 93.786 * g - 18.214 * b) / 255));
    }
  }
  return out;
}
