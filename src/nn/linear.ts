// Linear layers. Checkpoints store torch's [out, in]; both backends are fastest on a plain 2-D matMul with the
// weight pre-transposed to [in, out] (wasm sends transposeB and 3-D operands to a scalar loop, ~25× slower), so
// weights are transposed once, on the host, when materialised.
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../weights/host_tensor.js';

export interface Linear {
  /** [in, out] */
  readonly w: tf.Tensor2D;
  readonly b: tf.Tensor1D | null;
}

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

/** Uploads a torch-layout [out, in] weight (and optional bias) as a Linear. */
export function linearFromHost(weight: HostTensor, bias?: HostTensor | null): Linear {
  if (weight.shape.length !== 2) throw new Error(`linear weight must be 2-D, got [${weight.shape.join(', ')}]`);
  const [out, inp] = weight.shape as [number, number];
  const w = tf.tensor2d(transposeHost(weight.toFloat32(), out, inp), [inp, out]);
  const b = bias ? tf.tensor1d(bias.toFloat32()) : null;
  return { w, b };
}

/** y = x·Wᵀ + b over the last axis of x (any rank), as one 2-D matMul. */
export function linear(x: tf.Tensor, p: Linear): tf.Tensor {
  return tf.tidy(() => {
    const inp = p.w.shape[0];
    const lead = x.shape.slice(0, -1);
    let y = tf.matMul(tf.reshape(x, [-1, inp]), p.w);
    if (p.b) y = tf.add(y, p.b);
    return tf.reshape(y, [...lead, p.w.shape[1]]);
  });
}

export function disposeLinear(p: Linear): void {
  p.w.dispose();
  p.b?.dispose();
}
