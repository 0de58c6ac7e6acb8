// AutoencoderKLCogVideoX as CogVideoX-Fun runs it (CogVideoX-Fun cogvideox/models/autoencoder_magvit.py: diffusers'
// autoencoder_kl_cogvideox.py with Fun's own Upsample3D and decode chunking):
//   encode(x [B,3,F,H,W] in [−1,1]) → posterior over latents [B,16,T,h,w], T = (F−1)/4+1, h = H/8;
//   decode(z [B,16,T,h,w]) → frames [B,3,F,H,W]; z is latents / scaling_factor (the caller scales).
//   Time is split into encoder / decoder calls as the reference does (vae/chunking.ts: 'fun' or 'diffusers' decoding).
// The blocks are written once (vae/blocks.ts) over an execution strategy from src/nn/vae; two strategies, with the
// same numbers:
//   streaming (inference, the default; vae/stream.ts): every call runs frame by frame, so no chunk-sized tensor exists,
//     and a layer's kept frames go to host memory beyond a device budget — the real model decodes 384×672 untiled in
//     2.8 GiB of wasm heap (measured). encodeAsync / decodeAsync hand the event loop back between blocks and stop on
//     an AbortSignal.
//   tensor ops (vae/differentiable.ts): whole calls as differentiable ops with weights looked up by checkpoint name —
//     taken under a gradient tape (tf.grad, tf.variableGrads), when `params` overrides weights, or on request.
// Tiling (enableTiling) and slicing follow the reference literally (tiling changes the numbers; slicing does not:
// batch elements always run one at a time on the streaming path).
import * as tf from '@tensorflow/tfjs-core';
import { keptActivationBudget } from '../nn/conv.js';
import { readConfig, WeightStore } from '../weights/checkpoint.js';
import type { HostTensor } from '../weights/host_tensor.js';
import { temporalLevels, validateVaeConfig, vaeExpectedShapes, vaeLayout, type VaeConfig } from '../weights/vae_names.js';
import { FramePool } from '../nn/vae/frames.js';
import type { RunContext } from '../nn/vae/stream_conv.js';
import type { DecodeChunking } from './vae/chunking.js';
import { decodeOps, encodeOps, type OpsRun } from './vae/differentiable.js';
import { checkLatents, checkPixels } from './vae/inputs.js';
import { DiagonalGaussianDistribution } from './vae/posterior.js';
import { runSteps, runStepsAsync } from './vae/passes.js';
import { decodeCrop, encodeCrop, stackHost, type HostVideo, type OnOutput } from './vae/stream.js';
import { tiledDecode, tiledEncode, type TileParams } from './vae/tiling.js';
import { allParts, buildDecoder, buildEncoder, namesFactory, streamFactory, type DecoderW, type EncoderW } from './vae/weights.js';

export type { VaeConfig };
export { DiagonalGaussianDistribution };
export { decodeCalls, encodeChunks } from './vae/chunking.js';

export interface VaeRunOptions {
  /** Bytes of kept intermediate frames allowed on the backend before they move to host memory.
   *  Default: 256 MiB on wasm (its heap is capped at 4 GiB), unlimited on tensorflow. Streaming path only. */
  deviceFrameBudget?: number;
  /**
   * Receives each encoder / decoder call's block outputs as [B, C, t, H, W] (names as in the reference module tree:
   * 'conv_in', 'down_blocks.1', 'mid_block', 'up_blocks.0', 'conv_out', …); `call` counts calls from 0 (on the
   * streaming path per batch element, with B = 1). The tensor is disposed after the callback returns. Not called
   * for tiled runs.
   */
  onOutput?: OnOutput;
  /** When given, receives wall milliseconds per kind of work ('conv3d', 'norm+silu', 'store+moments', …). */
  profile?: Record<string, number>;
  /**
   * Parameter overrides by checkpoint name (e.g. 'decoder.conv_in.conv.weight'), in torch layout, float32,
   * caller-owned — e.g. trainable tf.Variables; names it returns undefined for come from the checkpoint. Runs the
   * tensor-ops path.
   */
  params?: (name: string) => tf.Tensor | undefined;
  /** Run whole calls as differentiable tensor ops. Taken anyway under an active gradient tape or with `params`. */
  differentiable?: boolean;
}

export interface DecodeOptions extends VaeRunOptions {
  chunking?: DecodeChunking;
}

export interface CancelOptions {
  /** Checked between blocks; on abort, everything made so far is disposed and the signal's reason is thrown. */
  signal?: AbortSignal;
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
  /** peak bytes of kept intermediate frames on the backend / in host memory during the last streaming encode or decode */
  peakDeviceFrameBytes: number;
  peakHostFrameBytes: number;
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
  private shapes: Map<string, number[]> | null = null;

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
    validateVaeConfig(config, `${dir}/config.json`);
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
    if (part !== 'decoder') for (const p of allParts(this.encoder())) p.use(() => undefined);
    if (part !== 'encoder') for (const p of allParts(this.decoder())) p.use(() => undefined);
  }

  /** Frees the weights of one half, uploaded or held in host memory (they are read again if it is used later). */
  release(part: 'encoder' | 'decoder' | 'both' = 'both'): void {
    for (const [name] of vaeExpectedShapes(this.config, part)) this.hostWeights.delete(name);
    if (part !== 'decoder' && this.encoderW) {
      allParts(this.encoderW).forEach((p) => p.release());
      this.encoderW = null;
    }
    if (part !== 'encoder' && this.decoderW) {
      allParts(this.decoderW).forEach((p) => p.release());
      this.decoderW = null;
    }
  }

  dispose(): void {
    this.release('both');
    this.hostWeights.clear();
    this.store.close();
  }

  /** Checkpoint names of every parameter (encoder then decoder, in module order), as `params` and readParameter take. */
  parameterNames(): string[] {
    return [...this.expectedShapes().keys()];
  }

  /** A parameter as a new float32 tensor in torch layout (the caller owns it), e.g. to initialise a tf.Variable. */
  readParameter(name: string): tf.Tensor {
    const shape = this.expectedShapes().get(name);
    if (!shape) throw new Error(`readParameter: "${name}" is not a parameter of this VAE (see parameterNames())`);
    return tf.tensor(this.weight(name).toFloat32(), shape, 'float32');
  }

  // -------------------------------------------------------------------------------------------------------------
  // encode

  /** x [B, in_channels, F, H, W] (pixels in [−1, 1]) → posterior over [B, latent, T, H/8, W/8]. */
  encode(x: tf.Tensor5D, opts: VaeRunOptions = {}): DiagonalGaussianDistribution {
    checkPixels(this.config, x);
    if (this.differentiable(opts)) return new DiagonalGaussianDistribution(this.encodeWithOps(x, opts));
    return new DiagonalGaussianDistribution(runSteps(this.encodeSteps(x, opts)));
  }

  /** The same as encode: the posterior, whose mean / logvar / kl() serve a training loss. */
  encodeDistribution(x: tf.Tensor5D, opts: VaeRunOptions = {}): DiagonalGaussianDistribution {
    return this.encode(x, opts);
  }

  /** encode, handing the event loop back between blocks and stopping when `signal` aborts. */
  async encodeAsync(x: tf.Tensor5D, opts: VaeRunOptions & CancelOptions = {}): Promise<DiagonalGaussianDistribution> {
    checkPixels(this.config, x);
    opts.signal?.throwIfAborted();
    if (this.differentiable(opts)) return new DiagonalGaussianDistribution(this.encodeWithOps(x, opts));
    return new DiagonalGaussianDistribution(await runStepsAsync(this.encodeSteps(x, opts), opts.signal));
  }

  private *encodeSteps(x: tf.Tensor5D, opts: VaeRunOptions): Generator<void, tf.Tensor5D> {
    const [B, , , H, W] = x.shape;
    const w = this.encoder();
    const ctx = this.context(opts);
    const parts: HostVideo[] = [];
    for (let b = 0; b < B; b++) {
      const tiled = this.useTiling && (W > this.tileSampleMinWidth || H > this.tileSampleMinHeight);
      parts.push(tiled ? yield* tiledEncode(ctx, w, x, b, this.tileParams()) : yield* encodeCrop(ctx, w, x, { b, i: 0, j: 0, h: H, w: W }, opts.onOutput));
    }
    this.noteStats(ctx.pool);
    return stackHost(parts);
  }

  private encodeWithOps(x: tf.Tensor5D, opts: VaeRunOptions): tf.Tensor5D {
    const [, , , H, W] = x.shape;
    if (this.useTiling && (W > this.tileSampleMinWidth || H > this.tileSampleMinHeight)) {
      throw new Error('encode: tiling runs on the streaming path only (disableTiling() to differentiate or override parameters)');
    }
    const { config: c } = this;
    return encodeOps(buildEncoder(vaeLayout(c).encoder, namesFactory(c.norm_num_groups), c.norm_eps), x, this.opsRun(opts));
  }

  // -------------------------------------------------------------------------------------------------------------
  // decode

  /** z [B, latent, T, h, w] (latents / scaling_factor) → frames [B, out_channels, F, 8h, 8w]. */
  decode(z: tf.Tensor5D, opts: DecodeOptions = {}): tf.Tensor5D {
    const chunking = checkLatents(this.config, z, opts.chunking);
    if (this.differentiable(opts)) return this.decodeWithOps(z, chunking, opts);
    return runSteps(this.decodeSteps(z, chunking, opts));
  }

  /** decode, handing the event loop back between blocks and stopping when `signal` aborts. */
  async decodeAsync(z: tf.Tensor5D, opts: DecodeOptions & CancelOptions = {}): Promise<tf.Tensor5D> {
    const chunking = checkLatents(this.config, z, opts.chunking);
    opts.signal?.throwIfAborted();
    if (this.differentiable(opts)) return this.decodeWithOps(z, chunking, opts);
    return runStepsAsync(this.decodeSteps(z, chunking, opts), opts.signal);
  }

  private *decodeSteps(z: tf.Tensor5D, chunking: DecodeChunking, opts: VaeRunOptions): Generator<void, tf.Tensor5D> {
    const [B, , , h, w] = z.shape;
    const wts = this.decoder();
    const ctx = this.context(opts);
    const parts: HostVideo[] = [];
    for (let b = 0; b < B; b++) {
      const tiled = this.useTiling && (w > this.tileLatentMinWidth || h > this.tileLatentMinHeight);
      parts.push(
        tiled ? yield* tiledDecode(ctx, wts, z, b, chunking, this.tileParams()) : yield* decodeCrop(ctx, wts, z, { b, i: 0, j: 0, h, w }, chunking, opts.onOutput),
      );
    }
    this.noteStats(ctx.pool);
    return stackHost(parts);
  }

  private decodeWithOps(z: tf.Tensor5D, chunking: DecodeChunking, opts: VaeRunOptions): tf.Tensor5D {
    const [, , , h, w] = z.shape;
    if (this.useTiling && (w > this.tileLatentMinWidth || h > this.tileLatentMinHeight)) {
      throw new Error('decode: tiling runs on the streaming path only (disableTiling() to differentiate or override parameters)');
    }
    const { config: c } = this;
    return decodeOps(buildDecoder(vaeLayout(c).decoder, namesFactory(c.norm_num_groups), c.norm_eps), z, chunking, this.opsRun(opts));
  }

  // -------------------------------------------------------------------------------------------------------------

  private differentiable(opts: VaeRunOptions): boolean {
    return opts.differentiable === true || opts.params !== undefined || tf.engine().isTapeOn();
  }

  /** Weights for the tensor-ops path: the caller's overrides (checked), else the checkpoint's, uploaded per call. */
  private opsRun(opts: VaeRunOptions): OpsRun {
    const shapes = this.expectedShapes();
    const uploaded = new Map<string, tf.Tensor>();
    const p = (name: string): tf.Tensor => {
      const shape = shapes.get(name)!;
      const o = opts.params?.(name);
      if (o !== undefined) {
        if (!(o instanceof tf.Tensor)) throw new Error(`params("${name}") must return a tf.Tensor or undefined`);
        if (o.dtype !== 'float32') throw new Error(`params("${name}") is ${o.dtype}, expected float32`);
        if (o.shape.length !== shape.length || o.shape.some((d, i) => d !== shape[i])) {
          throw new Error(`params("${name}") has shape [${o.shape.join(', ')}], the checkpoint's is [${shape.join(', ')}] (torch layout)`);
        }
        return o;
      }
      let t = uploaded.get(name);
      if (!t) {
        t = tf.tensor(this.weight(name).toFloat32(), shape, 'float32');
        uploaded.set(name, t);
      }
      return t;
    };
    return { p, onBlock: opts.onOutput };
  }

  private context(opts: VaeRunOptions): RunContext {
    return { pool: new FramePool(opts.deviceFrameBudget ?? keptActivationBudget()), keepCaches: true, profile: opts.profile };
  }

  private tileParams(): TileParams {
    const { tileSampleMinHeight, tileSampleMinWidth, tileLatentMinHeight, tileLatentMinWidth, tileOverlapFactorHeight, tileOverlapFactorWidth } = this;
    return { tileSampleMinHeight, tileSampleMinWidth, tileLatentMinHeight, tileLatentMinWidth, tileOverlapFactorHeight, tileOverlapFactorWidth };
  }

  private noteStats(pool: FramePool): void {
    this.lastRunStats = { peakDeviceFrameBytes: pool.peakDeviceBytes, peakHostFrameBytes: pool.peakHostBytes };
  }

  private expectedShapes(): Map<string, number[]> {
    this.shapes ??= vaeExpectedShapes(this.config);
    return this.shapes;
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
    this.encoderW ??= buildEncoder(vaeLayout(this.config).encoder, streamFactory((n) => this.weight(n), this.config.norm_num_groups, resident), this.config.norm_eps);
    return this.encoderW;
  }

  private decoder(): DecoderW {
    const resident = this.weightResidency === 'resident';
    this.decoderW ??= buildDecoder(vaeLayout(this.config).decoder, streamFactory((n) => this.weight(n), this.config.norm_num_groups, resident), this.config.norm_eps);
    return this.decoderW;
  }
}
