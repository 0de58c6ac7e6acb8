// T5 encoder parity against HF transformers T5EncoderModel (fixtures from reference/gen_t5.py), on every backend.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { T5EncoderModel, relativePositionBucket } from '../src/models/t5.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { expectClose, loadFixture, TINY_MODEL, useBackend, describeEachBackend } from './helpers.js';

const ENCODER_DIR = path.join(TINY_MODEL, 'text_encoder');
const LAYER_TOL = { relL2: 1e-5 };
const io = loadFixture('t5/encoder_io.safetensors');
const io16 = loadFixture('t5/encoder_io_len16.safetensors');

afterAll(() => shutdownBackend());

describe('relative position buckets', () => {
  it('matches the bucket layout (exact below 8, log-spaced to 128, +16 for keys after the query)', () => {
    expect([0, 1, 7, -1, -7].map((r) => relativePositionBucket(r, 32, 128))).toEqual([0, 17, 23, 1, 7]);
    expect(relativePositionBucket(128, 32, 128)).toBe(31);
    expect(relativePositionBucket(-1000, 32, 128)).toBe(15);
    // boundaries where the fp32 log ratio is exactly an integer (16 → 10, 32 → 12, 64 → 14)
    expect([16, 32, 64].map((r) => relativePositionBucket(-r, 32, 128))).toEqual([10, 12, 14]);
  });
});

describeEachBackend('T5EncoderModel on %s', (backend) => {
  let model: T5EncoderModel;
  beforeAll(async () => {
    await useBackend(backend);
    model = await T5EncoderModel.fromPretrained(ENCODER_DIR, { residency: 'resident' });
  });
  afterAll(() => model?.dispose());

  const runAndCompare = (m: T5EncoderModel, fx: typeof io, prefix: '' | 'masked.', mask: boolean) => {
    const ids = fx.ints('input_ids');
    const seen: string[] = [];
    const out = m.forward(ids, {
      attentionMask: mask ? fx.ints('attention_mask') : undefined,
      onOutput: (name, t) => {
        if (name === 'position_bias') {
          if (!mask) expectClose(`${backend} position_bias`, t, fx.f32('position_bias'), fx.shape('position_bias'), { relL2: 0, maxAbs: 0 });
          return;
        }
        const key = prefix + name;
        if (name !== 'embeddings' || !mask) expectClose(`${backend} ${key}`, t, fx.f32(key), fx.shape(key), LAYER_TOL);
        seen.push(name);
      },
    });
    expectClose(`${backend} ${prefix}final`, out, fx.f32(`${prefix}final`), fx.shape(`${prefix}final`), LAYER_TOL);
    out.dispose();
    return seen;
  };

  it('matches every layer without a mask (what the pipelines do), L = 226', () => {
    const seen = runAndCompare(model, io, '', false);
    expect(seen).toEqual(['embeddings', 'block.0.output', 'block.1.output', 'block.2.output']);
  });

  it('forwardAsync equals forward; an abort from a timer stops it after a block and frees everything', async () => {
    const ids = io.ints('input_ids');
    const sync = model.forward(ids);
    const asyncOut = await model.forwardAsync(ids);
    expect(Array.from(asyncOut.dataSync())).toEqual(Array.from(sync.dataSync()));
    tf.dispose([sync, asyncOut]);
    const before = tf.memory().numTensors;
    const controller = new AbortController();
    const reason = new Error('stop');
    // a forwardAsync that never yields finishes before the timer fires, and resolves instead of rejecting
    setTimeout(() => controller.abort(reason), 0);
    await expect(model.forwardAsync(ids, { signal: controller.signal })).rejects.toBe(reason);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('matches every layer with an attention mask', () => {
    runAndCompare(model, io, 'masked.', true);
  });

  it('matches at L = 16', () => {
    runAndCompare(model, io16, '', false);
  });

  it('gives identical numbers with weights streamed per block (host and disk residency), and leaks nothing', async () => {
    const ids = io.ints('input_ids');
    const ref = model.forward(ids);
    const refData = ref.dataSync().slice();
    ref.dispose();
    for (const residency of ['host', 'disk'] as const) {
      const m = await T5EncoderModel.fromPretrained(ENCODER_DIR, { residency });
      expect(m.residency).toBe(residency);
      const before = tf.memory().numTensors;
      const out = m.forward(ids);
      expect(Array.from(out.dataSync())).toEqual(Array.from(refData));
      out.dispose();
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    }
    const before = tf.memory().numTensors;
    model.forward(ids).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad input before computing', () => {
    expect(() => model.forward([[1, 2, 99999]])).toThrow(/token id 99999 outside the vocabulary \[0, 1104\)/);
    expect(() => model.forward([[1, 2], [3]])).toThrow(/equal-length rows/);
    expect(() => model.forward([[1, 2]], { attentionMask: [[1, 1, 1]] })).toThrow(/attentionMask must have the shape/);
  });
});
