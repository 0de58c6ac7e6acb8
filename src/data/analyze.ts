// Measuring what a (generated) world video shows: its background, and the one object's colour, shape and motion.
// The background is the per-channel median of every pixel of the clip (the object covers a small part of it); the
// object in each frame is the largest 4-connected blob of pixels differing from that background by more than a
// threshold in some channel. Colour: the median colour of the object's pixels, nearest of the six. Shape: how much
// of its bounding box the blob fills (circle π/4 ≈ 0.785, square 1, triangle 0.5), on frames where the box does not
// touch the border (a shape cut by the border fills its box differently). Motion: the least-squares slope of the
// blob's centroid over the frames where it is visible.
import {
  BACKGROUNDS,
  BACKGROUND_RGB,
  COLORS,
  COLOR_RGB,

  type Background,
  type Color,
  type Direction,
  type Rgb,
  type Shape,
} from './world.js';

export interface VideoLike {
  /** RGB HWC frames. */
  frames: readonly Uint8Array[];
  width: number;
  height: number;
}

export interface FrameObject {
  t: number;
  area: number;
  cx: number;
  cy: number;
  /** Inclusive bounding box. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  touchesBorder: boolean;
}

export interface Analysis {
  background: Background;
  backgroundRgb: Rgb;
  /** null when no object was found in any frame. */
  color: Color | null;
  colorRgb: Rgb | null;
  shape: Shape | null;
  fillRatio: number | null;
  /** 'none' when the centroid moves less than `minTravel` pixels over the clip. */
  direction: Direction | 'none' | null;
  /** Centroid displacement per frame (least squares), pixels. */
  velocity: [number, number] | null;
  objects: FrameObject[];
}

export interface AnalyzeOptions {
  /** A pixel is the object's when some channel differs from the background by more than this (default 64). */
  threshold?: number;
  /** Blobs smaller than this many pixels are ignored (default 6). */
  minArea?: number;
  /** Total centroid travel (pixels, over the clip) below which the direction is 'none' (default 2). */
  minTravel?: number;
}

/** Fill ratio bounds: below TRIANGLE_MAX a triangle, at or above SQUARE_MIN a square, a circle between. */
export const TRIANGLE_MAX = 0.66;
export const SQUARE_MIN = 0.9;

function nearest<K extends string>(names: readonly K[], table: Record<K, Rgb>, rgb: Rgb): K {
  let best = names[0]!;
  let bestD = Infinity;
  for (const n of names) {
    const c = table[n];
    const d = (c[0] - rgb[0]) ** 2 + (c[1] - rgb[1]) ** 2 + (c[2] - rgb[2]) ** 2;
    if (d < bestD) {
      bestD = d;
      best = n;
    }
  }
  return best;
}

/** The median (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function channelMedians(pixels: (p: (r: number, g: number, b: number) => void) => void): Rgb {
  const hist = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)];
  let n = 0;
  pixels((r, g, b) => {
    hist[0]![r]!++;
    hist[1]![g]!++;
    hist[2]![b]!++;
    n++;
  });
  const med = hist.map((h) => {
    let acc = 0;
    for (let v = 0; v < 256; v++) {
      acc += h[v]!;
      if (acc * 2 >= n) return v;
    }
    return 255;
  });
  return [med[0]!, med[1]!, med[2]!];
}

export function checkVideo(v: VideoLike): void {
  if (v.frames.length === 0) throw new Error('analyze: the video has no frames');
  v.frames.forEach((f, i) => {
    if (f.length !== v.width * v.height * 3) {
      throw new Error(`analyze: frame ${i} has ${f.length} bytes, expected ${v.width}x${v.height}x3 = ${v.width * v.height * 3}`);
    }
  });
}

/** The largest 4-connected blob of `mask` (1 = candidate), as a FrameObject and its pixel indices. */
function largestBlob(mask: Uint8Array, width: number, height: number, t: number): { obj: FrameObject; pixels: number[] } | null {
  const label = new Int32Array(width * height);
  let best: number[] | null = null;
  const stack: number[] = [];
  let next = 1;
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || label[start]) continue;
    const pixels: number[] = [];
    label[start] = next;
    stack.push(start);
    while (stack.length > 0) {
      const p = stack.pop()!;
      pixels.push(p);
      const x = p % width;
      const y = (p - x) / width;
      const around = [x > 0 ? p - 1 : -1, x < width - 1 ? p + 1 : -1, y > 0 ? p - width : -1, y < height - 1 ? p + width : -1];
      for (const q of around) {
        if (q >= 0 && mask[q] && !label[q]) {
          label[q] = next;
          stack.push(q);
        }
      }
    }
    next++;
    if (!best || pixels.length > best.length) best = pixels;
  }
  if (!best) return null;
  let x0 = width, y0 = height, x1 = -1, y1 = -1, sx = 0, sy = 0;
  for (const p of best) {
    const x = p % width;
    const y = (p - x) / width;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
    sx += x + 0.5;
    sy += y + 0.5;
  }
  const touchesBorder = x0 === 0 || y0 === 0 || x1 === width - 1 || y1 === height - 1;
  return { obj: { t, area: best.length, cx: sx / best.length, cy: sy / best.length, x0, y0, x1, y1, touchesBorder }, pixels: best };
}

/** Least-squares slope of ys against ts. */
function slope(ts: number[], ys: number[]): number {
  const n = ts.length;
  const mt = ts.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    num += (ts[i]! - mt) * (ys[i]! - my);
    den += (ts[i]! - mt) ** 2;
  }
  return den > 0 ? num / den : 0;
}

export function shapeFromFill(fill: number): Shape {
  return fill < TRIANGLE_MAX ? 'triangle' : fill >= SQUARE_MIN ? 'square' : 'circle';
}

/** Measures a world-like video (see the file comment). */
export function analyzeVideo(video: VideoLike, opts: AnalyzeOptions = {}): Analysis {
  checkVideo(video);
  const { frames, width, height } = video;
  const threshold = opts.threshold ?? 64;
  const minArea = opts.minArea ?? 6;
  const minTravel = opts.minTravel ?? 2;
  const bgRgb = channelMedians((visit) => {
    for (const f of frames) for (let i = 0; i < f.length; i += 3) visit(f[i]!, f[i + 1]!, f[i + 2]!);
  });
  const background = nearest(BACKGROUNDS, BACKGROUND_RGB, bgRgb);
  const objects: FrameObject[] = [];
  const objectPixels: { frame: Uint8Array; pixels: number[] }[] = [];
  const mask = new Uint8Array(width * height);
  frames.forEach((f, t) => {
    for (let p = 0; p < width * height; p++) {
      const d = Math.max(Math.abs(f[3 * p]! - bgRgb[0]), Math.abs(f[3 * p + 1]! - bgRgb[1]), Math.abs(f[3 * p + 2]! - bgRgb[2]));
      mask[p] = d > threshold ? 1 : 0;
    }
    const blob = largestBlob(mask, width, height, t);
    if (blob && blob.obj.area >= minArea) {
      objects.push(blob.obj);
      objectPixels.push({ frame: f, pixels: blob.pixels });
    }
  });
  if (objects.length === 0) {
    return { background, backgroundRgb: bgRgb, color: null, colorRgb: null, shape: null, fillRatio: null, direction: null, velocity: null, objects };
  }
  const colorRgb = channelMedians((visit) => {
    for (const { frame, pixels } of objectPixels) for (const p of pixels) visit(frame[3 * p]!, frame[3 * p + 1]!, frame[3 * p + 2]!);
  });
  const color = nearest(COLORS, COLOR_RGB, colorRgb);
  // Shape from whole (not border-cut) views; if there is none, the largest view.
  let views = objects.filter((o) => !o.touchesBorder);
  if (views.length === 0) views = [objects.reduce((a, b) => (b.area > a.area ? b : a))];
  const fillRatio = median(views.map((o) => o.area / ((o.x1 - o.x0 + 1) * (o.y1 - o.y0 + 1))));
  const shape = shapeFromFill(fillRatio);
  let direction: Direction | 'none' | null = null;
  let velocity: [number, number] | null = null;
  if (objects.length >= 2) {
    const ts = objects.map((o) => o.t);
    const vx = slope(ts, objects.map((o) => o.cx));
    const vy = slope(ts, objects.map((o) => o.cy));
    velocity = [vx, vy];
    const span = ts[ts.length - 1]! - ts[0]!;
    if (Math.hypot(vx, vy) * span < minTravel) direction = 'none';
    else if (Math.abs(vx) >= Math.abs(vy)) direction = vx > 0 ? 'right' : 'left';
    else direction = vy > 0 ? 'down' : 'up';
  } else {
    direction = 'none';
  }
  return { background, backgroundRgb: bgRgb, color, colorRgb, shape, fillRatio, direction, velocity, objects };
}

/** PSNR in dB of two same-sized 8-bit buffers (Infinity when equal). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`psnr: sizes differ (${a.length} vs ${b.length} bytes)`);
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  if (se === 0) return Infinity;
  return 10 * Math.log10((255 * 255 * a.length) / se);
}


