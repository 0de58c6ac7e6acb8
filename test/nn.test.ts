// Primitives: the wasm heap-view kernels, blocked attention, linear layouts, GELU — each against a direct formula.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { attention } from '../src/nn/attention.js';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NATIVE_ADDON_PATH, nativeAddon, nativeAttention, nativeInfo, nativeLinear, type NativeAddon, type NativeIsa } from '../src/nn/native.js';
import { geluTanh } from '../src/nn/activations.js';
import { disposeLinear, feedForward, linear, linearColumns, linearFromHost, linearRows, linearToHost } from '../src/nn/linear.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { HostTensor } from '../src/weights/host_tensor.js';
import { diff, useBackend, describeEachBackend } from './helpers.js';

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

describeEachBackend('nn primitives on %s', (backend) => {
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

  // the kernels themselves are checked against float64 per ISA below; here: attention() routes to them on tensorflow
  it.runIf(nativeAttention() !== null)('attention() agrees with the native fused kernel (on tensorflow it is that kernel, bit for bit) and with TF ops', async () => {
    await useBackend(backend);
    const native = nativeAttention()!;
    for (const [B, H, S, T, d] of [[2, 3, 77, 300, 64], [1, 2, 130, 129, 40]] as const) {
      const q = tf.tensor4d(values(B * H * S * d, 2), [B, H, S, d]);
      const k = tf.tensor4d(values(B * H * T * d, 3), [B, H, T, d]);
      const v = tf.tensor4d(values(B * H * T * d, 4), [B, H, T, d]);
      const scale = 1 / Math.sqrt(d);
      const ref = tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(tf.mul(q, scale), k, false, true)), v));
      const out = new Float32Array(B * H * S * d);
      native.attention(q.dataSync() as Float32Array, k.dataSync() as Float32Array, v.dataSync() as Float32Array, B * H, S, T, d, scale, out, 2);
      expect(diff(out, ref.dataSync()).relL2).toBeLessThan(2e-6);
      const routed = attention(q, k, v, { scale });
      // tensorflow routes to the native kernel (identical bits); wasm keeps its own blocked kernel
      if (backend === 'wasm') expect(diff(routed.dataSync(), out).relL2).toBeLessThan(2e-6);
      else expect(diff(routed.dataSync(), out).maxAbs).toBe(0);
      routed.dispose();
      tf.dispose([q, k, v, ref]);
    }
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

  it.runIf(nativeLinear() !== null)('linear on a host weight (native GEMM) equals the device layouts; no tensor left', async () => {
    await useBackend(backend);
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
    const before = tf.memory().numTensors;
    const pairs: [tf.Tensor, tf.Tensor][] = [
      [linear(x, host), linear(x, device)],
      [linear({ data: Float32Array.from(x2.dataSync()), rows, cols: inp }, host), linear(x2, device)], // host rows in
    ];
    // the head-wise slices (wasm only) never meet a host weight: a clear error, not a silent slow path
    if (host.layout === 'host') expect(() => linearColumns(x2, host, 13, 30)).toThrow(/linearColumns: .*host layout/);
    if (host.layout === 'host') expect(() => linearRows(x2, host, 5, 20)).toThrow(/linearRows: .*host layout/);
    for (const [got, want] of pairs) {
      expect(got.shape).toEqual(want.shape);
      const e = diff(got.dataSync(), want.dataSync());
      expect(e.maxAbs).toBeLessThan(2e-6);
    }
    if (host.layout === 'host') {
      // into a caller's scratch (the native attention reuses its [B, S, D] arrays): written there, same values
      const hx = { data: Float32Array.from(x2.dataSync()), rows, cols: inp };
      const into = new Float32Array(rows * out + 5);
      const r = linearToHost(hx, host, into);
      expect(r.data.buffer).toBe(into.buffer);
      expect(diff(r.data, pairs[0]![1].dataSync()).maxAbs).toBeLessThan(2e-6);
      expect(() => linearToHost(hx, host, new Float32Array(10))).toThrow(`linearToHost: the output array holds 10 floats, ${rows * out} needed`);
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
    // in row chunks (130 rows at ≤ 40 per chunk: 4 equal chunks of 33, 33, 33, 31) the same rows
    const ffChunked = feedForward(x8, host, downHost, 40);
    expect(diff(ffChunked.dataSync(), ffGot.dataSync()).maxAbs).toBeLessThan(1e-6);
    tf.dispose([ffGot, ffWant, ffChunked, x8]);
    disposeLinear(downHost);
    disposeLinear(downDevice);
    expect(tf.memory().numTensors).toBe(before);
    const bad = tf.zeros([3, inp + 1]);
    expect(() => linear(bad, host)).toThrow(/does not end in the weight's 37 input features/);
    tf.dispose([x, x2, bad]);
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

// ---- the native addon's kernels, against float64, on every ISA this CPU can execute ----

const ADDON = nativeAddon();
const ALL_ISAS: NativeIsa[] = ['avx512', 'avx2', 'portable'];
/** This CPU's features from the OS (not from the addon, which is what is checked). */
const CPU_FLAGS = new Set(fs.existsSync('/proc/cpuinfo') ? (/^flags\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? []) : []);
const EXPECTED_ISAS: NativeIsa[] = [
  ...(CPU_FLAGS.has('avx512f') && CPU_FLAGS.has('avx2') && CPU_FLAGS.has('fma') ? (['avx512'] as const) : []),
  ...(CPU_FLAGS.has('avx2') && CPU_FLAGS.has('fma') ? (['avx2'] as const) : []),
  'portable',
];

describe('native addon presence (CI: COGVIDEOX_EXPECT_NATIVE=1)', () => {
  it.runIf(process.env.COGVIDEOX_EXPECT_NATIVE === '1')('the addon loads and has the kernels of every ISA this CPU supports', () => {
    expect(ADDON, `${NATIVE_ADDON_PATH} should be built and load`).not.toBeNull();
    const info = nativeInfo()!;
    // an AVX-512 CPU must get the AVX-512 GEMM, an AVX2 + FMA one the AVX2 GEMM (unless an ISA is forced)
    expect(info.isas).toEqual(EXPECTED_ISAS);
    if (!process.env.COGVIDEOX_NATIVE_ISA) expect(info.isa).toBe(EXPECTED_ISAS[0]);
    expect(info.kernels.linear).toBe(info.isa === 'portable' ? 'none' : info.isa);
    if (info.isa !== 'portable' && process.env.COGVIDEOX_NATIVE_GEMM !== '0') expect(nativeLinear(), 'the GEMM on an AVX2 / AVX-512 CPU').not.toBeNull();
  });
});

const HAS_OBJDUMP = spawnSync('objdump', ['--version']).status === 0;

describe('native addon build: runs on any x86-64', () => {
  // A copy built elsewhere must not SIGILL: AVX / AVX-512 instructions only inside the dispatched kernels (run only
  // when the CPU has them, cpu.h), never in the code every CPU runs — what -march=native produced.
  it.runIf(ADDON !== null && HAS_OBJDUMP && process.arch === 'x64')('AVX2 / AVX-512 instructions appear only in the avx2:: / avx512:: kernels', () => {
    const asm = spawnSync('objdump', ['-d', '--no-show-raw-insn', '-C', NATIVE_ADDON_PATH], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
    const offenders = new Map<string, string>();
    let fn = '';
    let vex = 0;
    for (const line of asm.split('\n')) {
      const head = /^[0-9a-f]+ <(.*)>:$/.exec(line);
      if (head) fn = head[1]!;
      else if (/\tv[a-z0-9]+\s/.test(line) || /[yz]mm/.test(line)) {
        vex++;
        const ok = fn.includes('avx512::') || (fn.includes('avx2::') && !/zmm|%k[0-7]|mm(1[6-9]|2\d|3[01])\b/.test(line));
        if (!ok && !offenders.has(fn)) offenders.set(fn, line.trim());
      }
    }
    expect(vex, 'the kernels were found in the disassembly').toBeGreaterThan(1000);
    expect([...offenders].map(([f, l]) => `${f}: ${l}`)).toEqual([]);
  });

  it('the build refuses -march / -mavx flags (they would put those instructions everywhere)', () => {
    const r = spawnSync(process.execPath, [path.join(path.dirname(NATIVE_ADDON_PATH), '..', '..', 'scripts', 'build-native.mjs')], {
      encoding: 'utf8',
      env: { ...process.env, COGVIDEOX_NATIVE_CFLAGS: '-O3 -march=native' },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/-march=native refused/);
  });
});

/** Runs fn with the addon's kernels forced to `isa`, then restores the ISA it had. */
function withIsa<T>(addon: NativeAddon, isa: NativeIsa, fn: () => T): T {
  const before = addon.simd as NativeIsa;
  addon.setIsa(isa);
  try {
    return fn();
  } finally {
    addon.setIsa(before);
  }
}

/** softmax(scale·q·kᵀ)·v in float64, q [BH, Sq, d], k/v [BH, Sk, d]. */
function attention64(q: Float32Array, k: Float32Array, v: Float32Array, BH: number, Sq: number, Sk: number, d: number, scale: number): Float64Array {
  const out = new Float64Array(BH * Sq * d);
  const p = new Float64Array(Sk);
  for (let h = 0; h < BH; h++)
    for (let i = 0; i < Sq; i++) {
      let mx = -Infinity;
      for (let j = 0; j < Sk; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[(h * Sq + i) * d + c]! * k[(h * Sk + j) * d + c]!;
        p[j] = s * scale;
        mx = Math.max(mx, p[j]!);
      }
      let sum = 0;
      for (let j = 0; j < Sk; j++) sum += p[j] = Math.exp(p[j]! - mx);
      for (let j = 0; j < Sk; j++) {
        const w = p[j]! / sum;
        for (let c = 0; c < d; c++) out[(h * Sq + i) * d + c] += w * v[(h * Sk + j) * d + c]!;
      }
    }
  return out;
}

describe.each(ALL_ISAS)('native kernels, %s ISA', (isa) => {
  const runs = ADDON !== null && ADDON.isas.includes(isa);
  const hasGemm = isa !== 'portable';

  it.runIf(runs)('fused attention equals a float64 softmax(scale·q·kᵀ)·v (tails, several key tiles, d = 64 / 48 / 40, large scores)', () => {
    const native = ADDON!;
    // Sq, Sk not multiples of the 192-query / 64-key tiles or of 16 lanes; d = 64 (AVX-512 register path), 48 (AVX2
    // 16-column path), 40 (scalar p·v); ×30: scores up to ±60, where a wrong exp or running max shows
    for (const [B, H, S, T, d, amp] of [
      [2, 3, 77, 300, 64, 1],
      [1, 2, 200, 129, 48, 1],
      [1, 2, 130, 67, 40, 1],
      [1, 1, 5, 17, 64, 30],
    ] as const) {
      const q = values(B * H * S * d, 2).map((x) => x * amp);
      const k = values(B * H * T * d, 3);
      const v = values(B * H * T * d, 4);
      const scale = 1 / Math.sqrt(d);
      const want = attention64(q, k, v, B * H, S, T, d, scale);
      const outs = [1, 2].map((threads) => {
        const out = new Float32Array(B * H * S * d);
        withIsa(native, isa, () => native.attention(q, k, v, B * H, S, T, d, scale, out, threads));
        return out;
      });
      const e = diff(outs[0]!, want);
      // measured on avx512, avx2, portable: rel-L2 ≤ 4.5e-7, max |error| ≤ 4.2e-7; a wrong tile, tail or exp ≥ 1e-4
      expect(e.relL2, `[${B},${H},${S},${T},${d}] ×${amp}: ${JSON.stringify(e)}`).toBeLessThan(4e-6);
      expect(e.maxAbs).toBeLessThan(4e-6);
      expect(diff(outs[1]!, outs[0]!).maxAbs, 'same bits for any thread count').toBe(0);
    }
    expect(() => native.attention(new Float32Array(3), new Float32Array(8), new Float32Array(8), 1, 1, 1, 8, 1, new Float32Array(8), 1)).toThrow(/q must be a Float32Array of 8 elements/);
  });

  it.runIf(runs && hasGemm)('the GEMM equals a float64 product (tails, several K and N blocks, strided weight), any thread count', () => {
    const native = ADDON!;
    // [M, K, N, ldw]: 1×1×1; tails of the 6×64 / 6×16 micro-tiles; K > 512 (several accumulation slices); N > 4096
    // (two column blocks); ldw > K (a column slice of a wider weight); few rows split over panel groups.
    const cases = [[1, 1, 1, 1], [5, 7, 3, 7], [7, 33, 65, 40], [13, 1100, 130, 1100], [97, 20, 4161, 20], [61, 70, 129, 75], [200, 64, 64, 64], [150, 300, 40, 301]] as const;
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
          withIsa(native, isa, () => native.linear(x, M, K, w, ldw, N, withBias ? bias : null, out, threads));
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
    withIsa(native, isa, () => {
      expect(() => native.linear(new Float32Array(5), 2, 3, new Float32Array(6), 3, 2, null, new Float32Array(4), 1)).toThrow(/x must be a Float32Array of 6 elements, got 5/);
      expect(() => native.linear(new Float32Array(6), 2, 3, new Float32Array(5), 3, 2, null, new Float32Array(4), 1)).toThrow(/w must be a Float32Array of at least 6 elements/);
      expect(() => native.linear(new Float32Array(6), 2, 3, new Float32Array(6), 2, 2, null, new Float32Array(4), 1)).toThrow(/ldw ≥ K/);
      expect(() => native.linear(new Float32Array(6), 2, 3, new Float32Array(6), 3, 2, new Float32Array(3), new Float32Array(4), 1)).toThrow(/bias must be a Float32Array of 2 elements/);
    });
  });

  it.runIf(runs && hasGemm)('the GEMM\'s GELU epilogue equals the tanh formula, tails included', () => {
    const native = ADDON!;
    // x · I = x: the epilogue alone, on values from −12 to 12 (both tails, where exp under/overflows, and the middle)
    const n = 2401;
    const xs = Float32Array.from({ length: n }, (_, i) => (i - 1200) / 100);
    const out = new Float32Array(n);
    withIsa(native, isa, () => native.linear(xs, n, 1, new Float32Array([1]), 1, 1, null, out, 2, true));
    xs.forEach((x, i) => {
      const want = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
      expect(Math.abs(out[i]! - want), `x = ${x}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(want)));
    });
  });

  it.runIf(runs && hasGemm)('the modulated LayerNorm equals float64 ((x − mean)/σ·w + b)·(1 + scale) + shift, into rows offset… of its output', () => {
    const native = ADDON!;
    // D = 1920 (the DiT's width), 37 and 13 (lane tails); with and without the affine w, b; rows outside the target
    // block stay untouched
    for (const [B, R, D, outRows, offset, affine] of [[2, 5, 1920, 9, 3, true], [3, 4, 37, 4, 0, false], [1, 70, 13, 71, 1, true]] as const) {
      const x = values(B * R * D, 70 + D).map((v, i) => v * 3 + (i % 7)); // mean ≠ 0, σ ≠ 1
      const w = affine ? values(D, 71) : null;
      const b = affine ? values(D, 72) : null;
      const scale = values(B * D, 73);
      const shift = values(B * D, 74);
      const eps = 1e-5;
      const out = new Float32Array(B * outRows * D).fill(7);
      withIsa(native, isa, () => native.adaLayerNorm(x, B, R, D, eps, w, b, scale, shift, out, outRows, offset, 2));
      const want = new Float64Array(out.length).fill(7);
      for (let bi = 0; bi < B; bi++)
        for (let r = 0; r < R; r++) {
          const row = x.subarray((bi * R + r) * D, (bi * R + r + 1) * D);
          let mean = 0;
          for (const v of row) mean += v;
          mean /= D;
          let vr = 0;
          for (const v of row) vr += (v - mean) ** 2;
          const rstd = 1 / Math.sqrt(vr / D + eps);
          for (let i = 0; i < D; i++) {
            const y = (row[i]! - mean) * rstd * (w ? w[i]! : 1) + (b ? b[i]! : 0);
            want[(bi * outRows + offset + r) * D + i] = y * (1 + scale[bi * D + i]!) + shift[bi * D + i]!;
          }
        }
      const e = diff(out, want);
      // outputs of size ~1: measured max |error| ≤ 3.5e-7 (avx512, avx2); a wrong mean, variance or modulation ≥ 1e-3
      expect(e.maxAbs, `[${B},${R},${D}] → ${outRows} @${offset}: ${JSON.stringify(e)}`).toBeLessThan(4e-6);
    }
  });

  it.runIf(runs && !hasGemm)('has no GEMM: linear refuses, and the library uses TensorFlow\'s matMul', () => {
    const native = ADDON!;
    withIsa(native, isa, () => {
      expect(() => native.linear(new Float32Array(1), 1, 1, new Float32Array(1), 1, 1, null, new Float32Array(1), 1)).toThrow(/no portable kernel/);
      expect(nativeLinear()).toBeNull();
      expect(native.info().kernels.linear).toBe('none');
    });
  });

  it.runIf(ADDON !== null && !ADDON.isas.includes(isa))('is refused with a clear error on this CPU', () => {
    expect(() => ADDON!.setIsa(isa)).toThrow(new RegExp(`cannot execute the ${isa} kernels`));
  });
});
