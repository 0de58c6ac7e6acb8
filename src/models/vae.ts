// AutoencoderKLCogVideoX as CogVideoX-Fun runs it (cogvideox/models/autoencoder_magvit.py; spec §3):
//   encode(x [B,3,F,H,W] in [−1,1]) → posterior over latents [B,16,T,h,w], T = (F−1)/4+1, h = H/8;
//     frames are encoded in chunks of 8 with the first chunk taking the remainder (49 → 9,8,8,8,8,8).
//   decode(z [B,16,T,h,w]) → frames [B,3,F,H,W]; z is latents / scaling_factor (the caller scales).
//     chunking 'fun' (default, what the Fun pipelines run): latent frame 0 alone with the Upsample3D first-frame flag,
//       then pairs (1,2), (3,4), … → 1 + 8 + 8 + … (+4 for a trailing single frame) frames.
//     chunking 'diffusers' (diffusers v0.32.2's own VAE): (0,1,2), (3,4), … for odd T; (0,1), (2,3), … for even.
//   GroupNorm statistics and causal-conv context are per chunk, so the chunking defines the numbers.
// Every chunk runs frame by frame (see vae/blocks.ts): no chunk-sized tensor exists, and a layer's kept frames go to
// host memory beyond a device budget, so the real model decodes 384×672 untiled in 2.8 GiB of wasm heap (measured)
// with the numbers of the unchunked computation.
// Tiling (enableTiling) and slicing follow the reference literally (tiling changes the numbers; slicing does not:
// batch elements always run one at a time here).
import * as tf from '@tensorflow/tfjs-core';
import { keptActivationBudget } from '../nn/conv.js';
import { readConfig, WeightStore } from '../weights/checkpoint.js';
import type { HostTensor } from '../weights/host_tensor.js';
import { temporalLevels, vaeExpectedShapes, vaeLayout, type VaeConfig } from '../weights/vae_names.js';
import { disposeCaches, type ConvCaches, type RunContext, type UpsampleMode } from './vae/blocks.js';
import { decoderCall, disposeDecoder, disposeEncoder, encoderCall, loadDecoder, loadEncoder, type DecoderW, type EncoderW, type Part } from './vae/coder.js';
import { FramePool, FrameSeq } from './vae/frames.js';

export type { VaeConfig };

export interface VaeRunOptions {
  /**
   * 'frame' (default): each chunk runs frame by frame, statistics merged per frame — bounded memory.
   * 'chunk': each chunk runs as one tensor, as the reference does — for comparisons and small inputs.
   */
  mode?: 'frame' | 'chunk';
  /** Bytes of kept intermediate frames allowed on the backend before they move to host memory.
   *  Default: 256 MiB on wasm (its heap is capped at 4 GiB), unlimited on tensorflow. */
  deviceFrameBudget?: number;
  /**
   * Receives each encoder / decoder call's block outputs as [1, C, t, H, W] (names as in the reference module tree:
   * 'conv_in', 'down_blocks.1', 'mid_block', 'up_blocks.0', 'conv_out', …); `call` counts calls from 0 per batch
   * element. The tensor is disposed after the callback returns. Not called for tiled runs.
   */
  onOutput?: (name: string, call: number, t: tf.Tensor5D) => void;
  /** When given, receives wall milliseconds per kind of work ('conv3d', 'norm+silu', 'store+moments', …). */
  profile?: Record<string, number>;
}

export interface DecodeOptions extends VaeRunOptions {
  chunking?: 'fun' | 'diffusers';
}

export interface TilingOptions {
  tileSampleMinHeight?: number;
  tileSampleMinWidth?: number;
  tileOverlapFactorHeight?: number;
  tileOverlapFactorWidth?: number;
}

export interface VaeLoadOptions {
  /**
   * 'resident': every weight is uploaded once, on first use, and stays (fastest; the real VAE is 0.86 GB in fp32).
   * 'block' (default): each ResNet block's weights are uploaded when a call reaches it and freed after; the
   * checkpoint's tensors stay in host memory as stored (bf16: 0.43 GB). The backend then holds one block's weights
   * (and its packed copies: XNNPACK's on wasm, oneDNN's on tensorflow) at a time — measured 0.6 GB less peak RSS on
   * tensorflow for a decode — for one upload per block and call (~1–2 s per call at full size).
   */
  weights?: 'resident' | 'block';
}

export interface RunStats {
  /** peak bytes of kept intermediate frames on the backend / in host memory during the last encode or decode */
  peakDeviceFrameBytes: number;
  peakHostFrameBytes: number;
}

/** A video in host memory, [C, T, H, W] row-major (one batch element). */
interface HostVideo {
  data: Float32Array;
  c: number;
  t: number;
  h: number;
  w: number;
}

const SAMPLE_FRAME_BATCH = 8; // num_sample_frames_batch_size
const LATENT_FRAME_BATCH = 2; // num_latent_frames_batch_size

/** Diagonal Gaussian posterior of the encoder (diffusers DiagonalGaussianDistribution). Owns its tensors. */
export class DiagonalGaussianDistribution {
  readonly mean: tf.Tensor5D;
  /** clamp(moments[:, C:], −30, 20) */
  readonly logvar: tf.Tensor5D;
  /** exp(0.5·logvar) */
  readonly std: tf.Tensor5D;

  /** moments [B, 2C, T, h, w] = [mean ‖ logvar] (taken over). */
  constructor(readonly moments: tf.Tensor5D) {
    const [B, C2, T, h, w] = moments.shape;
    const C = C2 / 2;
    this.mean = tf.slice(moments, [0, 0, 0, 0, 0], [B, C, T, h, w]) as tf.Tensor5D;
    this.logvar = tf.tidy(() => tf.clipByValue(tf.slice(moments, [0, C, 0, 0, 0], [B, C, T, h, w]), -30, 20));
    this.std = tf.tidy(() => tf.exp(tf.mul(this.logvar, 0.5)) as tf.Tensor5D);
  }

  /** The mean (a new tensor). */
  mode(): tf.Tensor5D {
    return tf.clone(this.mean);
  }

  /**
   * mean + std·ε. ε is `noise` if given (e.g. the draw of torch.randn, for parity), else `randn(shape)`, else
   * tf.randomNormal (seeded by `seed` when given). tfjs' generator is not torch's: seeds do not reproduce PyTorch.
   */
  sample(opts: { noise?: tf.Tensor; randn?: (shape: number[]) => tf.Tensor; seed?: number } = {}): tf.Tensor5D {
    const shape = this.mean.shape;
    return tf.tidy(() => {
      const eps = opts.noise ?? opts.randn?.(shape) ?? tf.randomNormal(shape, 0, 1, 'float32', opts.seed);
      if (eps.shape.length !== shape.length || eps.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`posterior sample: noise shape [${eps.shape.join(', ')}] differs from the latents' [${shape.join(', ')}]`);
      }
      return tf.add(this.mean, tf.mul(this.std, eps)) as tf.Tensor5D;
    });
  }

  dispose(): void {
    this.moments.dispose();
    this.mean.dispose();
    this.logvar.dispose();
    this.std.dispose();
  }
}

export class AutoencoderKLCogVideoX {
  private encoderW: EncoderW | null = null;
  private decoderW: DecoderW | null = null;
  private useTiling = false;
  private useSlicing = false;
  /** tiling parameters, named as in the reference */
  tileSampleMinHeight: number;
  tileSampleMinWidth: number;
  tileLatentMinHeight: number;
  tileLatentMinWidth: number;
  tileOverlapFactorHeight = 1 / 6;
  tileOverlapFactorWidth = 1 / 5;
  lastRunStats: RunStats = { peakDeviceFrameBytes: 0, peakHostFrameBytes: 0 };

  private readonly hostWeights = new Map<string, HostTensor>();

  private constructor(
    readonly config: VaeConfig,
    private readonly store: WeightStore,
    readonly weightResidency: 'resident' | 'block',
  ) {
    this.tileSampleMinHeight = Math.floor(config.sample_height / 2);
    this.tileSampleMinWidth = Math.floor(config.sample_width / 2);
    this.tileLatentMinHeight = Math.trunc(this.tileSampleMinHeight / this.spatialCompression);
    this.tileLatentMinWidth = Math.trunc(this.tileSampleMinWidth / this.spatialCompression);
  }

  /**
   * Loads a `vae` folder (config.json + diffusion_pytorch_model.safetensors). Config and tensor names / shapes are
   * checked now (headers only); the weights are read and uploaded on the first encode / decode.
   */
  static async fromPretrained(dir: string, opts: VaeLoadOptions = {}): Promise<AutoencoderKLCogVideoX> {
    const config = readConfig<VaeConfig>(dir);
    validateConfig(config, dir);
    const weights = opts.weights ?? 'block';
    if (weights !== 'resident' && weights !== 'block') throw new Error(`unknown weights residency "${weights as string}" (resident | block)`);
    const store = WeightStore.open(dir);
    try {
      store.expect(vaeExpectedShapes(config));
      return new AutoencoderKLCogVideoX(config, store, weights);
    } catch (e) {
      store.close();
      throw e;
    }
  }

  get scalingFactor(): number {
    return this.config.scaling_factor;
  }

  /** Pixels per latent pixel: 2^(number of blocks − 1) = 8. */
  get spatialCompression(): number {
    return 2 ** (this.config.block_out_channels.length - 1);
  }

  get temporalCompression(): number {
    return 2 ** temporalLevels(this.config);
  }

  /** As diffusers' enable_tiling: arguments that are not given (or 0) keep their value. */
  enableTiling(opts: TilingOptions = {}): void {
    this.useTiling = true;
    this.tileSampleMinHeight = opts.tileSampleMinHeight || this.tileSampleMinHeight;
    this.tileSampleMinWidth = opts.tileSampleMinWidth || this.tileSampleMinWidth;
    this.tileLatentMinHeight = Math.trunc(this.tileSampleMinHeight / this.spatialCompression);
    this.tileLatentMinWidth = Math.trunc(this.tileSampleMinWidth / this.spatialCompression);
    this.tileOverlapFactorHeight = opts.tileOverlapFactorHeight || this.tileOverlapFactorHeight;
    this.tileOverlapFactorWidth = opts.tileOverlapFactorWidth || this.tileOverlapFactorWidth;
  }

  disableTiling(): void {
    this.useTiling = false;
  }

  /** Batch elements one at a time. They always are here (the numbers do not change); kept for API parity. */
  enableSlicing(): void {
    this.useSlicing = true;
  }

  disableSlicing(): void {
    this.useSlicing = false;
  }

  get slicing(): boolean {
    return this.useSlicing;
  }

  get tiling(): boolean {
    return this.useTiling;
  }

  /** Reads (and, when resident, uploads) the encoder / decoder weights now rather than on first use. */
  load(part: 'encoder' | 'decoder' | 'both' = 'both'): void {
    for (const [name] of vaeExpectedShapes(this.config, part)) this.weight(name);
    if (this.weightResidency !== 'resident') return;
    const parts: Part<unknown>[] = [];
    if (part !== 'decoder') {
      const e = this.encoder();
      parts.push(e.convIn, ...e.down.flatMap((b) => [...b.resnets, ...(b.downsample ? [b.downsample] : [])]), ...e.mid, e.convOut);
    }
    if (part !== 'encoder') {
      const d = this.decoder();
      parts.push(d.convIn, ...d.mid, ...d.up.flatMap((b) => [...b.resnets, ...(b.upsample ? [b.upsample] : [])]), d.normOut, d.convOut);
    }
    for (const p of parts) p.use(() => undefined);
  }

  /** Frees the weights of one half, uploaded or held in host memory (they are read again if it is used later). */
  release(part: 'encoder' | 'decoder' | 'both' = 'both'): void {
    for (const [name] of vaeExpectedShapes(this.config, part)) this.hostWeights.delete(name);
    if (part !== 'decoder' && this.encoderW) {
      disposeEncoder(this.encoderW);
      this.encoderW = null;
    }
    if (part !== 'encoder' && this.decoderW) {
      disposeDecoder(this.decoderW);
      this.decoderW = null;
    }
  }

  dispose(): void {
    this.release('both');
    this.hostWeights.clear();
    this.store.close();
  }

  // -------------------------------------------------------------------------------------------------------------
  // encode

  /** x [B, in_channels, F, H, W] (pixels in [−1, 1]) → posterior over [B, latent, T, H/8, W/8]. */
  encode(x: tf.Tensor5D, opts: VaeRunOptions = {}): DiagonalGaussianDistribution {
    const c = this.config;
    const [B, C, F, H, W] = checkRank5(x, 'encode: x');
    const s = this.spatialCompression;
    if (C !== c.in_channels) throw new Error(`encode: x has ${C} channels, the VAE takes ${c.in_channels} ([B, C, F, H, W])`);
    if (F < 1) throw new Error('encode: x has 0 frames');
    if (H < 1 || W < 1) throw new Error(`encode: x has an empty ${H}×${W} frame`);
    if (H % s !== 0 || W % s !== 0) throw new Error(`encode: H and W must be multiples of ${s}, got ${H}×${W}`);
    checkFinite(x, 'encode: x');
    const w = this.encoder();
    const parts: HostVideo[] = [];
    const pool = this.pool(opts);
    for (let b = 0; b < B; b++) {
      const tiled = this.useTiling && (W > this.tileSampleMinWidth || H > this.tileSampleMinHeight);
      parts.push(tiled ? this.tiledEncode(w, x, b, pool, opts) : this.encodeCrop(w, x, b, 0, 0, H, W, pool, opts));
    }
    this.noteStats(pool);
    return new DiagonalGaussianDistribution(stackHost(parts));
  }

  /** Fun's _encode on x[b, :, :, i:i+h, j:j+w]: chunks of 8 frames, the first taking the remainder. */
  private encodeCrop(w: EncoderW, x: tf.Tensor5D, b: number, i: number, j: number, h: number, wd: number, pool: FramePool, opts: VaeRunOptions): HostVideo {
    const F = x.shape[2];
    const chunks = encodeChunks(F);
    const ctx: RunContext = { pool, mode: opts.mode ?? 'frame', keepCaches: true, profile: opts.profile };
    const caches: ConvCaches = new Map();
    const out: FrameSeq[] = [];
    try {
      for (const [k, [start, end]] of chunks.entries()) {
        ctx.keepCaches = k < chunks.length - 1;
        const seq = new FrameSeq(pool, x.shape[1], false);
        for (let f = start; f < end; f++) seq.push(pixelFrame(x, b, f, i, j, h, wd));
        out.push(encoderCall(ctx, w, seq, caches, opts.onOutput ? hook(opts.onOutput, k) : undefined));
      }
      return seqsToHost(out);
    } finally {
      out.forEach((s) => s.dispose());
      disposeCaches(caches);
    }
  }

  private tiledEncode(w: EncoderW, x: tf.Tensor5D, b: number, pool: FramePool, opts: VaeRunOptions): HostVideo {
    const [, , , H, W] = x.shape;
    const overlapH = Math.trunc(this.tileSampleMinHeight * (1 - this.tileOverlapFactorHeight));
    const overlapW = Math.trunc(this.tileSampleMinWidth * (1 - this.tileOverlapFactorWidth));
    const blendH = Math.trunc(this.tileLatentMinHeight * this.tileOverlapFactorHeight);
    const blendW = Math.trunc(this.tileLatentMinWidth * this.tileOverlapFactorWidth);
    const limitH = this.tileLatentMinHeight - blendH;
    const limitW = this.tileLatentMinWidth - blendW;
    if (overlapH < 1 || overlapW < 1) throw new Error(`tiled encode: a tile of ${this.tileSampleMinHeight}×${this.tileSampleMinWidth} leaves no stride`);
    const run: VaeRunOptions = { ...opts, onOutput: undefined };
    const rows: HostVideo[][] = [];
    for (let i = 0; i < H; i += overlapH) {
      const row: HostVideo[] = [];
      for (let j = 0; j < W; j += overlapW) {
        row.push(this.encodeCrop(w, x, b, i, j, Math.min(this.tileSampleMinHeight, H - i), Math.min(this.tileSampleMinWidth, W - j), pool, run));
      }
      rows.push(row);
    }
    return blendTiles(rows, blendH, blendW, limitH, limitW);
  }

  // -------------------------------------------------------------------------------------------------------------
  // decode

  /** z [B, latent, T, h, w] (latents / scaling_factor) → frames [B, out_channels, F, 8h, 8w]. */
  decode(z: tf.Tensor5D, opts: DecodeOptions = {}): tf.Tensor5D {
    const c = this.config;
    const [B, C, T, h, w] = checkRank5(z, 'decode: z');
    if (C !== c.latent_channels) throw new Error(`decode: z has ${C} channels, the VAE's latents have ${c.latent_channels} ([B, C, T, h, w])`);
    if (T < 1) throw new Error('decode: z has 0 latent frames');
    if (h < 1 || w < 1) throw new Error(`decode: z has an empty ${h}×${w} latent frame`);
    const chunking = opts.chunking ?? 'fun';
    if (chunking !== 'fun' && chunking !== 'diffusers') throw new Error(`decode: unknown chunking "${chunking as string}" (fun | diffusers)`);
    checkFinite(z, 'decode: z');
    const wts = this.decoder();
    const pool = this.pool(opts);
    const parts: HostVideo[] = [];
    for (let b = 0; b < B; b++) {
      const tiled = this.useTiling && (w > this.tileLatentMinWidth || h > this.tileLatentMinHeight);
      parts.push(tiled ? this.tiledDecode(wts, z, b, chunking, pool, opts) : this.decodeCrop(wts, z, b, 0, 0, h, w, chunking, pool, opts));
    }
    this.noteStats(pool);
    return stackHost(parts);
  }

  /** The decoder calls of one chunking on z[b, :, :, i:i+h, j:j+w]. */
  private decodeCrop(
    wts: DecoderW,
    z: tf.Tensor5D,
    b: number,
    i: number,
    j: number,
    h: number,
    w: number,
    chunking: 'fun' | 'diffusers',
    pool: FramePool,
    opts: VaeRunOptions,
  ): HostVideo {
    const T = z.shape[2];
    const calls = decodeCalls(T, chunking);
    const ctx: RunContext = { pool, mode: opts.mode ?? 'frame', keepCaches: true, profile: opts.profile };
    const caches: ConvCaches = new Map();
    const out: HostVideo[] = [];
    try {
      calls.forEach(([start, end, mode], k) => {
        ctx.keepCaches = k < calls.length - 1;
        const zc = latentChunk(z, b, start, end, i, j, h, w);
        try {
          const seq = decoderCall(ctx, wts, zc, caches, mode, opts.onOutput ? hook(opts.onOutput, k) : undefined);
          try {
            out.push(seqsToHost([seq]));
          } finally {
            seq.dispose();
          }
        } finally {
          zc.dispose();
        }
      });
      return concatTime(out);
    } finally {
      disposeCaches(caches);
    }
  }

  private tiledDecode(wts: DecoderW, z: tf.Tensor5D, b: number, chunking: 'fun' | 'diffusers', pool: FramePool, opts: VaeRunOptions): HostVideo {
    const [, , , h, w] = z.shape;
    const overlapH = Math.trunc(this.tileLatentMinHeight * (1 - this.tileOverlapFactorHeight));
    const overlapW = Math.trunc(this.tileLatentMinWidth * (1 - this.tileOverlapFactorWidth));
    const blendH = Math.trunc(this.tileSampleMinHeight * this.tileOverlapFactorHeight);
    const blendW = Math.trunc(this.tileSampleMinWidth * this.tileOverlapFactorWidth);
    const limitH = this.tileSampleMinHeight - blendH;
    const limitW = this.tileSampleMinWidth - blendW;
    if (overlapH < 1 || overlapW < 1) throw new Error(`tiled decode: a latent tile of ${this.tileLatentMinHeight}×${this.tileLatentMinWidth} leaves no stride`);
    const run: VaeRunOptions = { ...opts, onOutput: undefined };
    const rows: HostVideo[][] = [];
    for (let i = 0; i < h; i += overlapH) {
      const row: HostVideo[] = [];
      for (let j = 0; j < w; j += overlapW) {
        row.push(this.decodeCrop(wts, z, b, i, j, Math.min(this.tileLatentMinHeight, h - i), Math.min(this.tileLatentMinWidth, w - j), chunking, pool, run));
      }
      rows.push(row);
    }
    return blendTiles(rows, blendH, blendW, limitH, limitW);
  }

  // -------------------------------------------------------------------------------------------------------------

  private pool(opts: VaeRunOptions): FramePool {
    const budget = opts.deviceFrameBudget ?? keptActivationBudget();
    return new FramePool(opts.mode === 'chunk' ? Infinity : budget);
  }

  private noteStats(pool: FramePool): void {
    this.lastRunStats = { peakDeviceFrameBytes: pool.peakDeviceBytes, peakHostFrameBytes: pool.peakHostBytes };
  }

  private get groups(): number {
    return this.config.norm_num_groups;
  }

  /** A checkpoint tensor as stored; per-block residency keeps them in host memory (they are read for every call). */
  private weight(name: string): HostTensor {
    if (this.weightResidency === 'resident') return this.store.read(name);
    let t = this.hostWeights.get(name);
    if (!t) {
      t = this.store.read(name);
      this.hostWeights.set(name, t);
    }
    return t;
  }

  private encoder(): EncoderW {
    const resident = this.weightResidency === 'resident';
    this.encoderW ??= loadEncoder(vaeLayout(this.config).encoder, (n) => this.weight(n), this.groups, this.config.norm_eps, resident);
    return this.encoderW;
  }

  private decoder(): DecoderW {
    const resident = this.weightResidency === 'resident';
    this.decoderW ??= loadDecoder(vaeLayout(this.config).decoder, (n) => this.weight(n), this.groups, this.config.norm_eps, resident);
    return this.decoderW;
  }
}

/** Decoder calls [start, end, upsample mode] over T latent frames. */
export function decodeCalls(T: number, chunking: 'fun' | 'diffusers'): [number, number, UpsampleMode][] {
  const calls: [number, number, UpsampleMode][] = [];
  if (chunking === 'fun') {
    calls.push([0, 1, 'fun-first']);
    for (let s = 1; s < T; s += LATENT_FRAME_BATCH) calls.push([s, Math.min(s + LATENT_FRAME_BATCH, T), 'fun']);
  } else {
    const n = Math.max(Math.floor(T / LATENT_FRAME_BATCH), 1);
    const r = T % LATENT_FRAME_BATCH;
    for (let k = 0; k < n; k++) {
      const start = LATENT_FRAME_BATCH * k + (k === 0 ? 0 : r);
      calls.push([start, Math.min(LATENT_FRAME_BATCH * (k + 1) + r, T), 'diffusers']);
    }
  }
  return calls;
}

/** Encoder chunks [start, end) over F pixel frames (Fun / diffusers _encode). */
export function encodeChunks(F: number): [number, number][] {
  const n = Math.max(Math.floor(F / SAMPLE_FRAME_BATCH), 1);
  const r = F % SAMPLE_FRAME_BATCH;
  return Array.from({ length: n }, (_, k) => [SAMPLE_FRAME_BATCH * k + (k === 0 ? 0 : r), Math.min(SAMPLE_FRAME_BATCH * (k + 1) + r, F)]);
}

function hook(fn: NonNullable<VaeRunOptions['onOutput']>, call: number) {
  return (name: string, seq: FrameSeq) => {
    const t = seq.toNCDHW();
    try {
      fn(name, call, t);
    } finally {
      t.dispose();
    }
  };
}

/** x[b, :, f, i:i+h, j:j+w] as an NHWC frame [1, h, w, C]. */
function pixelFrame(x: tf.Tensor5D, b: number, f: number, i: number, j: number, h: number, w: number): tf.Tensor4D {
  const C = x.shape[1];
  return tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(tf.slice(x, [b, 0, f, i, j], [1, C, 1, h, w]), [C, h, w]), [1, 2, 0]), [1, h, w, C]));
}

/** z[b, :, start:end, i:i+h, j:j+w] as channels-last frames [t, h, w, C]. */
function latentChunk(z: tf.Tensor5D, b: number, start: number, end: number, i: number, j: number, h: number, w: number): tf.Tensor4D {
  const C = z.shape[1];
  const t = end - start;
  return tf.tidy(() => tf.transpose(tf.reshape(tf.slice(z, [b, 0, start, i, j], [1, C, t, h, w]), [C, t, h, w]), [1, 2, 3, 0]));
}

/** Frames of sequences (in order) → a host video [C, T, H, W]. Consumes nothing. */
function seqsToHost(seqs: FrameSeq[]): HostVideo {
  const T = seqs.reduce((n, s) => n + s.length, 0);
  const { channels: c, height: h, width: w } = seqs[0]!;
  const data = new Float32Array(c * T * h * w);
  let f = 0;
  for (const s of seqs) {
    for (let k = 0; k < s.length; k++, f++) {
      const r = s.range(k, 1);
      const chw = tf.tidy(() => tf.transpose(tf.reshape(r.t, [h, w, c]), [2, 0, 1]));
      if (r.owned) r.t.dispose();
      const v = chw.dataSync() as Float32Array;
      chw.dispose();
      for (let ch = 0; ch < c; ch++) data.set(v.subarray(ch * h * w, (ch + 1) * h * w), (ch * T + f) * h * w);
    }
  }
  return { data, c, t: T, h, w };
}

function concatTime(parts: HostVideo[]): HostVideo {
  const { c, h, w } = parts[0]!;
  const T = parts.reduce((n, p) => n + p.t, 0);
  const data = new Float32Array(c * T * h * w);
  let f0 = 0;
  for (const p of parts) {
    for (let ch = 0; ch < c; ch++) data.set(p.data.subarray(ch * p.t * h * w, (ch + 1) * p.t * h * w), (ch * T + f0) * h * w);
    f0 += p.t;
  }
  return { data, c, t: T, h, w };
}

function stackHost(parts: HostVideo[]): tf.Tensor5D {
  const { c, t, h, w } = parts[0]!;
  const data = new Float32Array(parts.length * c * t * h * w);
  parts.forEach((p, b) => data.set(p.data, b * c * t * h * w));
  return tf.tensor5d(data, [parts.length, c, t, h, w]);
}

/**
 * The reference's blend-and-crop of a grid of tiles, literally: in row-major order, each tile is blended in place
 * with the (already blended) tile above, over `blendH` rows, and with the (already blended) tile on its left, over
 * `blendW` columns — b = a·(1 − y/E) + b·(y/E) in float32 — then cropped to limitH × limitW and concatenated.
 */
function blendTiles(rows: HostVideo[][], blendH: number, blendW: number, limitH: number, limitW: number): HostVideo {
  const f = Math.fround;
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < rows[i]!.length; j++) {
      const tile = rows[i]![j]!;
      if (i > 0) {
        const a = rows[i - 1]![j]!;
        const E = Math.min(a.h, tile.h, blendH);
        for (let y = 0; y < E; y++) {
          const w0 = f(1 - y / E);
          const w1 = f(y / E);
          for (let ct = 0; ct < tile.c * tile.t; ct++) {
            const ra = (ct * a.h + a.h - E + y) * a.w;
            const rb = (ct * tile.h + y) * tile.w;
            for (let x = 0; x < tile.w; x++) tile.data[rb + x] = f(f(a.data[ra + x]! * w0) + f(tile.data[rb + x]! * w1));
          }
        }
      }
      if (j > 0) {
        const a = rows[i]![j - 1]!;
        const E = Math.min(a.w, tile.w, blendW);
        for (let x = 0; x < E; x++) {
          const w0 = f(1 - x / E);
          const w1 = f(x / E);
          for (let r = 0; r < tile.c * tile.t * tile.h; r++) {
            const ia = r * a.w + a.w - E + x;
            const ib = r * tile.w + x;
            tile.data[ib] = f(f(a.data[ia]! * w0) + f(tile.data[ib]! * w1));
          }
        }
      }
    }
  }
  // crop and concatenate
  const first = rows[0]![0]!;
  const { c, t } = first;
  const rowH = rows.map((row) => Math.min(row[0]!.h, limitH));
  const colW = rows[0]!.map((tile) => Math.min(tile.w, limitW));
  const H = rowH.reduce((a, b) => a + b, 0);
  const W = colW.reduce((a, b) => a + b, 0);
  const data = new Float32Array(c * t * H * W);
  let y0 = 0;
  rows.forEach((row, i) => {
    let x0 = 0;
    row.forEach((tile, j) => {
      if (tile.t !== t || tile.c !== c) throw new Error('tiles differ in frame count');
      for (let ct = 0; ct < c * t; ct++) {
        for (let y = 0; y < rowH[i]!; y++) {
          const src = (ct * tile.h + y) * tile.w;
          data.set(tile.data.subarray(src, src + colW[j]!), (ct * H + y0 + y) * W + x0);
        }
      }
      x0 += colW[j]!;
    });
    y0 += rowH[i]!;
  });
  return { data, c, t, h: H, w: W };
}

function checkRank5(x: tf.Tensor, what: string): [number, number, number, number, number] {
  if (!(x instanceof tf.Tensor)) throw new Error(`${what} must be a tf.Tensor`);
  if (x.rank !== 5) throw new Error(`${what} must be rank 5 [B, C, T, H, W], got shape [${x.shape.join(', ')}]`);
  if (x.shape[0] === 0) throw new Error(`${what} has an empty batch`);
  return x.shape as [number, number, number, number, number];
}

function checkFinite(x: tf.Tensor, what: string): void {
  const v = x.dataSync();
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) {
      throw new Error(`${what} holds a non-finite value (${v[i]}) at flat index ${i}`);
    }
  }
}

function validateConfig(c: VaeConfig, dir: string): void {
  const file = `${dir}/config.json`;
  const posInt = (k: keyof VaeConfig) => {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) <= 0) throw new Error(`${file}: "${k}" must be a positive integer, got ${JSON.stringify(v)}`);
  };
  (['in_channels', 'out_channels', 'latent_channels', 'layers_per_block', 'norm_num_groups', 'sample_height', 'sample_width'] as const).forEach(posInt);
  if (!Array.isArray(c.block_out_channels) || c.block_out_channels.length < 1 || c.block_out_channels.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new Error(`${file}: "block_out_channels" must be a non-empty list of positive integers`);
  }
  const n = c.block_out_channels.length;
  for (const ch of c.block_out_channels) {
    if (ch % c.norm_num_groups !== 0) throw new Error(`${file}: block_out_channels ${ch} is not divisible by norm_num_groups ${c.norm_num_groups}`);
  }
  c.norm_eps ??= 1e-6;
  c.act_fn ??= 'silu';
  c.temporal_compression_ratio ??= 4;
  c.scaling_factor ??= 1.15258426;
  c.down_block_types ??= new Array<string>(n).fill('CogVideoXDownBlock3D');
  c.up_block_types ??= new Array<string>(n).fill('CogVideoXUpBlock3D');
  if (c.act_fn !== 'silu' && c.act_fn !== 'swish') throw new Error(`${file}: act_fn "${c.act_fn}" is not supported (only silu, as CogVideoX)`);
  if (c.down_block_types.length !== n || c.down_block_types.some((t) => t !== 'CogVideoXDownBlock3D')) {
    throw new Error(`${file}: down_block_types must be ${n} × "CogVideoXDownBlock3D"`);
  }
  if (c.up_block_types.length !== n || c.up_block_types.some((t) => t !== 'CogVideoXUpBlock3D')) {
    throw new Error(`${file}: up_block_types must be ${n} × "CogVideoXUpBlock3D"`);
  }
  const tl = Math.log2(c.temporal_compression_ratio);
  if (!Number.isInteger(tl) || tl < 0 || tl > n - 1) {
    throw new Error(`${file}: temporal_compression_ratio ${c.temporal_compression_ratio} must be a power of 2 up to 2^${n - 1}`);
  }
  if (c.use_quant_conv || c.use_post_quant_conv) throw new Error(`${file}: use_quant_conv / use_post_quant_conv are not supported (CogVideoX has neither)`);
}
