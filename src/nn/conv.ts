// Convolutions on channels-last (NHWC) frames.
//   Weights arrive in torch layout ([Cout, Cin, kh, kw] / [Cout, Cin, kt, kh, kw]) and are re-laid out once, at load
//   time, to tfjs' [kh, kw, Cin, Cout] per temporal tap.
//   A k×k×k conv3d over frames is computed as Σ_k conv2d(frame_{t−2+k}, W_k) on every backend: on wasm tf.conv3d is a
//   single-threaded scalar loop (~100× slower than XNNPACK's conv2d); on tensorflow the sum of conv2d measured as fast
//   as conv3d on a padded 3-frame window (131 vs 131 GFLOP/s at [192,336,128]→128) without the padded copy, and it
//   lets the caller hold one frame at a time. The partial sums are added in tap order (0, 1, 2).
//   1×1×1 convs are linears over the channel axis (src/nn/linear.ts picks the fast layout per backend).
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../weights/host_tensor.js';
import { isWasm } from './backend.js';
import { disposeLinear, linear, linearFromHost, type Linear } from './linear.js';

export interface Conv2d {
  /** [kh, kw, Cin, Cout] */
  readonly w: tf.Tensor4D;
  readonly b: tf.Tensor1D | null;
}

/** torch [Cout, Cin, kh, kw] (or a [Cout, Cin, kt, kh, kw] tap `t`) → [kh, kw, Cin, Cout]. */
function toHwio(src: Float32Array, cout: number, cin: number, kt: number, kh: number, kw: number, t: number): Float32Array {
  const out = new Float32Array(kh * kw * cin * cout);
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      const base = ((o * cin + i) * kt + t) * kh * kw;
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) out[((y * kw + x) * cin + i) * cout + o] = src[base + y * kw + x]!;
      }
    }
  }
  return out;
}

function shapeOf(weight: HostTensor, rank: number, what: string): number[] {
  if (weight.shape.length !== rank) throw new Error(`${what} weight must be ${rank}-D, got [${weight.shape.join(', ')}]`);
  return weight.shape;
}

export function conv2dFromHost(weight: HostTensor, bias?: HostTensor | null): Conv2d {
  const [cout, cin, kh, kw] = shapeOf(weight, 4, 'conv2d') as [number, number, number, number];
  const w = tf.tensor4d(toHwio(weight.toFloat32(), cout, cin, 1, kh, kw, 0), [kh, kw, cin, cout]);
  return { w, b: bias ? tf.tensor1d(bias.toFloat32()) : null };
}

export type Conv2dPadding = 'same' | 'valid' | [[number, number], [number, number]];

/** conv2d(x [N,H,W,Cin]) + bias. `pad` [[top, bottom], [left, right]] is explicit zero padding. */
export function conv2d(x: tf.Tensor4D, p: Conv2d, opts: { stride?: number; pad?: Conv2dPadding } = {}): tf.Tensor4D {
  const pad = opts.pad ?? 'same';
  const explicit = Array.isArray(pad) ? ([[0, 0], pad[0], pad[1], [0, 0]] as tf.backend_util.ExplicitPadding) : pad;
  return tf.fused.conv2d({ x, filter: p.w, strides: opts.stride ?? 1, pad: explicit, bias: p.b ?? undefined });
}

export function disposeConv2d(p: Conv2d): void {
  p.w.dispose();
  p.b?.dispose();
}

/** A causal Conv3d: kt temporal taps of 'same'-padded conv2d, or a pointwise linear when the kernel is 1×1×1. */
export interface CausalConv3d {
  readonly kt: number;
  readonly cin: number;
  readonly cout: number;
  /** kt × [kh, kw, Cin, Cout]; the bias is carried by tap 0. Empty when pointwise. */
  readonly taps: Conv2d[];
  readonly pointwise: Linear | null;
}

export function causalConv3dFromHost(weight: HostTensor, bias?: HostTensor | null): CausalConv3d {
  const [cout, cin, kt, kh, kw] = shapeOf(weight, 5, 'conv3d') as [number, number, number, number, number];
  if (kh !== kw || kh % 2 !== 1) throw new Error(`conv3d kernel ${kh}×${kw}: only square odd kernels are supported`);
  if (kt === 1 && kh === 1) {
    const w2 = new HostTensor([cout, cin], weight.storage, weight.data);
    return { kt, cin, cout, taps: [], pointwise: linearFromHost(w2, bias ?? null, { rows: Infinity }) };
  }
  const src = weight.toFloat32();
  const taps: Conv2d[] = [];
  for (let t = 0; t < kt; t++) {
    const w = tf.tensor4d(toHwio(src, cout, cin, kt, kh, kw, t), [kh, kw, cin, cout]);
    taps.push({ w, b: t === 0 && bias ? tf.tensor1d(bias.toFloat32()) : null });
  }
  return { kt, cin, cout, taps, pointwise: null };
}

/**
 * One step of a causal conv3d: `inputs[k]` is what tap k sees ([N, H, W, Cin], all the same shape; for frame t of a
 * padded sequence P, inputs = P[t], P[t+1], P[t+2]). Spatial zero padding (k−1)/2. Returns [N, H, W, Cout].
 * Intermediate partial sums are released as soon as they are added, so the peak is about three outputs.
 */
export function causalConvStep(inputs: readonly tf.Tensor4D[], p: CausalConv3d): tf.Tensor4D {
  if (p.pointwise) return pointwiseConv(inputs[0]!, p);
  if (inputs.length !== p.kt) throw new Error(`causal conv: ${inputs.length} inputs for ${p.kt} taps`);
  let acc = conv2d(inputs[0]!, p.taps[0]!);
  for (let k = 1; k < p.kt; k++) {
    const part = conv2d(inputs[k]!, p.taps[k]!);
    const next = tf.add(acc, part) as tf.Tensor4D;
    acc.dispose();
    part.dispose();
    acc = next;
  }
  return acc;
}

/** 1×1×1 conv: a linear over the channel axis of [N, H, W, Cin]. */
export function pointwiseConv(x: tf.Tensor4D, p: CausalConv3d): tf.Tensor4D {
  if (!p.pointwise) throw new Error('pointwiseConv on a conv with a spatial kernel');
  return linear(x, p.pointwise) as tf.Tensor4D;
}

export function disposeCausalConv3d(p: CausalConv3d): void {
  p.taps.forEach(disposeConv2d);
  if (p.pointwise) disposeLinear(p.pointwise);
}

/**
 * A convolution on channels-last video [B, T, H, W, Cin] with a torch-layout weight — [Cout, Cin, kt, kh, kw], or
 * [Cout, Cin, kh, kw] for a Conv2d applied to every frame — as differentiable tensor ops: no padding in time (the
 * caller pads), zero padding `pad` [[top, bottom], [left, right]] in H and W, `stride` in H and W. tf.conv3d is used
 * because its input and filter gradients exist on every backend (wasm has no Conv2DBackpropFilter); a stride is
 * taken by subsampling the stride-1 output; a 1×1×1 kernel is a matMul over channels. For training and gradient
 * checks; inference runs causalConvStep / conv2d.
 */
export function conv3dOps(
  x: tf.Tensor5D,
  weight: tf.Tensor,
  bias: tf.Tensor | null,
  opts: { stride?: number; pad?: [[number, number], [number, number]] } = {},
): tf.Tensor5D {
  return tf.tidy(() => {
    const w5 = (weight.rank === 4 ? tf.expandDims(weight, 2) : weight) as tf.Tensor5D;
    if (w5.rank !== 5) throw new Error(`conv weight must be 4-D or 5-D, got [${weight.shape.join(', ')}]`);
    const [cout, cin, kt, kh, kw] = w5.shape;
    const [B, T, H, W, C] = x.shape;
    if (C !== cin) throw new Error(`conv: input has ${C} channels, the weight [${w5.shape.join(', ')}] takes ${cin}`);
    const stride = opts.stride ?? 1;
    const pad = opts.pad ?? [[0, 0], [0, 0]];
    let y: tf.Tensor5D;
    if (kt === 1 && kh === 1 && kw === 1 && stride === 1 && pad.flat().every((v) => v === 0)) {
      const m = tf.matMul(tf.reshape(x, [B * T * H * W, cin]), tf.reshape(w5, [cout, cin]), false, true);
      y = tf.reshape(m, [B, T, H, W, cout]);
    } else {
      const padded = pad.flat().some((v) => v !== 0) ? tf.pad(x, [[0, 0], [0, 0], pad[0], pad[1], [0, 0]]) : x;
      y = conv3dValid(padded as tf.Tensor5D, tf.transpose(w5, [2, 3, 4, 1, 0]) as tf.Tensor5D);
      if (stride > 1) y = subsample(y, stride);
    }
    return (bias ? tf.add(y, bias) : y) as tf.Tensor5D;
  });
}

/**
 * A conv3d, stride 1, 'valid' (x [B, T, H, W, Cin], filter [kt, kh, kw, Cin, Cout]). On wasm, tf.conv3d is a
 * single-threaded scalar loop and its input gradient (Conv3DBackpropInputV2, tfjs-backend-wasm 4.22) is wrong
 * whenever the output has more than one frame (measured: only the first output frame contributes). There the forward
 * is a sum over temporal taps of conv2d on frames folded into the batch (XNNPACK), the input gradient the same conv of
 * the padded output gradient with the flipped, transposed filter, and the filter gradient wasm's
 * Conv3DBackpropFilterV2 (right, and the only kernel for it: wasm has no Conv2DBackpropFilter).
 */
function conv3dValid(x: tf.Tensor5D, filter: tf.Tensor5D): tf.Tensor5D {
  if (!isWasm()) return tf.conv3d(x, filter, 1, 'valid');
  return wasmConv3d(x, filter);
}

/** Σ_k conv2d(x[:, k : k+To], filter[k]), frames folded into the batch: conv3d 'valid' with stride 1. */
function conv3dByTaps(x: tf.Tensor5D, filter: tf.Tensor5D): tf.Tensor5D {
  return tf.tidy(() => {
    const [B, T, H, W, C] = x.shape;
    const [kt, kh, kw, , cout] = filter.shape;
    const To = T - kt + 1;
    let acc: tf.Tensor4D | null = null;
    for (let k = 0; k < kt; k++) {
      const xs = tf.reshape(tf.slice(x, [0, k], [-1, To]), [B * To, H, W, C]) as tf.Tensor4D;
      const fk = tf.reshape(tf.slice(filter, [k], [1]), [kh, kw, C, cout]) as tf.Tensor4D;
      const y = tf.conv2d(xs, fk, 1, 'valid');
      acc = acc ? (tf.add(acc, y) as tf.Tensor4D) : y;
    }
    return tf.reshape(acc!, [B, To, H - kh + 1, W - kw + 1, cout]) as tf.Tensor5D;
  });
}

const wasmConv3d = tf.customGrad(((x: tf.Tensor, filter: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, filter]);
  return {
    value: conv3dByTaps(x as tf.Tensor5D, filter as tf.Tensor5D),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [xs, f] = saved as [tf.Tensor5D, tf.Tensor5D];
      const g = dy as tf.Tensor5D;
      const [kt, kh, kw] = f.shape;
      const full = tf.pad(g, [[0, 0], [kt - 1, kt - 1], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]]) as tf.Tensor5D;
      const flipped = tf.transpose(tf.reverse(f, [0, 1, 2]), [0, 1, 2, 4, 3]) as tf.Tensor5D;
      const dx = conv3dByTaps(full, flipped);
      const df = tf.engine().runKernel('Conv3DBackpropFilterV2', { x: xs, dy: g }, { strides: [1, 1, 1], pad: 'valid', filterShape: f.shape }) as tf.Tensor;
      return [dx, df];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor5D, filter: tf.Tensor5D) => tf.Tensor5D;

/** Every s-th row and column of [B, T, H, W, C], starting at 0, by reshapes and slices (differentiable everywhere). */
function subsample(y: tf.Tensor5D, s: number): tf.Tensor5D {
  const [B, T, H, W, C] = y.shape;
  const Ho = Math.ceil(H / s);
  const Wo = Math.ceil(W / s);
  const p = tf.pad(y, [[0, 0], [0, 0], [0, Ho * s - H], [0, Wo * s - W], [0, 0]]);
  const rows = tf.slice(tf.reshape(p, [B * T * Ho, s, Wo * s * C]), [0, 0, 0], [-1, 1, -1]);
  const cols = tf.slice(tf.reshape(rows, [B * T * Ho, Wo, s, C]), [0, 0, 0, 0], [-1, -1, 1, -1]);
  return tf.reshape(cols, [B, T, Ho, Wo, C]);
}

/**
 * Bytes of intermediate activations a model should keep on the backend before moving them to host memory. wasm: its
 * heap is capped at 4 GiB and also holds the weights and the working frames, so keep little (256 MiB); tensorflow:
 * its tensors are host memory already, so moving them would only add copies.
 */
export function keptActivationBudget(): number {
  return isWasm() ? 256 * 2 ** 20 : Infinity;
}
