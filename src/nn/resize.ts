// Resizes exactly as PyTorch's F.interpolate computes them (ATen/native/UpSample.h), on channels-last tensors:
//   nearest (legacy "nearest", not "nearest-exact"): src = min(floor(dst · scale), in − 1) in float32, where
//     scale = 1/scale_factor when a scale factor is given, else in/out (both rounded to float32); same size → identity,
//     out = 2·in → dst >> 1.
//   trilinear / bilinear / linear with align_corners=False: src = max(scale·(dst + 0.5) − 0.5, 0) in float32,
//     i0 = min(floor(src), in − 1), i1 = i0 + (i0 < in − 1), λ1 = clamp(src − i0, 0, 1), λ0 = 1 − λ1; same size → copy.
//   The interpolation is applied one axis at a time, innermost (W) first, which is the order of PyTorch's nested sum
//   (((x·w0 + x·w1)·h0 + …)·t0 + …), so each output is rounded the same way.
// Layout: x is [N, ...spatial, C] (channels last); `size` lists the spatial output sizes.
import * as tf from '@tensorflow/tfjs-core';

const f32 = Math.fround;

/** PyTorch compute_scales_value: float32(1/scale_factor) if a factor is given, else float32(in/out). */
function scaleValue(inSize: number, outSize: number, scaleFactor?: number): number {
  return scaleFactor !== undefined && scaleFactor > 0 ? f32(1 / scaleFactor) : f32(f32(inSize) / outSize);
}

/** Source index of each output index for PyTorch "nearest". */
export function nearestIndices(inSize: number, outSize: number, scaleFactor?: number): Int32Array {
  const idx = new Int32Array(outSize);
  if (outSize === inSize) {
    for (let i = 0; i < outSize; i++) idx[i] = i;
  } else if (outSize === 2 * inSize) {
    for (let i = 0; i < outSize; i++) idx[i] = i >> 1;
  } else {
    const scale = scaleValue(inSize, outSize, scaleFactor);
    for (let i = 0; i < outSize; i++) idx[i] = Math.min(Math.floor(f32(i * scale)), inSize - 1);
  }
  return idx;
}

export interface LinearTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float32Array;
  w1: Float32Array;
}

/** Source indices and weights of each output index for PyTorch linear modes, align_corners=False. */
export function linearTaps(inSize: number, outSize: number, scaleFactor?: number): LinearTaps {
  const t: LinearTaps = {
    i0: new Int32Array(outSize),
    i1: new Int32Array(outSize),
    w0: new Float32Array(outSize),
    w1: new Float32Array(outSize),
  };
  if (outSize === inSize) {
    for (let i = 0; i < outSize; i++) {
      t.i0[i] = i;
      t.i1[i] = i;
      t.w0[i] = 1;
      t.w1[i] = 0;
    }
    return t;
  }
  const scale = scaleValue(inSize, outSize, scaleFactor);
  for (let i = 0; i < outSize; i++) {
    let src = f32(f32(scale * f32(i + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const l1 = Math.min(Math.max(f32(src - i0), 0), 1);
    t.i0[i] = i0;
    t.i1[i] = i0 + (i0 < inSize - 1 ? 1 : 0);
    t.w1[i] = l1;
    t.w0[i] = f32(1 - l1);
  }
  return t;
}

function isIdentity(idx: Int32Array, inSize: number): boolean {
  return idx.length === inSize && idx.every((v, i) => v === i);
}

/** Integer upscale factor if idx is "repeat each source index f times", else 0. */
function repeatFactor(idx: Int32Array, inSize: number): number {
  if (idx.length % inSize !== 0) return 0;
  const f = idx.length / inSize;
  for (let i = 0; i < idx.length; i++) if (idx[i] !== Math.floor(i / f)) return 0;
  return f;
}

/**
 * PyTorch "nearest" resize of the spatial axes of a channels-last tensor [N, ...spatial, C] to `size`
 * (`scaleFactors` as passed to F.interpolate(scale_factor=…), when the reference passes one). The last two axes,
 * when both are scaled by the same integer factor, go through resizeNearestNeighbor; other axes are gathered.
 * Differentiable on every backend: under a gradient tape the gathers become slices (wasm has no gather gradient).
 */
export function resizeNearest(x: tf.Tensor, size: readonly number[], scaleFactors?: readonly number[]): tf.Tensor {
  const nsp = x.rank - 2;
  if (size.length !== nsp) throw new Error(`resizeNearest: ${nsp} spatial axes but ${size.length} sizes`);
  const idx = size.map((s, a) => nearestIndices(x.shape[a + 1]!, s, scaleFactors?.[a]));
  return tf.tidy(() => {
    let y = x;
    let outer = nsp; // axes [1, outer] are gathered
    if (nsp >= 2) {
      const fh = repeatFactor(idx[nsp - 2]!, x.shape[nsp - 1]!);
      const fw = repeatFactor(idx[nsp - 1]!, x.shape[nsp]!);
      if (fh > 1 && fh === fw) {
        const [h, w, c] = x.shape.slice(nsp - 1);
        const lead = x.shape.slice(0, nsp - 1);
        const up = upsampleNearest2d(tf.reshape(x, [-1, h!, w!, c!]) as tf.Tensor4D, fh);
        y = tf.reshape(up, [...lead, h! * fh, w! * fh, c!]);
        outer = nsp - 2;
      }
    }
    for (let a = outer - 1; a >= 0; a--) {
      if (isIdentity(idx[a]!, y.shape[a + 1]!)) continue;
      y = gatherAxis(y, idx[a]!, a + 1);
    }
    return y === x ? tf.clone(x) : y;
  });
}

/** tf.gather along one axis; under a gradient tape, concatenated slices (their gradient exists on every backend). */
function gatherAxis(x: tf.Tensor, idx: Int32Array, axis: number): tf.Tensor {
  if (!tf.engine().isTapeOn()) return tf.gather(x, tf.tensor1d(idx, 'int32'), axis);
  const parts: tf.Tensor[] = [];
  for (let i = 0; i < idx.length; ) {
    let n = 1;
    while (i + n < idx.length && idx[i + n] === idx[i]! + n) n++; // a run of consecutive sources: one slice
    const begin = x.shape.map((_, k) => (k === axis ? idx[i]! : 0));
    const sz = x.shape.map((d, k) => (k === axis ? n : d!));
    parts.push(tf.slice(x, begin, sz));
    i += n;
  }
  return parts.length === 1 ? parts[0]! : tf.concat(parts, axis);
}

/**
 * Nearest ×f upscale of H and W of an NHWC tensor (PyTorch nearest with an integer factor: src = dst // f).
 * tfjs' resizeNearestNeighbor (align_corners=false, half_pixel_centers=false) computes floor(dst·in/out), the same
 * index for integer factors; broadcastTo would be the other way, but it is ~40× slower on wasm.
 */
export function upsampleNearest2d(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  if (factor === 1) return tf.clone(x);
  const [, h, w] = x.shape;
  return tf.image.resizeNearestNeighbor(x, [h * factor, w * factor]);
}

/**
 * PyTorch linear / bilinear / trilinear resize (align_corners=False, no antialias) of the spatial axes of a
 * channels-last tensor [N, ...spatial, C] to `size`.
 */
export function resizeLinear(x: tf.Tensor, size: readonly number[], scaleFactors?: readonly number[]): tf.Tensor {
  const nsp = x.rank - 2;
  if (size.length !== nsp) throw new Error(`resizeLinear: ${nsp} spatial axes but ${size.length} sizes`);
  return tf.tidy(() => {
    let y = x;
    for (let a = nsp - 1; a >= 0; a--) {
      const axis = a + 1;
      const inSize = y.shape[axis]!;
      if (inSize === size[a]) continue;
      const t = linearTaps(inSize, size[a]!, scaleFactors?.[a]);
      const wShape = y.shape.map((_, i) => (i === axis ? size[a]! : 1));
      const y0 = tf.mul(tf.gather(y, tf.tensor1d(t.i0, 'int32'), axis), tf.tensor(t.w0, wShape));
      const y1 = tf.mul(tf.gather(y, tf.tensor1d(t.i1, 'int32'), axis), tf.tensor(t.w1, wShape));
      y = tf.add(y0, y1);
    }
    return y === x ? tf.clone(x) : y;
  });
}
