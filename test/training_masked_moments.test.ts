// maskedVideoMoments (src/training/step.ts): the masked video's VAE moments with the encoder run only on rows whose
// result matters. Checked against encoding the whole batch with the tiny test VAE: rows with pixels are the same,
// a fully masked row with t2v flag 1 is the same, one with flag 0 is zero (its inpaint latents are multiplied by 0).
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoencoderKLCogVideoX } from '../src/models/vae.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { maskedVideoMoments } from '../src/training/step.js';
import { FIXTURES, describeEachBackend, useBackend } from './helpers.js';

afterAll(() => shutdownBackend());

describeEachBackend('maskedVideoMoments (%s)', (backend) => {
  let vae: AutoencoderKLCogVideoX;
  const calls: number[] = [];
  const encode = (px: Float32Array, shape: readonly number[]): tf.Tensor5D => {
    calls.push(shape[0]!);
    const x = tf.tidy(() => tf.transpose(tf.tensor5d(px, shape as [number, number, number, number, number]), [0, 2, 1, 3, 4]));
    const d = vae.encode(x);
    x.dispose();
    const m = d.moments.clone();
    d.dispose();
    return m;
  };
  beforeAll(async () => {
    await useBackend(backend);
    vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(FIXTURES, 'tiny-vae', 'vae'));
  });
  afterAll(() => vae?.dispose());

  // [B, F, 3, H, W] = [4, 1, 3, 16, 16]; rows 1 and 3 fully masked (all −1), rows 0 and 2 with content
  const shape = [4, 1, 3, 16, 16];
  const per = 3 * 16 * 16;
  const pixels = new Float32Array(4 * per);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(i * 0.37) * 0.9;
  pixels.fill(-1, per, 2 * per);
  pixels.fill(-1, 3 * per, 4 * per);
  pixels.fill(-1, 0, per / 3); // a partly masked row stays a content row

  it('equals the whole-batch encoding where it matters, zero where the flag is 0, and encodes only what it needs', () => {
    const whole = encode(pixels, shape);
    const blank = new Map<string, tf.Tensor5D>();
    calls.length = 0;
    const got = maskedVideoMoments(encode, pixels, shape, [1, 0, 1, 1], blank);
    expect(calls).toEqual([2, 1]); // the two content rows, then the blank video once
    const w = whole.arraySync() as number[][][][][];
    const g = got.arraySync() as number[][][][][];
    expect(got.shape).toEqual(whole.shape);
    const maxDiff = (a: unknown, b: unknown) => {
      const [x, y] = [(a as number[]).flat(4) as number[], (b as number[]).flat(4) as number[]];
      return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
    };
    for (const b of [0, 2, 3]) expect(maxDiff(g[b], w[b])).toBeLessThan(1e-5);
    expect(Math.max(...g[1]!.flat(4).map(Math.abs))).toBe(0);
    // a second batch of the same shape reuses the blank encoding
    calls.length = 0;
    const again = maskedVideoMoments(encode, pixels, shape, [1, 1, 1, 1], blank);
    expect(calls).toEqual([2]);
    expect(maxDiff((again.arraySync() as number[][][][][])[1], w[1])).toBeLessThan(1e-5);
    // no full row: one plain call
    calls.length = 0;
    const content = pixels.slice();
    content.fill(0.5, per, 2 * per);
    content.fill(0.25, 3 * per, 4 * per);
    const plain = maskedVideoMoments(encode, content, shape, [1, 0, 1, 0], blank);
    expect(calls).toEqual([4]);
    tf.dispose([whole, got, again, plain, ...blank.values()]);
  });

  it('stored rows come from the per-row store (content rows only), the rest as before', () => {
    const blank = new Map<string, tf.Tensor5D>();
    const asked: number[] = [];
    const store = (px: Float32Array, s: readonly number[]) => {
      asked.push(px[per - 1]!);
      const m = encode(px.slice(), s);
      const out = { data: Float32Array.from(m.dataSync() as Float32Array), shape: m.shape.slice() };
      m.dispose();
      return out;
    };
    calls.length = 0;
    // row 0 stored, row 1 full (marked, but a full row never asks the store), row 2 batch-encoded, row 3 full
    const got = maskedVideoMoments(encode, pixels, shape, [1, 1, 1, 0], blank, { rows: [true, true, false, false], moments: store });
    expect(asked).toEqual([pixels[per - 1]]); // row 0 alone
    expect(calls).toEqual([1, 1, 1]); // row 2, the store's row 0, the blank video
    const alone = (b: number) => {
      const m = encode(pixels.slice(b * per, (b + 1) * per), [1, ...shape.slice(1)]);
      const v = Array.from(m.dataSync());
      m.dispose();
      return v;
    };
    const g = got.arraySync() as number[][][][][];
    expect(g[0]!.flat(4)).toEqual(alone(0)); // the same bits as the row encoded alone
    expect(g[2]!.flat(4)).toEqual(alone(2));
    expect(g[1]!.flat(4)).toEqual(Array.from(blank.values().next().value!.dataSync()));
    expect(Math.max(...g[3]!.flat(4).map(Math.abs))).toBe(0);
    // every content row stored: no batch encoding at all
    calls.length = 0;
    const all = maskedVideoMoments(encode, pixels, shape, [0, 0, 0, 0], new Map(), { rows: [true, true, true, true], moments: store });
    expect(calls).toEqual([1, 1]); // rows 0 and 2 through the store
    expect((all.arraySync() as number[][][][][])[2]!.flat(4)).toEqual(alone(2));
    tf.dispose([got, all, ...blank.values()]);
  });
});

describe('maskedVideoMoments without the VAE', () => {
  it('every row full with flag 0: zeros of the encoder output shape (one blank encoding for the shape)', () => {
    let n = 0;
    const fake = (px: Float32Array, s: readonly number[]) => {
      n += s[0]!;
      return tf.fill([s[0]!, 4, 1, 2, 2], px[0]!) as tf.Tensor5D;
    };
    const blank = new Map<string, tf.Tensor5D>();
    const m = maskedVideoMoments(fake, new Float32Array(2 * 12).fill(-1), [2, 1, 3, 2, 2], [0, 0], blank);
    expect(m.shape).toEqual([2, 4, 1, 2, 2]);
    expect(Array.from(m.dataSync())).toEqual(new Array(32).fill(0));
    expect(n).toBe(1);
    tf.dispose([m, ...blank.values()]);
  });
});
