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
import { disposeLinear, linear, linearBytes, linearFromHost, type Linear } from './linear.js';

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

/** Bytes the uploaded weights take (fp32). */
export function causalConv3dBytes(p: CausalConv3d): number {
  if (p.pointwise) return linearBytes(p.pointwise);
  return p.taps.reduce((s, t) => s + 4 * (t.w.size + (t.b?.size ?? 0)), 0);
}

/**
 * Bytes of intermediate activations a model should keep on the backend before moving them to host memory. wasm: its
 * heap is capped at 4 GiB and also holds the weights and the working frames, so keep little (256 MiB); tensorflow:
 * its tensors are host memory already, so moving them would only add copies.
 */
export function keptActivationBudget(): number {
  return isWasm() ? 256 * 2 ** 20 : Infinity;
}
