// scripts/demo/deepen-dit.ts: a transformer deepened by zero-gated copies of its blocks must compute what the original
// computes, so a trained demo transformer can go on training with more layers. The script checks one random input
// itself before writing; this checks the written folder independently: the block order and which rows are zeroed,
// and another input (other timesteps, no inpaint latents given as zeros) through both transformers.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { PhiloxGenerator } from '../src/schedulers/index.js';
import { WeightStore } from '../src/weights/checkpoint.js';
import { BACKENDS, useBackend } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'assets', 'demo-model', 'transformer');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deepen-dit-'));
  await useBackend(BACKENDS[0]!);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const maxAbs = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

describe('scripts/demo/deepen-dit.ts', () => {
  it('inserts zero-gated copies after the named blocks without changing what the transformer computes', async () => {
    const out = path.join(dir, 'deep');
    const r = spawnSync(TSX, ['scripts/demo/deepen-dit.ts', '--transformer', SRC, '--out', out, '--after', '1,4'], { cwd: ROOT, encoding: 'utf8', timeout: 110_000 });
    expect(r.status, r.stderr).toBe(0);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { num_layers: number; num_attention_heads: number; attention_head_dim: number; time_embed_dim: number };
    expect(cfg.num_layers).toBe(8);
    const dim = cfg.num_attention_heads * cfg.attention_head_dim;

    // new order: 0, 1, 1', 2, 3, 4, 4', 5 — every tensor of block j comes from block from[j]; the copies' gate rows
    // (chunks 2 and 5 of norm1/norm2.linear) are zero, every other value is the source's
    const from = [0, 1, 1, 2, 3, 4, 4, 5];
    const copies = new Set([2, 6]);
    const [a, b] = [WeightStore.open(SRC), WeightStore.open(out)];
    let zeroed = 0;
    for (let j = 0; j < from.length; j++) {
      for (const name of a.keys().filter((k) => k.startsWith(`transformer_blocks.${from[j]}.`))) {
        const suffix = name.slice(`transformer_blocks.${from[j]}.`.length);
        const want = a.read(name).toFloat32();
        const got = b.read(`transformer_blocks.${j}.${suffix}`).toFloat32();
        expect(got.length).toBe(want.length);
        const gates = copies.has(j) && /^norm[12]\.linear\./.test(suffix);
        const row = want.length / (6 * dim);
        for (let k = 0; k < want.length; k++) {
          const chunk = Math.floor(k / row / dim);
          const expected = gates && (chunk === 2 || chunk === 5) ? 0 : want[k];
          if (got[k] !== expected) expect.fail(`transformer_blocks.${j}.${suffix}[${k}]: ${got[k]}, expected ${expected}`);
          if (gates && (chunk === 2 || chunk === 5)) zeroed++;
        }
      }
    }
    // the gate positions checked above: 2 copies × 2 norms × 2 gates × (weight rows + bias)
    expect(zeroed).toBe(2 * 2 * 2 * (dim * cfg.time_embed_dim + dim));
    expect(b.keys().length).toBe(a.keys().length + 2 * a.keys().filter((k) => k.startsWith('transformer_blocks.0.')).length);
    a.close();
    b.close();

    const [ma, mb] = [await CogVideoXTransformer3DModel.fromPretrained(SRC), await CogVideoXTransformer3DModel.fromPretrained(out)];
    const rng = new PhiloxGenerator(5);
    const inputs = {
      hiddenStates: rng.randn([1, 5, 5, 16, 24]) as tf.Tensor5D,
      inpaintLatents: tf.zeros([1, 5, 6, 16, 24]) as tf.Tensor5D,
      encoderHiddenStates: rng.randn([1, 32, 64]) as tf.Tensor3D,
      timestep: [500],
    };
    const [ya, yb] = [ma.forward(inputs), mb.forward(inputs)];
    expect(ya.shape).toEqual([1, 5, 5, 16, 24]);
    expect(tf.tidy(() => tf.max(tf.abs(ya)).dataSync()[0]!)).toBeGreaterThan(0.1); // not a trivially equal zero output
    expect(maxAbs(ya, yb)).toBeLessThanOrEqual(1e-6);
    tf.dispose([ya, yb, inputs.hiddenStates, inputs.inpaintLatents, inputs.encoderHiddenStates]);
    ma.dispose();
    mb.dispose();
  });

  it('refuses a block index the transformer does not have, before reading any weights', () => {
    const r = spawnSync(TSX, ['scripts/demo/deepen-dit.ts', '--transformer', SRC, '--out', path.join(dir, 'bad'), '--after', '2,6'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--after 2,6: needs distinct block indices in 0\.\.5/);
    expect(fs.existsSync(path.join(dir, 'bad'))).toBe(false);
  });
});
