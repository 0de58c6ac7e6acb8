// Linear layers: y = x·Wᵀ + b. Checkpoints store torch's [out, in]. Measured on this machine (bench notes in README):
//   tensorflow: matMul(x, W[out,in], transposeB) is the fastest form (≈ PyTorch), so weights keep their layout;
//   wasm: transposeB and 3-D operands hit a scalar loop (~25× slower). With few rows (T5: ≤ 2·226 tokens)
//     W·xᵀ is 2× faster than x·W[in,out]; with many rows (DiT: 10⁴+ tokens) x·W[in,out] is ~25 % faster.
// So the layout is chosen once, when the weight is materialised, from the expected number of rows.
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../weights/host_tensor.js';
import { commitToDevice, isWasm } from './backend.js';

export interface Linear {
  /** [out, in] ('out-in') or [in, out] ('in-out') */
  readonly w: tf.Tensor2D;
  readonly layout: 'out-in' | 'in-out';
  readonly b: tf.Tensor1D | null;
}

const WASM_FEW_ROWS = 2048;
const WASM_ROW_CHUNK = 1024;

/** Transposes a row-major [rows, cols] matrix, in cache-friendly tiles. */
export function transposeHost(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  const T = 64;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(r0 + T, rows);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(c0 + T, cols);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[base + c]!;
      }
    }
  }
  return out;
}

/**
 * Uploads a torch-layout [out, in] weight (and optional bias) as a Linear, in the layout that is fastest on the
 * active backend for inputs of about `rows` rows.
 */
export function linearFromHost(weight: HostTensor, bias?: HostTensor | null, opts: { rows?: number } = {}): Linear {
  if (weight.shape.length !== 2) throw new Error(`linear weight must be 2-D, got [${weight.shape.join(', ')}]`);
  const [out, inp] = weight.shape as [number, number];
  const layout = isWasm() && (opts.rows ?? Infinity) > WASM_FEW_ROWS ? 'in-out' : 'out-in';
  const values = weight.toFloat32();
  const w = commitToDevice(
    layout === 'out-in' ? tf.tensor2d(values, [out, inp]) : tf.tensor2d(transposeHost(values, out, inp), [inp, out]),
  );
  const b = bias ? commitToDevice(tf.tensor1d(bias.toFloat32())) : null;
  return { w, layout, b };
}

export function inFeatures(p: Linear): number {
  return p.layout === 'out-in' ? p.w.shape[1] : p.w.shape[0];
}

export function outFeatures(p: Linear): number {
  return p.layout === 'out-in' ? p.w.shape[0] : p.w.shape[1];
}

/** y = x·Wᵀ + b over the last axis of x (any rank), as 2-D matMuls. */
export function linear(x: tf.Tensor, p: Linear): tf.Tensor {
  return tf.tidy(() => {
    const inp = inFeatures(p);
    const lead = x.shape.slice(0, -1);
    const x2 = tf.reshape(x, [-1, inp]);
    let y: tf.Tensor;
    if (p.layout === 'in-out') {
      y = tf.matMul(x2, p.w);
    } else if (!isWasm()) {
      y = tf.matMul(x2, p.w, false, true);
    } else {
      const rows = x2.shape[0]!;
      const parts: tf.Tensor[] = [];
      for (let r = 0; r < rows; r += WASM_ROW_CHUNK) {
        const xr = rows <= WASM_ROW_CHUNK ? x2 : tf.slice(x2, [r, 0], [Math.min(WASM_ROW_CHUNK, rows - r), inp]);
        parts.push(tf.matMul(p.w, tf.transpose(xr)));
      }
      y = tf.transpose(parts.length === 1 ? parts[0]! : tf.concat(parts, 1));
    }
    if (p.b) y = tf.add(y, p.b);
    return tf.reshape(y, [...lead, outFeatures(p)]);
  });
}

/** x·W[:, start : start+count] (+ b[start : start+count]): `count` output features only, e.g. one head's q. */
export function linearColumns(x: tf.Tensor2D, p: Linear, start: number, count: number): tf.Tensor2D {
  return tf.tidy(() => {
    const inp = inFeatures(p);
    let y: tf.Tensor;
    if (p.layout === 'in-out') {
      y = tf.matMul(x, tf.slice(p.w, [0, start], [inp, count]));
    } else {
      const w = tf.slice(p.w, [start, 0], [count, inp]);
      y = isWasm() ? tf.transpose(tf.matMul(w, tf.transpose(x))) : tf.matMul(x, w, false, true);
    }
    if (p.b) y = tf.add(y, tf.slice(p.b, [start], [count]));
    return y as tf.Tensor2D;
  });
}

/** x·W[start : start+count, :]ᵀ-contribution: x [rows, count] times the weight rows of input features start…, no bias. */
export function linearRows(x: tf.Tensor2D, p: Linear, start: number, count: number): tf.Tensor2D {
  return tf.tidy(() => {
    const out = outFeatures(p);
    if (p.layout === 'in-out') return tf.matMul(x, tf.slice(p.w, [start, 0], [count, out]));
    const w = tf.slice(p.w, [0, start], [out, count]);
    return (isWasm() ? tf.transpose(tf.matMul(w, tf.transpose(x))) : tf.matMul(x, w, false, true)) as tf.Tensor2D;
  });
}

export function disposeLinear(p: Linear): void {
  p.w.dispose();
  p.b?.dispose();
}
