// The VAE's nn helpers: PyTorch-exact resizes (fixtures from reference/gen_vae.py), causal conv3d as a sum of
// conv2d, explicit-padding conv2d, GroupNorm from merged per-piece statistics — on every backend.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../src/nn/backend.js';
import { causalConv3dFromHost, causalConvStep, conv2d, conv2dFromHost, disposeCausalConv3d, disposeConv2d } from '../src/nn/conv.js';
import { applyScaleShift, ChannelMoments, channelMoments, groupNorm, groupNormScaleShift } from '../src/nn/group_norm.js';
import { linearTaps, nearestIndices, resizeLinear, resizeNearest, upsampleNearest2d } from '../src/nn/resize.js';
import { HostTensor } from '../src/weights/host_tensor.js';
import { diff, expectClose, loadFixture, useBackend, describeEachBackend } from './helpers.js';

afterAll(() => shutdownBackend());

function values(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * scale + offset;
  }
  return out;
}

/** NCDHW → NDHWC and back, for the torch-layout fixtures. */
const toLast = (x: tf.Tensor) => tf.transpose(x, [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2), 1]);
const toFirst = (x: tf.Tensor) => tf.transpose(x, [0, x.rank - 1, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 1)]);

describe('resize index rules (PyTorch UpSample.h)', () => {
  it('nearest: floor(dst·in/out) in float32, with the ×1 and ×2 shortcuts', () => {
    expect(Array.from(nearestIndices(3, 7))).toEqual([0, 0, 0, 1, 1, 2, 2]);
    expect(Array.from(nearestIndices(4, 8))).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect(Array.from(nearestIndices(5, 3))).toEqual([0, 1, 3]);
    expect(Array.from(nearestIndices(2, 8))).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it('linear: align_corners=False source positions, clamped at 0 and at the last index', () => {
    // src = 0.5·(dst + 0.5) − 0.5 = −0.25 → 0, 0.25, 0.75, 1.25 (both taps on the last index past the end)
    const t = linearTaps(2, 4);
    expect(Array.from(t.i0)).toEqual([0, 0, 0, 1]);
    expect(Array.from(t.i1)).toEqual([1, 1, 1, 1]);
    expect(Array.from(t.w1)).toEqual([0, 0.25, 0.75, 0.25]);
  });
});

describeEachBackend('VAE nn helpers on %s', (backend) => {
  it('resizes like F.interpolate (nearest, trilinear align_corners=False)', async () => {
    await useBackend(backend);
    const fx = loadFixture('vae/resize.safetensors');
    const x = tf.tensor(fx.f32('x'), fx.shape('x'));
    const xl = toLast(x);
    for (const k of ['up', 'down', 'mixed', 'same']) {
      const size = fx.shape(`nearest.${k}`).slice(2);
      const n = toFirst(resizeNearest(xl, size));
      expectClose(`${backend} nearest ${k}`, n, fx.f32(`nearest.${k}`), fx.shape(`nearest.${k}`), { relL2: 0, maxAbs: 0 });
      const l = toFirst(resizeLinear(xl, size));
      expectClose(`${backend} trilinear ${k}`, l, fx.f32(`trilinear.${k}`), fx.shape(`trilinear.${k}`), { relL2: 1e-6, maxAbs: 1e-6 });
    }
    const n2 = toFirst(resizeNearest(xl, [10, 14, 12], [2, 2, 2]));
    expectClose(`${backend} nearest x2`, n2, fx.f32('nearest.x2'), fx.shape('nearest.x2'), { relL2: 0, maxAbs: 0 });
    const l2 = toFirst(resizeLinear(xl, [10, 14, 12], [2, 2, 2]));
    expectClose(`${backend} trilinear x2`, l2, fx.f32('trilinear.x2'), fx.shape('trilinear.x2'), { relL2: 1e-6, maxAbs: 1e-6 });
    const x2 = toLast(tf.squeeze(tf.slice(x, [0, 0, 0], [1, 1, 1]), [2]));
    expectClose(`${backend} nearest2d x2`, toFirst(upsampleNearest2d(x2 as tf.Tensor4D, 2)), fx.f32('nearest2d.x2'), fx.shape('nearest2d.x2'), { relL2: 0, maxAbs: 0 });
    expectClose(`${backend} nearest2d size`, toFirst(resizeNearest(x2, [10, 15])), fx.f32('nearest2d.up'), fx.shape('nearest2d.up'), { relL2: 0, maxAbs: 0 });
  });

  it('computes a causal conv3d as a sum of conv2d, equal to tf.conv3d on the padded frames', async () => {
    await useBackend(backend);
    const [cout, cin, H, W] = [5, 4, 6, 7];
    const wHost = new HostTensor([cout, cin, 3, 3, 3], 'f32', values(cout * cin * 27, 1, 0.4));
    const bHost = new HostTensor([cout], 'f32', values(cout, 2));
    const conv = causalConv3dFromHost(wHost, bHost);
    const frames = [0, 1, 2].map((k) => tf.tensor4d(values(H * W * cin, 10 + k), [1, H, W, cin]));
    const got = causalConvStep(frames, conv);
    // reference: torch weight [o, i, t, y, x] → tfjs conv3d filter [t, y, x, i, o] on the zero-padded window
    const w5 = tf.transpose(tf.tensor(wHost.data as Float32Array, [cout, cin, 3, 3, 3]), [2, 3, 4, 1, 0]) as tf.Tensor5D;
    const win = tf.pad(tf.stack(frames.map((f) => tf.squeeze(f, [0])), 0), [[0, 0], [1, 1], [1, 1], [0, 0]]);
    const ref = tf.add(tf.conv3d(tf.expandDims(win, 0) as tf.Tensor5D, w5, 1, 'valid'), tf.tensor1d(bHost.data as Float32Array));
    const d = diff(got.dataSync(), ref.dataSync());
    expect(got.shape).toEqual([1, H, W, cout]);
    expect(d.relL2).toBeLessThan(1e-6);
    // 1×1×1: a linear over channels
    const pw = causalConv3dFromHost(new HostTensor([cout, cin, 1, 1, 1], 'f32', values(cout * cin, 3)), bHost);
    const y = causalConvStep([frames[0]!], pw);
    const yRef = tf.add(tf.conv2d(frames[0]!, tf.transpose(tf.tensor(values(cout * cin, 3), [cout, cin, 1, 1]), [2, 3, 1, 0]) as tf.Tensor4D, 1, 'valid'), tf.tensor1d(bHost.data as Float32Array));
    expect(diff(y.dataSync(), yRef.dataSync()).relL2).toBeLessThan(1e-6);
    disposeCausalConv3d(conv);
    disposeCausalConv3d(pw);
  });

  it('pads explicitly (bottom/right only) for the stride-2 downsampler conv', async () => {
    await useBackend(backend);
    const c = conv2dFromHost(new HostTensor([3, 2, 3, 3], 'f32', values(54, 4)), new HostTensor([3], 'f32', values(3, 5)));
    const x = tf.tensor4d(values(2 * 8 * 6 * 2, 6), [2, 8, 6, 2]);
    const got = conv2d(x, c, { stride: 2, pad: [[0, 1], [0, 1]] });
    const ref = tf.add(tf.conv2d(tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]), c.w, 2, 'valid'), c.b!);
    expect(got.shape).toEqual([2, 4, 3, 3]);
    expect(diff(got.dataSync(), ref.dataSync()).maxAbs).toBeLessThan(1e-6);
    disposeConv2d(c);
  });

  it('GroupNorm from per-frame statistics merged in float64 equals GroupNorm of the whole tensor', async () => {
    await useBackend(backend);
    const [T, H, W, C, G] = [5, 6, 7, 8, 4];
    // large mean relative to the spread: merging must not lose the variance
    const data = values(T * H * W * C, 9, 2, 30);
    const x = tf.tensor4d(data, [T, H, W, C]);
    const gamma = values(C, 10, 0.5, 1);
    const beta = values(C, 11, 0.4);
    const whole = groupNorm(tf.reshape(x, [1, T * H, W, C]), G, 1e-6, gamma, beta);
    const acc = new ChannelMoments(C);
    for (let t = 0; t < T; t++) acc.add(channelMoments(tf.slice(x, [t], [1])));
    const streamed = applyScaleShift(x, groupNormScaleShift(acc, G, 1e-6, gamma, beta));
    expect(diff(streamed.dataSync(), whole.dataSync()).maxAbs).toBeLessThan(2e-6);
    // against float64 arithmetic on the host
    const per = C / G;
    const ref = new Float64Array(data.length);
    for (let g = 0; g < G; g++) {
      let s = 0;
      let n = 0;
      for (let i = 0; i < data.length; i++) if (Math.floor((i % C) / per) === g) (s += data[i]!), n++;
      const mean = s / n;
      let v = 0;
      for (let i = 0; i < data.length; i++) if (Math.floor((i % C) / per) === g) v += (data[i]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / n + 1e-6);
      for (let i = 0; i < data.length; i++) if (Math.floor((i % C) / per) === g) ref[i] = (data[i]! - mean) * rstd * gamma[i % C]! + beta[i % C]!;
    }
    // torch's y = x·scale + shift form loses ~|mean|/std ulps to cancellation (here mean/std ≈ 50): so does the reference
    const dref = diff(streamed.dataSync(), ref);
    expect(dref.relL2).toBeLessThan(1e-5);
    // large pieces take the avgPool path
    const big = tf.tensor4d(values(1 << 21, 12, 3, -5), [1, 256, 256, 32]);
    const m = channelMoments(big);
    const bd = big.dataSync();
    let s0 = 0;
    for (let i = 0; i < bd.length; i += 32) s0 += bd[i]!;
    const mean0 = s0 / (bd.length / 32);
    let v0 = 0;
    for (let i = 0; i < bd.length; i += 32) v0 += (bd[i]! - mean0) ** 2;
    expect(Math.abs(m.mean[0]! - mean0)).toBeLessThan(1e-5);
    expect(Math.abs(m.m2[0]! / v0 - 1)).toBeLessThan(1e-5);
    tf.dispose([x, whole, streamed, big]);
  });
});
