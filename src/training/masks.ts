// Inpaint training masks: CogVideoX-Fun's `get_random_mask` (cogvideox/data/dataset_image_video.py:25-103), the
// masked video of collate_fn (scripts/train.py:1149-1153) and `resize_mask` (scripts/train.py:113-147).
// Mask value 1 = region to generate. Every draw goes through `TrainingRandom`, in the original's order.
import { f32 } from '../schedulers/scheduler.js';
import type { TrainingRandom } from './random.js';

/** The video mask-type probabilities (types 0..9) and the image ones (types 0, 1). */
export const VIDEO_MASK_PROBS = [0.05, 0.2, 0.2, 0.2, 0.05, 0.05, 0.05, 0.1, 0.05, 0.05] as const;
export const IMAGE_MASK_PROBS = [0.2, 0.8] as const;

export interface RandomMask {
  /** [f, 1, h, w] row-major, 0/1. */
  data: Uint8Array;
  /** The mask type drawn (0..9). */
  type: number;
}

const floorDiv = (a: number, b: number): number => Math.floor(a / b);

/**
 * get_random_mask((f, c, h, w)); `videoProbs` replaces the video mask-type probabilities (ours: --video-mask-probs),
 * `keptFrames` the k of types 2 and 3 (ours: --mask-kept-frames; k is still drawn, so the random stream is Fun's).
 */
export function getRandomMask(
  shape: readonly [number, number, number, number],
  rng: TrainingRandom,
  videoProbs: readonly number[] = VIDEO_MASK_PROBS,
  keptFrames?: number,
): RandomMask {
  const [f, , h, w] = shape;
  const type = f !== 1 ? rng.npChoice(videoProbs) : rng.npChoice(IMAGE_MASK_PROBS);
  let mask = new Uint8Array(f * h * w);
  const plane = h * w;
  const fill = (f0: number, f1: number, y0: number, y1: number, x0: number, x1: number): void => {
    for (let t = Math.max(f0, 0); t < Math.min(f1, f); t++) {
      for (let y = Math.max(y0, 0); y < Math.min(y1, h); y++) mask.fill(1, t * plane + y * w + Math.max(x0, 0), t * plane + y * w + Math.min(x1, w));
    }
  };
  // Python slice bounds: a negative stop counts from the end (mask[k:-k])
  const stop = (s: number): number => (s < 0 ? Math.max(f + s, 0) : s);
  const rectangle = (): [number, number, number, number] => {
    const cx = rng.torchRandint(0, w, 1)[0]!;
    const cy = rng.torchRandint(0, h, 1)[0]!;
    const bx = rng.torchRandint(floorDiv(w, 4), floorDiv(w, 4) * 3, 1)[0]!;
    const by = rng.torchRandint(floorDiv(h, 4), floorDiv(h, 4) * 3, 1)[0]!;
    return [Math.max(cy - floorDiv(by, 2), 0), Math.min(cy + floorDiv(by, 2), h), Math.max(cx - floorDiv(bx, 2), 0), Math.min(cx + floorDiv(bx, 2), w)];
  };
  switch (type) {
    case 0: {
      const [sy, ey, sx, ex] = rectangle();
      fill(0, f, sy, ey, sx, ex);
      break;
    }
    case 1:
      mask.fill(1);
      break;
    case 2: {
      const k = keptFrames ?? rng.npRandint(1, 5);
      if (keptFrames !== undefined) rng.npRandint(1, 5);
      fill(k, f, 0, h, 0, w);
      break;
    }
    case 3: {
      const k = keptFrames ?? rng.npRandint(1, 5);
      if (keptFrames !== undefined) rng.npRandint(1, 5);
      fill(k, stop(-k), 0, h, 0, w);
      break;
    }
    case 4: {
      const [sy, ey, sx, ex] = rectangle();
      const before = rng.npRandint(0, floorDiv(f, 2));
      const after = rng.npRandint(floorDiv(f, 2), f);
      fill(before, after, sy, ey, sx, ex);
      break;
    }
    case 5:
      mask = Uint8Array.from(rng.torchRandint(0, 2, f * h * w));
      break;
    case 6: {
      const n = rng.pyRandint(1, Math.max(floorDiv(f, 2), 1));
      for (const i of rng.pySample(f, n)) {
        const bh = rng.pyRandint(1, floorDiv(h, 4));
        const bw = rng.pyRandint(1, floorDiv(w, 4));
        const y = rng.pyRandint(0, h - bh);
        const x = rng.pyRandint(0, w - bw);
        fill(i, i + 1, y, y + bh, x, x + bw);
      }
      break;
    }
    case 7:
    case 8: {
      const cx = rng.torchRandint(0, w, 1)[0]!;
      const cy = rng.torchRandint(0, h, 1)[0]!;
      const m = Math.min(w, h);
      const a = rng.torchRandint(floorDiv(m, 8), floorDiv(m, 4), 1)[0]!;
      const b = type === 7 ? rng.torchRandint(floorDiv(m, 8), floorDiv(m, 4), 1)[0]! : 0;
      if (type === 7 && (a === 0 || b === 0)) throw new Error(`get_random_mask: ellipse axis 0 (min(h, w) = ${m} < 8) divides by zero`);
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          // Python: float true division (type 7), integer arithmetic (type 8); strict <
          const inside = type === 7 ? (i - cy) ** 2 / b ** 2 + (j - cx) ** 2 / a ** 2 < 1 : (i - cy) ** 2 + (j - cx) ** 2 < a ** 2;
          if (inside) for (let t = 0; t < f; t++) mask[t * plane + i * w + j] = 1;
        }
      }
      break;
    }
    case 9:
      for (let t = 0; t < f; t++) if (rng.npRand() > 0.5) fill(t, t + 1, 0, h, 0, w);
      break;
    default:
      throw new Error(`The mask_index ${type} is not define`);
  }
  return { data: mask, type };
}

/**
 * collate_fn's masked video: `pv·(1 − mask) + (−1)·mask` with the [F, 1, H, W] mask broadcast over the 3 channels of
 * the [F, 3, H, W] pixels (masked pixels become exactly −1). In place on a copy; returns the copy.
 */
export function maskPixelValues(pixels: Float32Array, mask: Uint8Array, frames: number, height: number, width: number): Float32Array {
  const plane = height * width;
  if (pixels.length !== frames * 3 * plane || mask.length !== frames * plane) {
    throw new Error(`maskPixelValues: pixels [${frames}, 3, ${height}, ${width}] and mask [${frames}, 1, ${height}, ${width}] expected`);
  }
  const out = new Float32Array(pixels.length);
  for (let t = 0; t < frames; t++) {
    for (let c = 0; c < 3; c++) {
      const o = (t * 3 + c) * plane;
      for (let i = 0; i < plane; i++) {
        const m = mask[t * plane + i]!;
        out[o + i] = f32(f32(pixels[o + i]! * (1 - m)) + -1 * m);
      }
    }
  }
  return out;
}

/** Linear source indices of torch's upsample (align_corners=False, explicit size): index, next index, weights. */
function linearTaps(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; w0: Float32Array; w1: Float32Array } {
  const scale = f32(inSize / outSize);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w0 = new Float32Array(outSize);
  const w1 = new Float32Array(outSize);
  for (let d = 0; d < outSize; d++) {
    const real = Math.max(0, f32(f32(scale * f32(d + 0.5)) - 0.5));
    const idx = Math.min(Math.floor(real), inSize - 1);
    const lambda = Math.min(Math.max(f32(real - idx), 0), 1);
    i0[d] = idx;
    i1[d] = idx + (idx < inSize - 1 ? 1 : 0);
    w1[d] = lambda;
    w0[d] = f32(1 - lambda);
  }
  return { i0, i1, w0, w1 };
}

/** F.interpolate(x [B, C, F, H, W], size, mode="trilinear", align_corners=False), float32, torch's summation order. */
export function trilinear(x: Float32Array, shape: readonly number[], size: readonly [number, number, number]): Float32Array {
  const [B, C, F, H, W] = shape as [number, number, number, number, number];
  const [f, h, w] = size;
  const T = linearTaps(F, f);
  const Y = linearTaps(H, h);
  const X = linearTaps(W, w);
  const out = new Float32Array(B * C * f * h * w);
  const lin = (a: number, b: number, wa: number, wb: number): number => f32(f32(a * wa) + f32(b * wb));
  let o = 0;
  for (let bc = 0; bc < B * C; bc++) {
    const base = bc * F * H * W;
    for (let t = 0; t < f; t++) {
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < w; xx++) {
          const at = (ti: number, yi: number, xi: number): number => x[base + (ti * H + yi) * W + xi]!;
          const plane = (ti: number): number =>
            lin(
              lin(at(ti, Y.i0[y]!, X.i0[xx]!), at(ti, Y.i0[y]!, X.i1[xx]!), X.w0[xx]!, X.w1[xx]!),
              lin(at(ti, Y.i1[y]!, X.i0[xx]!), at(ti, Y.i1[y]!, X.i1[xx]!), X.w0[xx]!, X.w1[xx]!),
              Y.w0[y]!,
              Y.w1[y]!,
            );
          out[o++] = lin(plane(T.i0[t]!), plane(T.i1[t]!), T.w0[t]!, T.w1[t]!);
        }
      }
    }
  }
  return out;
}

/**
 * resize_mask(mask [B, 1, F, H, W], latent (f, h, w)): the first frame alone to 1 frame, the rest to f − 1 frames
 * (process_first_frame_only, the default the step uses), concatenated along frames; or all frames at once.
 */
export function resizeMask(
  mask: Float32Array,
  shape: readonly [number, number, number, number, number],
  latent: readonly [number, number, number],
  processFirstFrameOnly = true,
): Float32Array {
  const [B, C, F, H, W] = shape;
  const [f, h, w] = latent;
  if (mask.length !== B * C * F * H * W) throw new Error(`resizeMask: ${mask.length} values for shape [${shape.join(', ')}]`);
  if (!processFirstFrameOnly) return trilinear(mask, shape, latent);
  const frame = H * W;
  const first = new Float32Array(B * C * frame);
  const rest = new Float32Array(B * C * (F - 1) * frame);
  for (let bc = 0; bc < B * C; bc++) {
    first.set(mask.subarray(bc * F * frame, bc * F * frame + frame), bc * frame);
    rest.set(mask.subarray(bc * F * frame + frame, (bc + 1) * F * frame), bc * (F - 1) * frame);
  }
  const a = trilinear(first, [B, C, 1, H, W], [1, h, w]);
  if (f - 1 === 0) return a;
  if (F - 1 === 0) throw new Error(`resizeMask: a 1-frame mask cannot give ${f} latent frames`);
  const b = trilinear(rest, [B, C, F - 1, H, W], [f - 1, h, w]);
  const out = new Float32Array(B * C * f * h * w);
  const lp = h * w;
  for (let bc = 0; bc < B * C; bc++) {
    out.set(a.subarray(bc * lp, (bc + 1) * lp), bc * f * lp);
    out.set(b.subarray(bc * (f - 1) * lp, (bc + 1) * (f - 1) * lp), bc * f * lp + lp);
  }
  return out;
}
