// Primitives: the wasm heap-view kernels, blocked attention, linear layouts, GELU — each against a direct formula.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { attention } from '../src/nn/attention.js';
import { NATIVE_ADDON_PATH, nativeAttention, nativeLinear } from '../src/nn/native.js';
import { geluTanh } from '../src/nn/activations.js';
import { disposeLinear, feedForward, linear, linearColumns, linearFromHost, linearRows } from '../src/nn/linear.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { HostTensor } from '../src/weights/host_tensor.js';
import { BACKENDS, diff, useBackend } from './helpers.js';

afterAll(() => shutdownBackend());

/** Deterministic pseudo-random values (no tf RNG: identical on every backend). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

describe.each(BACKENDS)('nn primitives on %s', (backend) => {
  it('slice / unstack / split of rank-5 tensors equal index arithmetic', async () => {
    await useBackend(backend);
    const shape = [2, 3, 4, 5, 6];
    const data = values(720, 1);
    const x = tf.tensor(data, shape);
    const at = (i: number[]) => data[(((i[0]! * 3 + i[1]!) * 4 + i[2]!) * 5 + i[3]!) * 6 + i[4]!]!;
    const y = tf.slice(x, [1, 0, 1, 2, 3], [1, 3, 2, 3, 2]);
    const got = y.dataSync();
    let k = 0;
    for (let b = 0; b < 3; b++) for (let c = 1; c < 3; c++) for (let d = 2; d < 5; d++) for (let e = 3; e < 5; e++) expect(got[k++]).toBe(at([1, b, c, d, e]));
    const parts = tf.unstack(x, 3);
    expect(parts[4]!.shape).toEqual([2, 3, 4, 6]);
    expect(parts[4]!.dataSync()[7]).toBe(at([0, 0, 1, 4, 1]));
    const [, s2] = tf.split(x, [1, 3], 2);
    expect(s2!.shape).toEqual([2, 3, 3, 5, 6]);
    expect(s2!.dataSync()[0]).toBe(at([0, 0, 1, 0, 0]));
    tf.dispose([x, y, ...parts, s2!]);
  });

  it('blocked attention equals the plain formula, whatever the block size', async () => {
    await useBackend(backend);
    const [B, H, S, T, d] = [2, 3, 37, 29, 8];
    const q = tf.tensor4d(values(B * H * S * d, 2), [B, H, S, d]);
    const k = tf.tensor4d(values(B * H * T * d, 3), [B, H, T, d]);
    const v = tf.tensor4d(values(B * H * T * d, 4), [B, H, T, d]);
    const bias = tf.tensor4d(values(H * S * T, 5), [1, H, S, T]);
    const ref = tf.tidy(() => tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 0.25), bias)), v));
    const refData = await ref.data();
    const before = tf.memory().numTensors;
    for (const scratchBytes of [1, 4 * T * 8, 1 << 30]) {
      const out = attention(q, k, v, { scale: 0.25, bias, scratchBytes });
      const e = diff(await out.data(), refData);
      expect(e.maxAbs).toBeLessThan(1e-6);
      out.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([q, k, v, bias, ref]);
  });

  it('the native fused attention kernel equals the plain formula (tails, several key tiles, large scores)', async () => {
    await useBackend(backend);
    const native = nativeAttention();
    if (process.env.COGVIDEOX_EXPECT_NATIVE === '1') expect(native, `${NATIVE_ADDON_PATH} should be built`).not.toBeNull();
    if (!native) return;
    // Sq, Sk not multiples of the 64-query / 128-key tiles or of 16 lanes; d = 64 (vector path) and 40 (portable path)
    for (const [B, H, S, T, d, amp] of [
      [2, 3, 77, 300, 64, 1],
      [1, 2, 130, 129, 40, 1],
      [1, 1, 5, 17, 64, 30],
    ] as const) {
      const q = tf.tensor4d(values(B * H * S * d, 2).map((x) => x * amp), [B, H, S, d]);
      const k = tf.tensor4d(values(B * H * T * d, 3), [B, H, T, d]);
      const v = tf.tensor4d(values(B * H * T * d, 4), [B, H, T, d]);
      const scale = 1 / Math.sqrt(d);
      const ref = tf.tidy(() => tf.matMul(tf.softmax(tf.mul(tf.matMul(tf.mul(q, scale), k, false, true), 1)), v));
      const out = new Float32Array(B * H * S * d);
      native.attention(q.dataSync() as Float32Array, k.dataSync() as Float32Array, v.dataSync() as Float32Array, B * H, S, T, d, scale, out, 2);
      const e = diff(out, ref.dataSync());
      expect(e.relL2, `[${B},${H},${S},${T},${d}] ×${amp}: ${JSON.stringify(e)}`).toBeLessThan(2e-6);
      expect(e.maxAbs).toBeLessThan(2e-5);
      if (backend !== 'wasm') {
        // attention() routes here on tensorflow: the same numbers, bit for bit
        const routed = attention(q, k, v, { scale });
        expect(diff(routed.dataSync(), out).maxAbs).toBe(0);
        routed.dispose();
      }
      tf.dispose([q, k, v, ref]);
    }
    expect(() => native.attention(new Float32Array(3), new Float32Array(8), new Float32Array(8), 1, 1, 1, 8, 1, new Float32Array(8), 1)).toThrow(/q must be a Float32Array of 8 elements/);
  });

  it('linear gives the same numbers in both weight layouts and for any row count', async () => {
    await useBackend(backend);
    const [out, inp] = [19, 23];
    const w = new HostTensor([out, inp], 'f32', values(out * inp, 6));
    const b = new HostTensor([out], 'f32', values(out, 7));
    const x = tf.tensor2d(values(2100 * inp, 8), [2100, inp]);
    const ref = tf.tidy(() => tf.add(tf.matMul(x, tf.transpose(tf.tensor2d(w.data as Float32Array, [out, inp]))), tf.tensor1d(b.data as Float32Array)));
    for (const rows of [16, 100_000]) {
      const p = linearFromHost(w, b, { rows });
      const y = linear(x, p);
      expect(y.shape).toEqual([2100, out]);
      expect(diff(y.dataSync(), ref.dataSync()).maxAbs).toBeLessThan(1e-5);
      y.dispose();
      disposeLinear(p);
    }
    tf.dispose([x, ref]);
  });

  it('the native GEMM\'s GELU epilogue equals the tanh formula, tails included', async () => {
    await useBackend(backend);
    const native = nativeLinear();
    if (!native) return;
    // x · I = x: the epilogue alone, on values from −12 to 12 (both tails, where exp under/overflows, and the middle)
    const n = 2401;
    const xs = Float32Array.from({ length: n }, (_, i) => (i - 1200) / 100);
    const out = new Float32Array(n);
    native.linear(xs, n, 1, new Float32Array([1]), 1, 1, null, out, 2, true);
    xs.forEach((x, i) => {
      const want = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
      expect(Math.abs(out[i]! - want), `x = ${x}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(want)));
    });
  });

  it('the native GEMM equals a float64 product (tails, several K and N blocks, strided weight), any thread count', async () => {
    await useBackend(backend);
    const native = nativeLinear();
    if (process.env.COGVIDEOX_EXPECT_NATIVE === '1' && nativeAttention()?.simd === 'avx512') expect(native, 'the AVX-512 addon exports linear').not.toBeNull();
    if (!native) return;
    // [M, K, N, ldw]: 1×1×1; tails of the 6×64 micro-tile; K > 512 (two accumulation slices); N > 4096 (two column
    // blocks); ldw > K (a column slice of a wider weight); few rows split over panel groups.
    const cases = [[1, 1, 1, 1], [5, 7, 3, 7], [7, 33, 65, 40], [13, 1100, 130, 1100], [97, 20, 4161, 20], [61, 70, 129, 75], [200, 64, 64, 64]] as const;
    for (const [ci, [M, K, N, ldw]] of cases.entries()) {
      const x = values(M * K, 20 + ci);
      const w = values(N * ldw, 40 + ci).map((v) => v * 0.1);
      const bias = values(N, 60 + ci);
      for (const withBias of [true, false]) {
        const want = new Float64Array(M * N);
        for (let i = 0; i < M; i++)
          for (let j = 0; j < N; j++) {
            let acc = withBias ? bias[j]! : 0;
            for (let k = 0; k < K; k++) acc += x[i * K + k]! * w[j * ldw + k]!;
            want[i * N + j] = acc;
          }
        const outs = [1, 2, 3].map((threads) => {
          const out = new Float32Array(M * N);
          native.linear(x, M, K, w, ldw, N, withBias ? bias : null, out, threads);
          return out;
        });
        const e = diff(outs[0]!, want);
        // fp32 products over ≤ 1100 terms of size ≤ 0.05: |error| ≲ 1e-6; a wrong tap or tile is ≥ 1e-3
        expect(e.maxAbs, `case ${ci} bias ${withBias}`).toBeLessThan(2e-6);
        expect(e.relL2).toBeLessThan(1e-6);
        // the summation order does not depend on the thread split: identical bits
        expect(diff(outs[1]!, outs[0]!).maxAbs).toBe(0);
        expect(diff(outs[2]!, outs[0]!).maxAbs).toBe(0);
      }
    }
    expect(() => native.linear(new Float32Array(5), 2, 3, new Float32Array(6), 3, 2, null, new Float32Array(4), 1)).toThrow(/x must be a Float32Array of 6 elements, got 5/);
    expect(() => native.linear(new Float32Array(6), 2, 3, new Float32Array(5), 3, 2, null, new Float32Array(4), 1)).toThrow(/w must be a Float32Array of at least 6 elements/);
    expect(() => native.linear(new Float32Array(6), 2, 3, new Float32Array(6), 2, 2, null, new Float32Array(4), 1)).toThrow(/ldw ≥ K/);
    expect(() => native.linear(new Float32Array(6), 2, 3, new Float32Array(6), 3, 2, new Float32Array(3), new Float32Array(4), 1)).toThrow(/bias must be a Float32Array of 2 elements/);
  });

  it('linear on a host weight (native GEMM) equals the device layouts: whole, column slice, row slice; no tensor left', async () => {
    await useBackend(backend);
    if (!nativeLinear()) return;
    const [out, inp, rows] = [70, 37, 130];
    const w = new HostTensor([out, inp], 'f32', values(out * inp, 9));
    const b = new HostTensor([out], 'f32', values(out, 10));
    const host = linearFromHost(w, b, { rows: 10_000 });
    const device = linearFromHost(w, b, { rows: 2 });
    // the native GEMM serves tensorflow only (wasm keeps its own layouts) and not the few-row linears
    expect(host.layout).toBe(backend === 'wasm' ? 'in-out' : 'host');
    expect(device.layout).toBe('out-in');
    const x = tf.tensor3d(values(rows * inp, 11), [2, rows / 2, inp]);
    const x2 = tf.reshape(x, [rows, inp]) as tf.Tensor2D;
    const xs = tf.slice(x2, [0, 5], [rows, 20]) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    const pairs: [tf.Tensor, tf.Tensor][] = [
      [linear(x, host), linear(x, device)],
      [linearColumns(x2, host, 13, 30), linearColumns(x2, device, 13, 30)],
      [linearRows(xs, host, 5, 20), linearRows(xs, device, 5, 20)],
    ];
    for (const [got, want] of pairs) {
      expect(got.shape).toEqual(want.shape);
      const e = diff(got.dataSync(), want.dataSync());
      expect(e.maxAbs).toBeLessThan(2e-6);
    }
    pairs.flat().forEach((t) => t.dispose());
    expect(tf.memory().numTensors).toBe(before);
    // the feed-forward: GELU applied by the GEMM as it stores the last K slice, intermediate kept on the host
    const down = new HostTensor([23, out], 'f32', values(23 * out, 12));
    const downB = new HostTensor([23], 'f32', values(23, 13));
    const [downHost, downDevice] = [linearFromHost(down, downB, { rows: 10_000 }), linearFromHost(down, downB, { rows: 2 })];
    const x8 = tf.mul(x, 8); // GELU's tails (|u| ≫ 1) and its curved middle
    const ffGot = feedForward(x8, host, downHost);
    const ffWant = tf.tidy(() => linear(geluTanh(linear(x8, device)), downDevice));
    expect(ffGot.shape).toEqual([2, rows / 2, 23]);
    expect(diff(ffGot.dataSync(), ffWant.dataSync()).relL2).toBeLessThan(1e-6);
    tf.dispose([ffGot, ffWant, x8]);
    disposeLinear(downHost);
    disposeLinear(downDevice);
    expect(tf.memory().numTensors).toBe(before);
    const bad = tf.zeros([3, inp + 1]);
    expect(() => linear(bad, host)).toThrow(/does not end in the weight's 37 input features/);
    tf.dispose([x, x2, xs, bad]);
    disposeLinear(host);
    disposeLinear(device);
  });

  it('GELU (tanh form) matches 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))', async () => {
    await useBackend(backend);
    const xs = Array.from({ length: 201 }, (_, i) => (i - 100) / 10);
    const got = geluTanh(tf.tensor1d(xs)).dataSync();
    xs.forEach((x, i) => {
      const want = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
      expect(Math.abs(got[i]! - want)).toBeLessThan(2e-6 * Math.max(1, Math.abs(want)));
    });
  });
});
