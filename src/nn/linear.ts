// Linear layers: y = x·Wᵀ + b. Checkpoints store torch's [out, in]. Measured on this machine (bench notes in README):
//   tensorflow: matMul(x, W[out,in], transposeB) is the fastest form (≈ PyTorch), so weights keep their layout;
//   wasm: transposeB and 3-D operands hit a scalar loop (~25× slower). With few rows (T5: ≤ 2·226 tokens)
//     W·xᵀ is 2× faster than x·W[in,out]; with many rows (DiT: 10⁴+ tokens) x·W[in,out] is ~25 % faster.
//   tensorflow + the native addon's GEMM (src/nn/native/gemm.h): TensorFlow 2.21's matMul is 10–50 % slower than
//     PyTorch's MKL on the DiT's shapes (bench/linear.ts), the native GEMM about as fast; the weight then stays a
//     host array in torch's layout ('host') and never enters TensorFlow.
// So the layout is chosen once, when the weight is materialised, from the expected number of rows.
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../weights/host_tensor.js';
import { geluTanh } from './activations.js';
import { commitToDevice, isWasm } from './backend.js';
import { hostFloats, hostOut, nativeLinear, nativeThreads } from './native.js';

export type Linear =
  | {
      /** the device weight: [out, in] ('out-in') or [in, out] ('in-out') */
      readonly layout: 'out-in' | 'in-out';
      readonly w: tf.Tensor2D;
      readonly b: tf.Tensor1D | null;
    }
  | {
      /** for the native GEMM: torch's [out, in] weight, row-major, and the bias, as host arrays */
      readonly layout: 'host';
      readonly w: Float32Array;
      readonly b: Float32Array | null;
      readonly shape: readonly [number, number];
    };

/** A row-major [rows, cols] matrix in host memory (a native kernel's output): linear() and feedForward() take it too. */
export interface HostRows {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

function isHostRows(x: tf.Tensor | HostRows): x is HostRows {
  return !(x instanceof tf.Tensor);
}

/** The input's values as a host array and its row count (a copy out of TensorFlow for a tensor). */
function hostValues(x: tf.Tensor | HostRows, cols: number, what: string): { data: Float32Array; rows: number } {
  if (isHostRows(x)) {
    if (x.cols !== cols || x.data.length < x.rows * cols) throw new Error(`${what}: host input [${x.rows}, ${x.cols}] does not match ${cols} input features`);
    return { data: x.data, rows: x.rows };
  }
  if (x.dtype !== 'float32') throw new Error(`${what}: input must be float32, got ${x.dtype}`);
  return { data: x.dataSync() as Float32Array, rows: x.size / cols };
}

const WASM_FEW_ROWS = 2048;
const WASM_ROW_CHUNK = 1024;
// Below this many expected rows (the AdaLN / time-embedding linears: one row per batch item) TensorFlow's matMul,
// which reads the weight once, is as good and the native GEMM's packing of the weight would dominate.
const NATIVE_MIN_ROWS = 64;

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
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== out)) {
    throw new Error(`linear bias must be [${out}], got [${bias.shape.join(', ')}]`);
  }
  const rows = opts.rows ?? Infinity;
  if (!isWasm() && rows >= NATIVE_MIN_ROWS && nativeLinear()) {
    // f32 checkpoints give views of the file's bytes: keep a copy, not a view of a buffer that may be reused.
    const own = (t: HostTensor) => (t.storage === 'f32' ? t.toFloat32().slice() : t.toFloat32());
    return { layout: 'host', w: own(weight), b: bias ? own(bias) : null, shape: [out, inp] };
  }
  const layout = isWasm() && rows > WASM_FEW_ROWS ? 'in-out' : 'out-in';
  const values = weight.toFloat32();
  const w = commitToDevice(
    layout === 'out-in' ? tf.tensor2d(values, [out, inp]) : tf.tensor2d(transposeHost(values, out, inp), [inp, out]),
  );
  const b = bias ? commitToDevice(tf.tensor1d(bias.toFloat32())) : null;
  return { w, layout, b };
}

/**
 * A Linear over caller-owned device tensors in torch's layout (w [out, in]): what a differentiable forward runs on
 * (parameters being trained). disposeLinear() must not be called on it.
 */
export function linearFromTensors(w: tf.Tensor2D, b: tf.Tensor1D | null): Linear {
  if (w.rank !== 2 || (b && (b.rank !== 1 || b.shape[0] !== w.shape[0]))) {
    throw new Error(`linear weight [out, in] and bias [out] expected, got [${w.shape.join(', ')}] and [${b?.shape.join(', ') ?? ''}]`);
  }
  return { layout: 'out-in', w, b };
}

/** True when the weight lives in host memory for the native GEMM (TensorFlow cannot differentiate through it). */
export function isHostLinear(p: Linear): boolean {
  return p.layout === 'host';
}

/**
 * The same layer on device tensors, as TensorFlow ops can differentiate it: a host weight is uploaded (the new
 * tensors are pushed to `created`, for the caller to dispose), a device one is returned as is.
 */
export function deviceLinear(p: Linear, created: tf.Tensor[]): Linear {
  if (p.layout !== 'host') return p;
  const w = tf.tensor2d(p.w, [p.shape[0], p.shape[1]]);
  const b = p.b ? tf.tensor1d(p.b) : null;
  created.push(w, ...(b ? [b] : []));
  return { layout: 'out-in', w, b };
}

/** The weight in torch's layout [out, in] as a new fp32 tensor (and the bias), whatever the stored layout. */
export function linearWeights(p: Linear): { w: tf.Tensor2D; b: tf.Tensor1D | null } {
  if (p.layout === 'host') return { w: tf.tensor2d(p.w, [p.shape[0], p.shape[1]]), b: p.b ? tf.tensor1d(p.b) : null };
  return { w: p.layout === 'out-in' ? tf.clone(p.w) : tf.transpose(p.w), b: p.b ? tf.clone(p.b) : null };
}

/** y + b for a layer's bias (y [rows, out]); a copy of y when it has none. */
export function addBias(y: tf.Tensor, p: Linear): tf.Tensor {
  return tf.tidy(() => {
    if (!p.b) return tf.clone(y);
    return tf.add(y, p.layout === 'host' ? tf.tensor1d(p.b) : p.b);
  });
}

export function inFeatures(p: Linear): number {
  return p.layout === 'host' ? p.shape[1] : p.layout === 'out-in' ? p.w.shape[1] : p.w.shape[0];
}

export function outFeatures(p: Linear): number {
  return p.layout === 'host' ? p.shape[0] : p.layout === 'out-in' ? p.w.shape[0] : p.w.shape[1];
}

/** Bytes of the weight and bias (fp32). */
export function linearBytes(p: Linear): number {
  return 4 * (p.layout === 'host' ? p.w.length + (p.b?.length ?? 0) : p.w.size + (p.b?.size ?? 0));
}

/**
 * The native GEMM on a host weight: y [rows, out] = x [rows, in] · Wᵀ + b. Without the addon (turned off after
 * loading) the same product on TensorFlow ops.
 */
function hostProduct(x: tf.Tensor | HostRows, p: Extract<Linear, { layout: 'host' }>): tf.Tensor2D {
  const [out, inp] = p.shape;
  const native = nativeLinear();
  if (!native) {
    return tf.tidy(() => {
      const w = tf.tensor2d(p.w, [out, inp]);
      const x2 = isHostRows(x) ? tf.tensor2d(x.data.subarray(0, x.rows * inp), [x.rows, inp]) : tf.reshape(x, [-1, inp]);
      const y = tf.matMul(x2, w, false, true);
      return (p.b ? tf.add(y, tf.tensor1d(p.b)) : y) as tf.Tensor2D;
    });
  }
  const { data, rows } = hostValues(x, inp, 'linear');
  const y = hostFloats(rows * out);
  if (rows > 0) native.linear(data, rows, inp, p.w, inp, out, p.b, y, nativeThreads());
  return tf.tensor2d(y, [rows, out]);
}

/**
 * x·Wᵀ + b as host rows [n, out], for a host weight and the native GEMM (a kernel reads it next, not TensorFlow).
 * `into`: a host array of at least n·out floats to write (reused scratch; it must not be x's).
 */
export function linearToHost(x: tf.Tensor | HostRows, p: Linear, into?: Float32Array): HostRows {
  const native = nativeLinear();
  if (p.layout !== 'host' || !native) throw new Error('linearToHost needs a host weight and the native GEMM');
  const [out, inp] = p.shape;
  const { data, rows } = hostValues(x, inp, 'linear');
  const y = hostOut(into, rows * out, 'linearToHost');
  if (rows > 0) native.linear(data, rows, inp, p.w, inp, out, p.b, y, nativeThreads());
  return { data: y, rows, cols: out };
}

/** y = x·Wᵀ + b over the last axis of x (any rank), as 2-D matMuls; host rows [n, in] give [n, out]. */
export function linear(x: tf.Tensor | HostRows, p: Linear): tf.Tensor {
  if (isHostRows(x)) {
    if (p.layout === 'host') return hostProduct(x, p);
    const t = tf.tensor2d(x.data.subarray(0, x.rows * x.cols), [x.rows, x.cols]);
    try {
      return linear(t, p);
    } finally {
      t.dispose();
    }
  }
  if (x.shape[x.shape.length - 1] !== inFeatures(p)) {
    throw new Error(`linear: input [${x.shape.join(', ')}] does not end in the weight's ${inFeatures(p)} input features`);
  }
  if (p.layout === 'host') {
    const lead = x.shape.slice(0, -1);
    const y = hostProduct(x, p);
    const shaped = tf.reshape(y, [...lead, p.shape[0]]);
    y.dispose();
    return shaped;
  }
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

// linearColumns / linearRows serve the head-wise attention (src/nn/dit/headwise_ops.ts), which runs on wasm only,
// where linearFromHost never makes a host weight.
function hostSliceError(fn: string): Error {
  return new Error(`${fn}: the weight is in the native GEMM's host layout, which only the tensorflow backend makes; the head-wise path runs on wasm (load the model on the backend it runs on)`);
}

/** x·W[:, start : start+count] (+ b[start : start+count]): `count` output features only, e.g. one head's q. */
export function linearColumns(x: tf.Tensor2D, p: Linear, start: number, count: number): tf.Tensor2D {
  if (p.layout === 'host') throw hostSliceError('linearColumns');
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
  if (p.layout === 'host') throw hostSliceError('linearRows');
  return tf.tidy(() => {
    const out = outFeatures(p);
    if (p.layout === 'in-out') return tf.matMul(x, tf.slice(p.w, [start, 0], [count, out]));
    const w = tf.slice(p.w, [0, start], [out, count]);
    return (isWasm() ? tf.transpose(tf.matMul(w, tf.transpose(x))) : tf.matMul(x, w, false, true)) as tf.Tensor2D;
  });
}

/**
 * down(GELU_tanh(up(x))), the DiT's feed-forward, over `rowsPerChunk` rows at a time (bounds the 4D-wide
 * intermediate). With both weights on the host (native GEMM) the intermediate never enters TensorFlow: the GEMM
 * applies the GELU as it finishes each output tile and the second product reads the host array directly.
 * A tensor input keeps its leading shape; host rows [n, in] give [n, out].
 */
export function feedForward(x: tf.Tensor | HostRows, up: Linear, down: Linear, rowsPerChunk = Infinity): tf.Tensor {
  const native = nativeLinear();
  const inp = inFeatures(up);
  const hidden = outFeatures(up);
  const out = outFeatures(down);
  if (inFeatures(down) !== hidden || (isHostRows(x) ? x.cols : x.shape[x.shape.length - 1]) !== inp) {
    const shape = isHostRows(x) ? [x.rows, x.cols] : x.shape;
    throw new Error(`feedForward: input [${shape.join(', ')}], up ${inp} → ${hidden}, down ${inFeatures(down)} → ${out} do not chain`);
  }
  if (up.layout !== 'host' || down.layout !== 'host' || !native) {
    return tf.tidy(() => {
      const x2 = isHostRows(x) ? tf.tensor2d(x.data.subarray(0, x.rows * inp), [x.rows, inp]) : tf.reshape(x, [-1, inp]);
      const n = x2.shape[0]!;
      const parts: tf.Tensor[] = [];
      for (let r = 0; r < n; r += rowsPerChunk) {
        const xr = n <= rowsPerChunk ? x2 : tf.slice(x2, [r, 0], [Math.min(rowsPerChunk, n - r), inp]);
        parts.push(tf.tidy(() => linear(geluTanh(linear(xr, up)), down)));
      }
      const y = parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
      return isHostRows(x) ? y : tf.reshape(y, [...x.shape.slice(0, -1), out]);
    });
  }
  const { data, rows } = hostValues(x, inp, 'feedForward');
  const y = hostFloats(rows * out);
  // equal chunks (26 660 rows at ≤ 8 738 per chunk: 4 × 6 665, not 3 × 8 738 + 446)
  const chunks = Math.max(1, Math.ceil(rows / Math.max(1, rowsPerChunk)));
  const chunk = Math.max(1, Math.ceil(rows / chunks));
  const h = hostFloats(chunk * hidden);
  for (let r = 0; r < rows; r += chunk) {
    const n = Math.min(chunk, rows - r);
    native.linear(data.subarray(r * inp, (r + n) * inp), n, inp, up.w, inp, hidden, up.b, h.subarray(0, n * hidden), nativeThreads(), true);
    native.linear(h.subarray(0, n * hidden), n, hidden, down.w, hidden, out, down.b, y.subarray(r * out, (r + n) * out), nativeThreads());
  }
  return tf.tensor(y, isHostRows(x) ? [rows, out] : [...x.shape.slice(0, -1), out]);
}

export function disposeLinear(p: Linear): void {
  if (p.layout === 'host') return; // host arrays: the garbage collector's
  p.w.dispose();
  p.b?.dispose();
}
