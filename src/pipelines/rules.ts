// Request rules that come from the model family: frame limits (CogVideoX-Fun cogvideox/models/transformer3d.py's
// position table, diffusers' embeddings.py) and the UI's size buckets (cogvideox/data/bucket_sampler.py).
import type { TransformerConfig } from '../models/transformer.js';
import { transformerFlavor, type TransformerFlavor } from '../weights/transformer_kind.js';

/** 85: the longest any released model was trained at (V1.5); the UI slider's end. */
export const MAX_FRAMES = 85;

/**
 * The most frames a transformer config supports, and why. Fun's 2b interpolates its stored table over time, which
 * covers only sample_frames; the rest take any count up to 85 (the learned-table 5b-I2V silently switches to a
 * recomputed sincos table at other counts — diffusers' behaviour, reproduced, not refused).
 */
export function maxFramesFor(c: TransformerConfig, flavor: TransformerFlavor = transformerFlavor(c)): { max: number; why: string } {
  const sincos = !c.use_rotary_positional_embeddings && !c.use_learned_positional_embeddings;
  if (sincos && flavor === 'fun') return { max: c.sample_frames, why: `its position table covers ${c.sample_frames} frames` };
  return { max: MAX_FRAMES, why: 'the longest released training length' };
}

/** `ASPECT_RATIO_512` of cogvideox/data/bucket_sampler.py: h/w ratio → [h, w] at base 512. */
export const ASPECT_RATIO_512: ReadonlyArray<readonly [string, number, number]> = [
  ['0.25', 256, 1024], ['0.26', 256, 992], ['0.27', 256, 960], ['0.28', 256, 928], ['0.32', 288, 896], ['0.33', 288, 864],
  ['0.35', 288, 832], ['0.4', 320, 800], ['0.42', 320, 768], ['0.48', 352, 736], ['0.5', 352, 704], ['0.52', 352, 672],
  ['0.57', 384, 672], ['0.6', 384, 640], ['0.68', 416, 608], ['0.72', 416, 576], ['0.78', 448, 576], ['0.82', 448, 544],
  ['0.88', 480, 544], ['0.94', 480, 512], ['1.0', 512, 512], ['1.07', 512, 480], ['1.13', 544, 480], ['1.21', 544, 448],
  ['1.29', 576, 448], ['1.38', 576, 416], ['1.46', 608, 416], ['1.67', 640, 384], ['1.75', 672, 384], ['2.0', 704, 352],
  ['2.09', 736, 352], ['2.4', 768, 320], ['2.5', 800, 320], ['2.89', 832, 288], ['3.0', 864, 288], ['3.11', 896, 288],
  ['3.62', 928, 256], ['3.75', 960, 256], ['3.88', 992, 256], ['4.0', 1024, 256],
];

/**
 * "Resize according to Reference": the bucket whose ratio key is closest to H/W of the reference image (first
 * minimum in table order), its sizes scaled by base/512 and floored to multiples of 16 → [height, width].
 */
export function sizeFromReference(refHeight: number, refWidth: number, base: 512 | 768 | 960 | 1024 = 512): [number, number] {
  if (!(refHeight > 0 && refWidth > 0)) throw new RangeError(`reference size must be positive, got ${refWidth}×${refHeight}`);
  if (![512, 768, 960, 1024].includes(base)) throw new RangeError(`base must be 512, 768, 960 or 1024, got ${base}`);
  const ratio = refHeight / refWidth;
  let best = ASPECT_RATIO_512[0]!;
  for (const row of ASPECT_RATIO_512) if (Math.abs(Number(row[0]) - ratio) < Math.abs(Number(best[0]) - ratio)) best = row;
  const scale = base / 512;
  return [Math.trunc((best[1] * scale) / 16) * 16, Math.trunc((best[2] * scale) / 16) * 16];
}
