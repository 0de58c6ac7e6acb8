// Samples turned into what a step needs, computed once and cached on disk: the clip's pixels at its bucket size, the
// VAE posterior moments of those pixels, and the T5 embedding of the caption (and of "" for text dropout). T5-XXL does
// not fit beside training on a 24 GiB machine, so it runs here, before the transformer is loaded, and never again for
// the same model + text. Pixel preparation follows the dataset + collate_fn (ds.py resize_frame with cv2 INTER_LINEAR,
// frame indices, bucket resize + center crop, (x − 0.5)/0.5); the bucket resize is PIL's antialiased bilinear on 8-bit
// frames where torchvision resizes float tensors (differences of a few 1/255 steps).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { resizeLinearCv2 } from '../media/cv2_resize.js';
import { readImage } from '../media/image.js';
import type { RasterImage } from '../media/raster.js';
import { resizeImage } from '../media/resize.js';
import { readVideo } from '../media/video_read.js';
import type { AutoencoderKLCogVideoX } from '../models/vae.js';
import { saveSafetensors, SafetensorsFile } from '../weights/safetensors.js';
import { bucketGeometry, frameCountRule, videoFrameIndices, type Geometry, type Sample } from './data.js';
import type { TrainingRandom } from './random.js';

export interface SampleOptions {
  videoSampleSize: number;
  imageSampleSize: number;
  videoSampleNFrames: number;
  videoSampleStride: number;
  temporalCompression: number;
  patchSizeT: number | null;
}

export interface PreparedSample {
  index: number;
  text: string;
  type: 'video' | 'image';
  /** F, H, W */
  shape: [number, number, number];
  /** [F, 3, H, W] in [−1, 1] */
  pixels: Float32Array;
  /** VAE posterior moments [1, 2C, f, h, w] */
  moments: Float32Array;
  momentsShape: number[];
}

function cropFrame(img: RasterImage, top: number, left: number, h: number, w: number): RasterImage {
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) out.set(img.data.subarray(((top + y) * img.width + left) * 3, ((top + y) * img.width + left + w) * 3), y * w * 3);
  return { width: w, height: h, channels: 3, data: out };
}

/** ds.py resize_frame: only downsizes; the short side to `larger`, the long side int(larger·long/short). */
function resizeFrame(img: RasterImage, larger: number): RasterImage {
  const short = Math.min(img.width, img.height);
  if (short <= larger) return img;
  const long = Math.trunc((larger * Math.max(img.width, img.height)) / short);
  return img.width < img.height ? resizeLinearCv2(img, larger, long) : resizeLinearCv2(img, long, larger);
}

/** A sample's frames as the dataset hands them to collate_fn (ds.py:252-302): decoded, frame-sampled, resize_frame'd. */
export interface DecodedSample {
  frames: RasterImage[];
  /** the video frame indices drawn (null for an image): re-decoding with them gives the same clip */
  indices: number[] | null;
}

/**
 * Decodes a sample: a video's frames at `indices` (or indices drawn as ds.py does, one random.randint) resized by
 * resize_frame; an image as is (RGB). Errors name the file.
 */
export async function decodeSample(s: Sample, o: SampleOptions, pick: TrainingRandom | readonly number[]): Promise<DecodedSample> {
  try {
    if (s.type === 'video') {
      const v = await readVideo(s.filePath);
      const all = v.frames.map((data) => ({ width: v.width, height: v.height, channels: 3 as const, data }));
      if (all.length === 0) throw new Error('no frames decoded');
      const idx = Array.isArray(pick) ? (pick as readonly number[]).slice() : videoFrameIndices(all.length, o.videoSampleNFrames, o.videoSampleStride, pick as TrainingRandom);
      if (idx.some((i) => i >= all.length)) throw new Error(`has ${all.length} frames now, fewer than when it was first read`);
      const larger = Math.max(o.imageSampleSize, o.videoSampleSize);
      return { frames: idx.map((i) => resizeFrame(all[i]!, larger)), indices: idx };
    }
    const img = await readImage(s.filePath);
    const rgb = img.channels === 3 ? img : { ...img, channels: 3 as const, data: Uint8Array.from({ length: img.width * img.height * 3 }, (_, i) => img.data[Math.floor(i / 3)]!) };
    return { frames: [rgb], indices: null };
  } catch (e) {
    throw new Error(`${s.filePath}: cannot read the ${s.type} (${(e as Error).message})`);
  }
}

/**
 * collate_fn's per-example transform (train.py:1113-1129): the first `F` frames resized to `g.resize` (whatever each
 * frame's own size: the batch's geometry comes from examples[0]), center-cropped to `g.size`, (x − 0.5) / 0.5, as
 * [F, 3, H, W].
 */
export function bucketPixels(frames: readonly RasterImage[], g: Geometry, F: number): Float32Array {
  const [H, W] = g.size;
  const pixels = new Float32Array(F * 3 * H * W);
  for (let t = 0; t < F; t++) {
    const img = cropFrame(resizeImage(frames[t]!, g.resize[1], g.resize[0], 'bilinear'), g.crop[0], g.crop[1], H, W);
    for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) pixels[(t * 3 + c) * H * W + i] = Math.fround((img.data[i * 3 + c]! / 255 - 0.5) / 0.5);
  }
  return pixels;
}

/** Decodes a sample and brings it to its bucket: [F, 3, H, W] in [−1, 1]. Errors name the file. */
export async function loadPixels(s: Sample, o: SampleOptions, rng: TrainingRandom): Promise<{ pixels: Float32Array; shape: [number, number, number]; decoded: DecodedSample }> {
  const decoded = await decodeSample(s, o, rng);
  const frames = decoded.frames;
  const g = bucketGeometry(frames[0]!.height, frames[0]!.width, s.type === 'video' ? o.videoSampleSize : o.imageSampleSize);
  const F = s.type === 'video' ? frameCountRule(frames.length, o.temporalCompression, o.patchSizeT) : 1;
  if (s.type === 'video' && F < 1 + o.temporalCompression && o.videoSampleNFrames > 1) {
    throw new Error(`${s.filePath}: ${frames.length} usable frames gives ${F} after the 4k+1 rule; need at least ${1 + o.temporalCompression}`);
  }
  return { pixels: bucketPixels(frames, g, F), shape: [F, g.size[0], g.size[1]], decoded };
}

/** sha256 of the inputs that decide a cached value. */
export function cacheKey(...parts: (string | number)[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 32);
}

/**
 * A model component's identity for cache keys: its config (JSON files whole) and, per weight file, its size and a
 * sha256 of 64 chunks of 64 KiB spread evenly over it (the whole file when smaller than that). Sizes alone missed a
 * re-trained component: a fine-tuned VAE exported with the same config has files of the same size, and its cached
 * latents would have been the old ones'. Sampling keeps this at ≤ 4 MiB read per file (T5-XXL's are GBs); a change
 * in training touches every tensor, so every chunk.
 */
export function componentId(dir: string): string {
  const files = fs.readdirSync(dir).sort();
  return files
    .map((f) => {
      const p = path.join(dir, f);
      if (f.endsWith('.json')) return `${f}:${fs.readFileSync(p, 'utf8')}`;
      const st = fs.statSync(p);
      return st.isFile() ? `${f}:${st.size}:${sampledHash(p, st.size)}` : `${f}:dir`;
    })
    .join('|');
}

const CHUNKS = 64;
const CHUNK = 64 * 1024;

function sampledHash(file: string, size: number): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(CHUNK);
    const read = (pos: number, len: number) => h.update(buf.subarray(0, fs.readSync(fd, buf, 0, len, pos)));
    if (size <= CHUNKS * CHUNK) {
      for (let pos = 0; pos < size; pos += CHUNK) read(pos, Math.min(CHUNK, size - pos));
    } else {
      for (let i = 0; i < CHUNKS; i++) read(Math.floor(((size - CHUNK) * i) / (CHUNKS - 1)), CHUNK);
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex').slice(0, 16);
}

export class DiskCache {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }
  private file(kind: string, key: string): string {
    return path.join(this.dir, kind, `${key}.safetensors`);
  }
  get(kind: string, key: string): Map<string, { data: Float32Array; shape: number[] }> | null {
    const p = this.file(kind, key);
    if (!fs.existsSync(p)) return null;
    const f = SafetensorsFile.open(p);
    try {
      return new Map(f.keys().map((k) => [k, { data: f.read(k).toFloat32().slice(), shape: f.entry(k).shape.slice() }]));
    } finally {
      f.close();
    }
  }
  put(kind: string, key: string, tensors: Record<string, { data: Float32Array; shape: number[] }>): void {
    fs.mkdirSync(path.join(this.dir, kind), { recursive: true });
    saveSafetensors(this.file(kind, key), Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }])));
  }
}

// Whole encoder calls as tensor ops (no tape: the same numbers, max |Δ| 6e-6 on the demo VAE) are about twice as fast
// as the frame-by-frame streaming path on small videos (demo VAE, 8 × 17 × 64 × 96, 2 shared cores: 4.1–5.5 s vs
// 7.9–10.4 s), but hold whole-chunk activations: taken while the first block's activation of the batch stays under this.
const OPS_ENCODE_BYTES = 256 * 2 ** 20;

/** Encoder options for pixels [B, 3, F, H, W]: the tensor-ops path for small batches, streaming otherwise (and with
 *  tiling on, which runs on the streaming path only). */
export function trainingEncodeOptions(vae: AutoencoderKLCogVideoX, shape: readonly number[]): { differentiable: boolean } {
  const [B, , F, H, W] = shape as [number, number, number, number, number];
  return { differentiable: !vae.tiling && B * F * H * W * vae.config.block_out_channels[0]! * 4 <= OPS_ENCODE_BYTES };
}

/** VAE moments of [F, 3, H, W] pixels (one sample) as [1, 2C, f, h, w]. */
export function encodeMoments(vae: AutoencoderKLCogVideoX, pixels: Float32Array, shape: [number, number, number]): { data: Float32Array; shape: number[] } {
  const [F, H, W] = shape;
  const x = tf.tidy(() => tf.transpose(tf.tensor(pixels, [1, F, 3, H, W]), [0, 2, 1, 3, 4]) as tf.Tensor5D);
  const dist = vae.encode(x, trainingEncodeOptions(vae, x.shape));
  x.dispose();
  const out = { data: Float32Array.from(dist.moments.dataSync() as Float32Array), shape: dist.moments.shape.slice() };
  dist.dispose();
  return out;
}
