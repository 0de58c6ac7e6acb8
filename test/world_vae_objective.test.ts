// scripts/demo/vae_step: the demo VAE's object-weighted reconstruction loss and the weights it uses.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { clipByGlobalNorm, lrAt, objectWeights, recLossOf } from '../scripts/demo/vae_step.js';
import { BACKENDS, useBackend } from './helpers.js';

// Plain tensor arithmetic: the first available backend is enough.
beforeAll(async () => useBackend(BACKENDS[0]!));

describe('objectWeights', () => {
  it('1 + λ where any channel differs from that sample’s background, 1 elsewhere; per sample', () => {
    // [B=2, C=3, F=1, H=1, W=3]: sample 0 on black (−1), sample 1 on white (1)
    const x = Float32Array.from([
      // b0: c0, c1, c2 over 3 pixels — pixel 1 differs in channel 2 only, pixel 2 in channel 0
      -1, -1, 0.5,
      -1, -1, -1,
      -1, 0.2, -1,
      // b1: pixel 0 differs in channel 1
      1, 1, 1,
      -1, 1, 1,
      1, 1, 1,
    ]);
    const w = objectWeights(x, [2, 3, 1, 1, 3], [[-1, -1, -1], [1, 1, 1]], 4);
    expect(Array.from(w)).toEqual([1, 5, 5, 5, 1, 1]);
  });

  it('edge μ on both sides of the outline (3×3 neighbourhood within the frame), per frame', () => {
    // [B=1, C=3, F=2, H=4, W=5] on black; frame 0: a 2×2 object at rows 1–2, cols 1–2; frame 1: empty
    const [F, H, W] = [2, 4, 5];
    const x = new Float32Array(3 * F * H * W).fill(-1);
    for (const [y, xx] of [[1, 1], [1, 2], [2, 1], [2, 2]] as const) x[y * W + xx] = 1; // channel 0, frame 0
    const w = objectWeights(x, [1, 3, F, H, W], [[-1, -1, -1]], 10, 2);
    // frame 0: every pixel within one step (8-neighbourhood) of the object is outline, the object's own pixels too
    // (each touches background); column 4 is two steps away from column 2
    const frame0 = [
      3, 3, 3, 3, 1,
      3, 13, 13, 3, 1,
      3, 13, 13, 3, 1,
      3, 3, 3, 3, 1,
    ];
    expect(Array.from(w.subarray(0, H * W))).toEqual(frame0);
    expect(Array.from(w.subarray(H * W))).toEqual(new Array(H * W).fill(1)); // no object, no outline
  });
});

describe('lrAt', () => {
  it('constant without --lr-final; from decayFrom a cosine from lr to lrFinal at steps, then lrFinal', () => {
    expect(lrAt({ lr: 3e-4, steps: 100 }, 50)).toBe(3e-4);
    const o = { lr: 3e-4, lrFinal: 3e-5, decayFrom: 100, steps: 300 };
    expect(lrAt(o, 99)).toBe(3e-4);
    expect(lrAt(o, 100)).toBeCloseTo(3e-4, 12);
    expect(lrAt(o, 200)).toBeCloseTo((3e-4 + 3e-5) / 2, 12);
    expect(lrAt(o, 300)).toBeCloseTo(3e-5, 12);
    expect(lrAt(o, 400)).toBeCloseTo(3e-5, 12);
  });
});

describe('recLossOf', () => {
  const d = tf.tensor5d([0.5, -1, 2, 0, 1, -0.25, 3, 0.1, -2, 0.4, 0, 1], [1, 3, 1, 2, 2]);
  const e = [0.5, 1, 2, 0, 1, 0.25, 3, 0.1, 2, 0.4, 0, 1];

  it('without weights: the plain mean of |d|, d² or both', () => {
    const mean = (f: (v: number) => number) => e.reduce((s, v) => s + f(v), 0) / e.length;
    expect(recLossOf(d, 'l1').dataSync()[0]).toBeCloseTo(mean((v) => v), 5);
    expect(recLossOf(d, 'mse').dataSync()[0]).toBeCloseTo(mean((v) => v * v), 5);
    expect(recLossOf(d, 'l1+mse').dataSync()[0]).toBeCloseTo(mean((v) => v + v * v), 5);
  });

  it('weights [B, 1, F, H, W] broadcast over channels: Σ w·e / Σ w; all-ones weights give the plain mean', () => {
    const wv = [1, 11, 1, 3];
    const w = tf.tensor5d(wv, [1, 1, 1, 2, 2]);
    let num = 0;
    let den = 0;
    e.forEach((v, i) => {
      num += wv[i % 4]! * v;
      den += wv[i % 4]!;
    });
    expect(recLossOf(d, 'l1', w).dataSync()[0]).toBeCloseTo(num / den, 5);
    const ones = tf.ones([1, 1, 1, 2, 2]);
    expect(recLossOf(d, 'mse', ones).dataSync()[0]).toBeCloseTo(recLossOf(d, 'mse').dataSync()[0]!, 6);
  });

  it('leaves no tensors behind but its result', () => {
    const before = tf.memory().numTensors;
    const r = recLossOf(d, 'l1+mse', tf.tidy(() => tf.ones([1, 1, 1, 2, 2])));
    // the weights tensor made by tidy above and the result
    expect(tf.memory().numTensors).toBe(before + 2);
    r.dispose();
  });
});

describe('clipByGlobalNorm', () => {
  it('scales every gradient by max / (global norm + 1e-6) when above it, and leaves them alone otherwise', () => {
    const g = new Map<string, tf.Tensor>([
      ['a', tf.tensor([3, 0])],
      ['b', tf.tensor([[0, 4]])],
    ]); // global norm 5
    const before = tf.memory().numTensors;
    const r = clipByGlobalNorm(g, 2);
    expect(r.norm).toBeCloseTo(5, 6);
    expect(Array.from(r.clipped!.get('a')!.dataSync())).toEqual([expect.closeTo(1.2, 6), 0]);
    expect(Array.from(r.clipped!.get('b')!.dataSync())).toEqual([0, expect.closeTo(1.6, 6)]);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([...r.clipped!.values()]);
    for (const max of [5.0001, 10, 0]) {
      const k = clipByGlobalNorm(g, max);
      expect(k.clipped).toBeNull();
      expect(k.norm).toBeCloseTo(5, 6);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...g.values()]);
  });
});
