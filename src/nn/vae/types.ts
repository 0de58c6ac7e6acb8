// The operations the CogVideoX VAE (AutoencoderKLCogVideoX) is written in, and the contract its execution strategies
// implement. The model — ResNet block, encoder, decoder: the order of operations — lives once in
// src/models/vae/blocks.ts and names no strategy; a strategy decides where activations live and which kernels run:
//   stream_ops.ts — inference: frame lists, GroupNorm statistics accumulated as frames are made and applied in a
//     second pass, kept frames on the device or in host memory within a budget, the conv2d-per-tap kernels;
//   tensor_ops.ts — whole-chunk differentiable tensor ops with weights looked up by checkpoint name (gradients).

/** A group of weights, available while `use` runs (a strategy may upload it then and free it after). */
export interface Part<T> {
  use<R>(fn: (w: T) => R): R;
  release(): void;
}

/** The weight types of one strategy: a causal conv, a GroupNorm, a SpatialNorm3D, a down / up sampler. */
export interface VaeWeightKinds {
  conv: unknown;
  norm: unknown;
  snorm: unknown;
  resample: unknown;
}

/** CogVideoXResnetBlock3D's weights: GroupNorms (encoder) or SpatialNorm3Ds (decoder). */
export interface ResnetOf<W extends VaeWeightKinds> {
  norm1: W['norm'] | W['snorm'];
  conv1: W['conv'];
  norm2: W['norm'] | W['snorm'];
  conv2: W['conv'];
  shortcut: W['conv'] | null;
}

export interface EncoderOf<W extends VaeWeightKinds> {
  convIn: Part<W['conv']>;
  down: { resnets: Part<ResnetOf<W>>[]; downsample: Part<W['resample']> | null }[];
  mid: Part<ResnetOf<W>>[];
  normOut: W['norm'];
  convOut: Part<W['conv']>;
}

export interface DecoderOf<W extends VaeWeightKinds> {
  convIn: Part<W['conv']>;
  mid: Part<ResnetOf<W>>[];
  up: { resnets: Part<ResnetOf<W>>[]; upsample: Part<W['resample']> | null }[];
  normOut: Part<W['snorm']>;
  convOut: Part<W['conv']>;
}

/**
 * How the VAE's operations run. `X` is an activation (one call's frames at one layer), `A` a conv's input with its
 * activation function pending, `Z` the latent chunk a decoder call is conditioned on. Ownership: every operation
 * consumes the X / A it is given (`share` makes a second reference when a value is read twice); `free` releases an
 * X that is not consumed (error paths; releasing a consumed X again is harmless). Z stays the caller's.
 */
export interface VaeOps<X, A, Z, W extends VaeWeightKinds> {
  /** A second reference to x; x and the result are each consumed once. */
  share(x: X): X;
  free(x: X): void;
  /** The latent chunk as the decoder's first activation. */
  latent(z: Z): X;
  /** x as a conv input, as it is. */
  raw(x: X): A;
  /** silu(norm(x)) as a conv input: a GroupNorm, or with zq a SpatialNorm3D (GroupNorm(x)·conv_y(zq) + conv_b(zq)). */
  normSilu(x: X, n: W['norm'] | W['snorm'], zq: Z | null): A;
  /**
   * CogVideoXCausalConv3d: time padded in front with the previous call's last k−1 padded inputs (kept under `key`)
   * or, in a pass's first call, k−1 copies of the first; H and W zero-padded by (k−1)/2. Plus `residual` when given.
   */
  causalConv(a: A, w: W['conv'], key: string, residual?: X): X;
  /** A 1×1×1 conv (the ResNet's conv_shortcut). */
  pointwise(x: X, w: W['conv']): X;
  /** CogVideoXDownsample3D: frames averaged in pairs (compress_time; an odd count keeps frame 0), 3×3 conv stride 2. */
  downsample(x: X, w: W['resample']): X;
  /** CogVideoXUpsample3D: nearest ×2 in H and W, frame i repeated repeats(t, compress_time)[i] times, 3×3 conv. */
  upsample(x: X, w: W['resample'], repeats: (t: number, compressTime: boolean) => number[]): X;
  /** Hands a block's output to the caller's hook (module name as in the reference, e.g. 'down_blocks.1'). */
  emit(name: string, x: X): void;
}
