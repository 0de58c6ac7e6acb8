// CogVideoXTransformer3DModel parity against diffusers v0.32.2 / CogVideoX-Fun (fixtures: reference/gen_transformer.py,
// key layout: reference/transformer_fixtures.md), every variant at two latent sizes, on every backend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { nativeLinear } from '../src/nn/native.js';
import { BACKENDS, diff, expectClose, FIXTURES, loadFixture, useBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'transformer');
const CASES = fs.existsSync(DIR) ? fs.readdirSync(DIR).filter((n) => n.includes('__') && n.endsWith('.safetensors')).sort() : [];
const MODULE_TOL = { relL2: 1e-5 };
const MODEL_TOL = { relL2: 1e-4 };

afterAll(() => shutdownBackend());

function tensorOf(fx: ReturnType<typeof loadFixture>, key: string): tf.Tensor {
  return tf.tensor(fx.f32(key), fx.shape(key));
}

/** The forward's inputs as the reference passed them. */
function inputsOf(fx: ReturnType<typeof loadFixture>) {
  const has = (k: string) => fx.names().includes(k);
  return {
    hiddenStates: tensorOf(fx, 'in.hidden_states') as tf.Tensor5D,
    encoderHiddenStates: tensorOf(fx, 'in.encoder_hidden_states') as tf.Tensor3D,
    timestep: Array.from(fx.f32('in.timestep')),
    inpaintLatents: has('in.inpaint_latents') ? (tensorOf(fx, 'in.inpaint_latents') as tf.Tensor5D) : undefined,
    ofs: has('in.ofs') ? Array.from(fx.f32('in.ofs')) : undefined,
  };
}

async function parityCase(backend: string, file: string): Promise<void> {
  await useBackend(backend);
  const variant = file.split('__')[0]!;
  const fx = loadFixture(path.join(DIR, file));
  const has = (k: string) => fx.names().includes(k);
  const model = await CogVideoXTransformer3DModel.fromPretrained(path.join(FIXTURES, `tiny-${variant}`, 'transformer'), { residency: 'resident' });
  const before = tf.memory().numTensors;
  const inputs = inputsOf(fx);
  // The pipeline's RoPE tables, computed here, must equal the ones the reference passed in.
  if (has('in.rope_cos')) {
    const [, T, , h, w] = fx.shape('in.hidden_states');
    const r = model.prepareRotaryPositionalEmbeddings(h!, w!, T!);
    expect([r.rows, r.headDim]).toEqual(fx.shape('in.rope_cos'));
    expect(diff(r.cos, fx.f32('in.rope_cos')).maxAbs, 'rope cos').toBeLessThanOrEqual(1e-6);
    expect(diff(r.sin, fx.f32('in.rope_sin')).maxAbs, 'rope sin').toBeLessThanOrEqual(1e-6);
  }
  const seen = new Set<string>();
  const out = model.forward(inputs, {
    onOutput: (name, t) => {
      if (!has(name)) return;
      seen.add(name);
      expectClose(`${backend} ${variant} ${name}`, t, fx.f32(name), fx.shape(name), name === 'patch_embed.pos' ? { relL2: 1e-6 } : MODULE_TOL);
    },
  });
  expectClose(`${backend} ${variant} out`, out, fx.f32('out'), fx.shape('out'), MODEL_TOL);
  const expected = fx.names().filter((k) => !k.startsWith('in.') && k !== 'out');
  expect(expected.filter((k) => !seen.has(k)), 'reference dumps that were not compared').toEqual([]);
  out.dispose();
  // Memory must not grow across calls (the model may cache per-size tables on the first one).
  const afterFirst = tf.memory().numTensors;
  model.forward(inputs).dispose();
  expect(tf.memory().numTensors).toBe(afterFirst);
  const inputCount = Object.values(inputs).filter((t) => t instanceof tf.Tensor).length;
  expect(afterFirst - before - inputCount, 'tensors kept by the model (its position-table cache)').toBeLessThanOrEqual(1);
  for (const t of Object.values(inputs)) if (t instanceof tf.Tensor) t.dispose();
  model.dispose();
}

describe.each(BACKENDS)('CogVideoXTransformer3DModel on %s', (backend) => {
  it.each(CASES)('%s', (file) => parityCase(backend, file));
});

// With the addon built, tensorflow runs the linears, feed-forward and modulated LayerNorms natively; the TensorFlow-op
// path it replaces (machines without AVX-512 or a compiler) keeps its own parity run.
const TF_OPS = BACKENDS.includes('tensorflow') && nativeLinear() ? ['tensorflow'] : [];
describe.each(TF_OPS)('CogVideoXTransformer3DModel on %s, native GEMM off', (backend) => {
  it.each(CASES)('%s', async (file) => {
    process.env.COGVIDEOX_NATIVE_GEMM = '0';
    try {
      await parityCase(backend, file);
    } finally {
      delete process.env.COGVIDEOX_NATIVE_GEMM;
    }
  });
});

// The offloaded forward (host-resident activations, row chunks, one head at a time: what wasm uses when [B, S, D]
// does not fit its heap) against the same reference dumps, with chunks small enough to cut through text and video.
describe.each(BACKENDS)('CogVideoXTransformer3DModel offloaded on %s', (backend) => {
  it.each(CASES)('%s', async (file) => {
    await useBackend(backend);
    const variant = file.split('__')[0]!;
    const fx = loadFixture(path.join(DIR, file));
    const has = (k: string) => fx.names().includes(k);
    const model = await CogVideoXTransformer3DModel.fromPretrained(path.join(FIXTURES, `tiny-${variant}`, 'transformer'), { residency: 'host' });
    const inputs = inputsOf(fx);
    const before = tf.memory().numTensors;
    const compared: string[] = [];
    const out = model.forward(inputs, {
      offload: true,
      offloadRows: 7,
      onOutput: (name, t) => {
        if (!has(name)) return;
        compared.push(name);
        expectClose(`${backend} ${variant} offloaded ${name}`, t, fx.f32(name), fx.shape(name), MODULE_TOL);
      },
    });
    expectClose(`${backend} ${variant} offloaded out`, out, fx.f32('out'), fx.shape('out'), MODEL_TOL);
    expect(compared.filter((n) => n.startsWith('block.') && n.includes('.out.')).length, 'block outputs compared').toBeGreaterThan(0);
    out.dispose();
    expect(tf.memory().numTensors, 'tensors left by the offloaded forward').toBe(before);
    for (const t of Object.values(inputs)) if (t instanceof tf.Tensor) t.dispose();
    model.dispose();
  });
});
