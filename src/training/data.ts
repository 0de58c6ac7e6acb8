// Training data as CogVideoX-Fun reads it: the metadata file (cogvideox/data/dataset_image_video.py:194-214), video
// frame sampling (ds.py:252-302), aspect-ratio buckets (scripts/train.py:1001-1147, bucket_sampler.py), the 4k+1 frame
// rule and token-length batch tiling (train.py:1133-1147, 1339-1365).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ASPECT_RATIO_512 } from '../pipelines/rules.js';
import { linspaceNp, roundHalfEven } from '../schedulers/scheduler.js';
import type { TrainingRandom } from './random.js';

export interface Sample {
  /** Absolute path (relative entries are resolved against --train-data-dir, else the metadata file's folder). */
  filePath: string;
  text: string;
  type: 'video' | 'image';
  width?: number;
  height?: number;
}

/** A minimal RFC 4180 CSV reader (quoted fields, "" escapes, CRLF), first row = header, as csv.DictReader. */
export function parseCsv(text: string): Record<string, string>[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field.length || row.length) {
    row.push(field);
    rows.push(row);
  }
  const nonEmpty = rows.filter((r) => !(r.length === 1 && r[0] === ''));
  const [header, ...body] = nonEmpty;
  if (!header) return [];
  return body.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
}

/**
 * Reads `--data META.json|csv`: a JSON list of objects or a CSV with a header; fields `file_path`, `text`, `type`
 * ("video" | "image", default "image"), optional `width`, `height`. Every problem is reported with the file and the
 * entry index before anything heavy runs.
 */
export function readMetadata(metaPath: string, dataDir?: string): Sample[] {
  if (!fs.existsSync(metaPath)) throw new Error(`--data ${metaPath}: file not found`);
  const raw = fs.readFileSync(metaPath, 'utf8');
  let entries: Record<string, unknown>[];
  if (metaPath.toLowerCase().endsWith('.csv')) entries = parseCsv(raw);
  else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (e) {
      throw new Error(`--data ${metaPath}: not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(parsed)) throw new Error(`--data ${metaPath}: expected a JSON list of {file_path, text, type} objects`);
    entries = parsed as Record<string, unknown>[];
  }
  if (entries.length === 0) throw new Error(`--data ${metaPath}: no samples (empty list)`);
  const base = dataDir ?? path.dirname(path.resolve(metaPath));
  return entries.map((e, i) => {
    const where = `--data ${metaPath}: entry ${i}`;
    if (typeof e !== 'object' || e === null) throw new Error(`${where}: expected an object`);
    const fp = e['file_path'];
    if (typeof fp !== 'string' || !fp) throw new Error(`${where}: missing "file_path"`);
    const text = e['text'];
    if (typeof text !== 'string') throw new Error(`${where}: missing "text" (a caption string)`);
    const type = e['type'] === undefined || e['type'] === '' ? 'image' : e['type'];
    if (type !== 'video' && type !== 'image') throw new Error(`${where}: "type" must be "video" or "image", got ${JSON.stringify(type)}`);
    const filePath = path.isAbsolute(fp) ? fp : path.join(base, fp);
    if (!fs.existsSync(filePath)) throw new Error(`${where}: ${filePath} not found`);
    const s: Sample = { filePath, text, type };
    for (const k of ['width', 'height'] as const) {
      if (e[k] !== undefined && e[k] !== '') {
        const v = Math.trunc(Number(e[k]));
        if (!Number.isFinite(v) || v <= 0) throw new Error(`${where}: "${k}" must be a positive number, got ${JSON.stringify(e[k])}`);
        s[k] = v;
      }
    }
    return s;
  });
}

/**
 * ds.py:252-267 frame indices for a video of n frames: m = min(N, ⌊n / stride⌋) frames spread over a clip of
 * (m − 1)·stride + 1 frames starting at random.randint(0, n − clip), as np.linspace(..., dtype=int) (truncation).
 */
export function videoFrameIndices(n: number, sampleFrames: number, stride: number, rng: TrainingRandom): number[] {
  const m = Math.min(sampleFrames, Math.floor(Math.floor(n * 1.0) / stride));
  if (m <= 0) throw new Error(`video has ${n} frames: too short for --video-sample-stride ${stride}`);
  const clip = Math.min(n, (m - 1) * stride + 1);
  const start = n !== clip ? rng.pyRandint(0, n - clip) : 0;
  return linspaceNp(start, start + clip - 1, m).map((x) => Math.trunc(x));
}

/** train.py:1133-1147: frames → 4k+1, then a whole number of patch_size_t latent groups; at least 1. */
export function frameCountRule(frames: number, temporalCompression: number, patchSizeT: number | null): number {
  const latent = Math.floor((frames - 1) / temporalCompression) + 1;
  let L = Math.floor((frames - 1) / temporalCompression) * temporalCompression + 1;
  if (patchSizeT !== null && latent % patchSizeT !== 0) L -= (latent % patchSizeT) * temporalCompression;
  return L <= 0 ? 1 : L;
}

/** train.py get_length_to_frame_num(N·tok²): per sample size s, min(T/s/s, N) // I · I + 1 (Python float floor). */
export function lengthToFrameNum(o: { videoSampleSize: number; imageSampleSize: number; nFrames: number; tokenSampleSize: number; temporalCompression: number }): Map<number, number> {
  const T = o.nFrames * o.tokenSampleSize * o.tokenSampleSize;
  let sizes: number[];
  if (o.imageSampleSize > o.videoSampleSize) {
    sizes = [];
    for (let s = o.videoSampleSize; s <= o.imageSampleSize; s += 128) sizes.push(s);
    if (sizes.at(-1) !== o.imageSampleSize) sizes.push(o.imageSampleSize);
  } else sizes = [o.imageSampleSize];
  const I = o.temporalCompression;
  return new Map(sizes.map((s) => [s, Math.floor(Math.min(T / s / s, o.nFrames) / I) * I + 1]));
}

export interface Geometry {
  /** ASPECT_RATIO_512 key chosen */
  key: string;
  /** [height, width] after flooring to multiples of 16 */
  size: [number, number];
  /** [height, width] the frames are resized to before the center crop */
  resize: [number, number];
  /** top, left of the center crop (torchvision CenterCrop: round-half-even) */
  crop: [number, number];
}

/**
 * collate_fn's default branch for an h×w source at sample size S (and downsample ratio r): the closest
 * ASPECT_RATIO_512 bucket (first key wins ties) scaled by S/512/r, floored to ×16; resize keeping the aspect so the
 * crop fits; center crop.
 */
export function bucketGeometry(h: number, w: number, sampleSize: number, ratio = 1): Geometry {
  const ar = h / w;
  let best = ASPECT_RATIO_512[0]!;
  for (const row of ASPECT_RATIO_512) if (Math.abs(Number(row[0]) - ar) < Math.abs(Number(best[0]) - ar)) best = row;
  const size: [number, number] = [Math.trunc(((best[1] / 512) * sampleSize) / ratio / 16) * 16, Math.trunc(((best[2] / 512) * sampleSize) / ratio / 16) * 16];
  const resize: [number, number] = size[0] / h > size[1] / w ? [size[0], Math.trunc((w * size[0]) / h)] : [Math.trunc((h * size[1]) / w), size[1]];
  const crop: [number, number] = [roundHalfEven((resize[0] - size[0]) / 2), roundHalfEven((resize[1] - size[1]) / 2)];
  return { key: best[0], size, resize, crop };
}

/** train.py:1339-1365 (--training-with-video-token-length): tile the batch ×4 or ×2 when it is short in tokens. */
export function tokenTiling(nFrames: number, tokenSampleSize: number, pixels: number): 1 | 2 | 4 {
  const T = nFrames * tokenSampleSize * tokenSampleSize;
  if (Math.floor(T / 16) >= pixels) return 4;
  if (Math.floor(T / 4) >= pixels) return 2;
  return 1;
}

/**
 * The sampler: a fresh permutation of the dataset per epoch, resumable at a position (bucket.py RandomSampler; our
 * permutation stream, not torch's randperm). Consecutive indices of the same bucket key form batches.
 */
export function epochPermutation(n: number, rng: TrainingRandom): number[] {
  return rng.pySample(n, n);
}
