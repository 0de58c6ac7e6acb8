// The hand-written gradients taken under a gradient tape — layerNorm (src/nn/norm.ts) and geluTanh
// (src/nn/activations.ts) — against TensorFlow.js autodiff through the same forward written as plain ops: layerNorm
// with and without the affine parameters, on the DiT's two uses (the [B, S, D] stream, the per-head q/k norm).
// transformer_grad.test.ts checks the model's gradients against PyTorch's through them; this pins each op alone and
// that it leaks nothing.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, expect, it } from 'vitest';
import { shutdownBackend } from '../src/nn/backend.js';
import { geluTanh } from '../src/nn/activations.js';
import { layerNorm } from '../src/nn/norm.js';
import { describeEachBackend, useBackend } from './helpers.js';

afterAll(() => shutdownBackend());

/** The forward as plain ops: autodiff differentiates these. */
function plain(x: tf.Tensor, w: tf.Tensor | null, b: tf.Tensor | null, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  if (w) y = tf.mul(y, w);
  if (b) y = tf.add(y, b);
  return y;
}

const relL2 = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.norm(tf.sub(a, b)).dataSync()[0]! / tf.norm(b).dataSync()[0]!);

describeEachBackend('layerNorm gradient (%s)', (backend) => {
  it.each([
    ['stream [2, 7, 24], affine', [2, 7, 24], true, true, 1e-5],
    ['heads [2, 3, 7, 8], affine', [2, 3, 7, 8], true, true, 1e-6],
    ['weight only', [3, 16], true, false, 1e-5],
    ['bias only', [3, 16], false, true, 1e-5],
    ['no affine', [3, 16], false, false, 1e-6],
  ] as const)('%s: equals autodiff of the plain ops (rel-L2 < 1e-6), same forward bits, no leak', async (_, shape, hasW, hasB, eps) => {
    await useBackend(backend);
    const D = shape[shape.length - 1]!;
    const x = tf.add(tf.mul(tf.randomNormal([...shape], 0, 1, 'float32', 1), 3), 0.5);
    const w = hasW ? tf.randomNormal([D], 1, 0.3, 'float32', 2) : null;
    const b = hasB ? tf.randomNormal([D], 0, 0.3, 'float32', 3) : null;
    const dy = tf.randomNormal([...shape], 0, 1, 'float32', 4);
    const inputs = [x, w, b].filter((t): t is tf.Tensor => t !== null);
    const split = (xs: tf.Tensor[]) => [xs[0]!, hasW ? xs[1]! : null, hasB ? xs[hasW ? 2 : 1]! : null] as const;
    const loss = (f: typeof plain) => (...xs: tf.Tensor[]) => {
      const [a, c, d] = split(xs);
      return tf.sum(tf.mul(f(a, c, d, eps), dy));
    };
    const before = tf.memory().numTensors;
    const got = tf.grads(loss((a, c, d, e) => layerNorm(a, c as tf.Tensor1D | null, d as tf.Tensor1D | null, e)))(inputs);
    const want = tf.grads(loss(plain))(inputs);
    expect(tf.memory().numTensors - before).toBe(2 * inputs.length); // the gradients and nothing else
    got.forEach((g, i) => expect(relL2(g, want[i]!), `input ${i}`).toBeLessThan(1e-6));
    // outside a tape: the plain forward, bit for bit
    const y0 = layerNorm(x, w as tf.Tensor1D | null, b as tf.Tensor1D | null, eps);
    const y1 = tf.tidy(() => plain(x, w, b, eps));
    expect(Array.from(y0.dataSync())).toEqual(Array.from(y1.dataSync()));
    tf.dispose([x, dy, ...(w ? [w] : []), ...(b ? [b] : []), ...got, ...want, y0, y1]);
  });
});

describeEachBackend('geluTanh gradient (%s)', (backend) => {
  it('equals autodiff of the plain ops (rel-L2 < 1e-6), same forward bits, no leak', async () => {
    await useBackend(backend);
    const A = 2 * Math.sqrt(2 / Math.PI);
    const B = 0.044715 * A;
    const gelu = (x: tf.Tensor) => tf.mul(x, tf.sigmoid(tf.mul(x, tf.add(tf.mul(tf.square(x), B), A))));
    const x = tf.mul(tf.randomNormal([4, 9, 32], 0, 1, 'float32', 5), 2.5);
    const dy = tf.randomNormal([4, 9, 32], 0, 1, 'float32', 6);
    const before = tf.memory().numTensors;
    const got = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(geluTanh(t), dy)))(x);
    const want = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(gelu(t), dy)))(x);
    expect(tf.memory().numTensors - before).toBe(2);
    expect(relL2(got, want)).toBeLessThan(1e-6);
    const y0 = geluTanh(x);
    const y1 = tf.tidy(() => gelu(x));
    expect(Array.from(y0.dataSync())).toEqual(Array.from(y1.dataSync()));
    tf.dispose([x, dy, got, want, y0, y1]);
  });
});

// tfjs calls a custom gradient outside any per-node tidy (tfjs-core tape.js backpropagateGradients: node.gradient(dys)),
// so the gradient functions tidy their own intermediates; without that they live until the backward pass ends.
// 12 × (layerNorm → geluTanh) on [8, 152, 192] (the demo transformer's stream; 0.93 MiB a tensor), peak over the
// backward: ~69 tensors' worth with the tidies, 256 without (measured on tensorflow and wasm); the bound sits between.
describeEachBackend('custom gradients free their intermediates (%s)', (backend) => {
  it('peak memory of a 12-deep layerNorm → geluTanh backward stays under 120 activations', async () => {
    await useBackend(backend);
    const shape = [8, 152, 192];
    const x = tf.randomNormal(shape, 0, 1, 'float32', 7);
    const w = tf.variable(tf.ones([192]) as tf.Tensor1D);
    const b = tf.variable(tf.zeros([192]) as tf.Tensor1D);
    const f = () => {
      let h: tf.Tensor = x;
      for (let i = 0; i < 12; i++) h = geluTanh(layerNorm(h, w, b, 1e-5));
      return tf.sum(h) as tf.Scalar;
    };
    const before = tf.memory().numTensors;
    const p = await tf.profile(() => {
      const g = tf.variableGrads(f);
      tf.dispose([g.value, ...Object.values(g.grads)]);
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(p.peakBytes / (8 * 152 * 192 * 4)).toBeLessThan(120);
    tf.dispose([x, w, b]);
  });
});
