// The random Generator: Philox4x32-10 known answers, seeded determinism across runs and backends, distribution
// sanity, and InjectedGenerator replay (used by the parity tests to feed the reference's noise draws).
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../src/nn/backend.js';
import { InjectedGenerator, philox4x32, PhiloxGenerator } from '../src/schedulers/generator.js';
import { describeEachBackend, useBackend } from './helpers.js';

afterAll(() => shutdownBackend());

const hex = (w: Uint32Array) => Array.from(w, (x) => x.toString(16).padStart(8, '0'));

describe('Philox4x32-10', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    expect(hex(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))).toEqual([
      '408f276d',
      '41c83b0e',
      'a20bc7c6',
      '6d5451fd',
    ]);
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toEqual([
      'd16cfe09',
      '94fdcceb',
      '5001e420',
      '24126ea1',
    ]);
  });
});

describe('PhiloxGenerator', () => {
  it('gives the same numbers for the same seed, in every run (golden values)', () => {
    // a change here changes every seeded video: only on purpose, and say so in the changelog
    expect(Array.from(new PhiloxGenerator(42).randnHost([7]))).toEqual([
      0.8864974975585938, 0.4393560588359833, -0.15660962462425232, -0.013718678615987301, -0.49410051107406616, -0.37216684222221375,
      -0.6798916459083557,
    ]);
    expect(Array.from(new PhiloxGenerator(2n ** 64n - 1n).randnHost([3]))).toEqual([-0.9125069975852966, -0.8798009753227234, -1.6136175394058228]);
    const a = new PhiloxGenerator(43);
    const b = new PhiloxGenerator(43n);
    expect(a.randnHost([2, 3, 5])).toEqual(b.randnHost([2, 3, 5]));
    expect(a.randnHost([4])).toEqual(b.randnHost([4]));
  });

  it('advances: consecutive draws, different seeds and odd sizes give different numbers', () => {
    const g = new PhiloxGenerator(43);
    const first = g.randnHost([1000]);
    const second = g.randnHost([1000]);
    expect(first).not.toEqual(second);
    expect(new PhiloxGenerator(44).randnHost([1000])).not.toEqual(first);
    // every call starts at a fresh block: a 3-value draw uses 2 blocks, so the stream position is 2
    const h = new PhiloxGenerator(43);
    h.randnHost([3]);
    expect(h.offset).toBe(2);
    expect(h.randnHost([2])).toEqual(new PhiloxGenerator(43).randnHost([6]).slice(4, 6));
    expect(new PhiloxGenerator(1).randnHost([0])).toEqual(new Float32Array(0));
  });

  it('is standard normal (mean, std, tails) and finite', () => {
    const x = new PhiloxGenerator(7).randnHost([200_000]);
    let sum = 0;
    let sq = 0;
    let tail = 0;
    let nonFinite = 0;
    for (const v of x) {
      if (!Number.isFinite(v)) nonFinite++;
      sum += v;
      sq += v * v;
      if (Math.abs(v) > 3) tail++;
    }
    expect(nonFinite).toBe(0);
    const mean = sum / x.length;
    const std = Math.sqrt(sq / x.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(std - 1)).toBeLessThan(0.01);
    expect(tail / x.length).toBeGreaterThan(0.0020); // P(|z| > 3) = 0.0027
    expect(tail / x.length).toBeLessThan(0.0034);
  });

  it('seek(k) continues exactly where k drawn blocks would, without drawing them (training resume)', () => {
    const drawn = new PhiloxGenerator(42);
    drawn.randnHost([10]); // 5 blocks
    drawn.randnHost([7]); // 4 blocks (the odd tail uses a whole block)
    const sought = new PhiloxGenerator(42);
    sought.seek(drawn.offset);
    expect(sought.offset).toBe(9);
    expect(Array.from(sought.randnHost([6]))).toEqual(Array.from(drawn.randnHost([6])));
    // far positions (the demo run's step 4700 is at 7.6e9 blocks): counter words above 2^32 are addressed, not drawn
    const far = new PhiloxGenerator(42);
    far.seek(7_623_494_000);
    const a = far.randnHost([4]);
    const b = new PhiloxGenerator(42);
    b.seek(7_623_494_000 + 1);
    expect(Array.from(b.randnHost([2]))).toEqual(Array.from(a.subarray(2)));
    expect(() => far.seek(-1)).toThrow(/non-negative safe integer/);
    expect(() => far.seek(1.5)).toThrow(/non-negative safe integer/);
  });

  it('rejects invalid seeds and shapes', () => {
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 60]) expect(() => new PhiloxGenerator(bad)).toThrow(/seed must be an integer in \[0, 2\^64\)/);
    expect(() => new PhiloxGenerator(2n ** 64n)).toThrow(/seed/);
    expect(() => new PhiloxGenerator(1).randnHost([2, -1])).toThrow(/invalid shape/);
  });
});

describe('InjectedGenerator', () => {
  it('replays the given draws in order, as copies, and reports what is left', () => {
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const g = new InjectedGenerator([
      { data: a, shape: [2, 3] },
      { data: Float32Array.from([7]), shape: [1] },
    ]);
    expect(g.remaining).toBe(2);
    const first = g.randnHost([2, 3]);
    expect(Array.from(first)).toEqual([1, 2, 3, 4, 5, 6]);
    first[0] = 99;
    expect(a[0]).toBe(1);
    expect(Array.from(g.randnHost([1]))).toEqual([7]);
    expect(g.remaining).toBe(0);
  });

  it('fails clearly when it runs out or a shape differs', () => {
    const g = new InjectedGenerator([{ data: new Float32Array(6), shape: [2, 3] }]);
    expect(() => g.randnHost([3, 2])).toThrow(
      'InjectedGenerator: draw #1 requested with shape [3, 2], but the injected tensor has shape [2, 3]',
    );
    expect(g.remaining).toBe(1); // a refused request does not consume the draw
    g.randnHost([2, 3]);
    expect(() => g.randnHost([2, 3])).toThrow('InjectedGenerator: draw #2 (shape [2, 3]) requested, but only 1 draw(s) were injected');
    expect(() => new InjectedGenerator([{ data: new Float32Array(5), shape: [2, 3] }])).toThrow(/5 values but shape \[2, 3\]/);
  });
});

describeEachBackend('generators on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it('randn gives the host numbers as a float32 tensor (backend-independent) and leaks nothing', () => {
    const before = tf.memory().numTensors;
    const t = new PhiloxGenerator(43).randn([2, 3, 4, 5, 6]);
    expect(t.shape).toEqual([2, 3, 4, 5, 6]);
    expect(t.dtype).toBe('float32');
    expect(t.dataSync()).toEqual(new PhiloxGenerator(43).randnHost([2, 3, 4, 5, 6]));
    t.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('InjectedGenerator copies tensors at construction and returns fresh ones', () => {
    const before = tf.memory().numTensors;
    const src = tf.tensor([[1, 2], [3, 4]]);
    const g = new InjectedGenerator([src]);
    src.dispose();
    const out = g.randn([2, 2]);
    expect(Array.from(out.dataSync())).toEqual([1, 2, 3, 4]);
    out.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
