// RoPE and 2b position tables at the real model sizes against the original helpers (≤ 1e-6 abs), and the model's
// input/checkpoint validation.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel, prepareRotaryPositionalEmbeddings, sincosPositionTable, type TransformerConfig } from '../src/models/transformer.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { TRANSFORMER_DEFAULTS } from '../src/weights/transformer_names.js';
import { saveSafetensors, SafetensorsFile } from '../src/weights/safetensors.js';
import { FIXTURES, loadFixture, useBackend } from './helpers.js';

const tables = loadFixture('transformer/tables.safetensors');
const index = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'transformer/tables.json'), 'utf8')) as {
  tables: { prefix: string; height: number; width: number; latent_frames: number; shape: number[] }[];
};
const real = (over: Partial<TransformerConfig>) => ({ ...TRANSFORMER_DEFAULTS, ...over }) as TransformerConfig;
const CFG_5B = real({ num_attention_heads: 48, use_rotary_positional_embeddings: true });
const CFG_15 = real({ num_attention_heads: 48, use_rotary_positional_embeddings: true, patch_size_t: 2, sample_height: 300, sample_width: 300, sample_frames: 81 });
const CFG_2B = real({});

afterAll(() => shutdownBackend());

/** Checks the stored rows of a subsampled reference table against a full table of ours. */
function expectRows(prefix: string, ours: Float32Array, width: number): void {
  const rows = tables.ints(`${prefix}.rows`.replace(/\.rows$/, '.rows'))[0] ?? [];
  const flatRows = rows.length ? rows : Array.from(tables.f32(`${prefix}.rows`));
  const want = tables.f32(`${prefix}.values`);
  const [fullRows, fullWidth] = Array.from(tables.f32(`${prefix}.shape`));
  expect([ours.length / width, width]).toEqual([fullRows, fullWidth]);
  let maxAbs = 0;
  flatRows.forEach((r, i) => {
    for (let d = 0; d < width; d++) maxAbs = Math.max(maxAbs, Math.abs(ours[r * width + d]! - want[i * width + d]!));
  });
  console.log(`${prefix.padEnd(40)} rows checked ${flatRows.length}  max-abs ${maxAbs.toExponential(2)}`);
  expect(maxAbs).toBeLessThanOrEqual(1e-6);
}

describe('position tables at real sizes', () => {
  const ropes = index.tables.filter((t) => t.prefix.startsWith('rope') && t.prefix.endsWith('.cos'));
  it.each(ropes.map((t) => [t.prefix.replace(/\.cos$/, ''), t] as const))('%s', (prefix, t) => {
    const flavor = prefix.includes('.fun.') ? 'fun' : 'diffusers';
    const cfg = prefix.startsWith('rope15') ? CFG_15 : CFG_5B;
    const r = prepareRotaryPositionalEmbeddings(cfg, t.height / 8, t.width / 8, t.latent_frames, flavor);
    expectRows(`${prefix}.cos`, r.cos, 64);
    expectRows(`${prefix}.sin`, r.sin, 64);
  });

  const pes = index.tables.filter((t) => t.prefix.startsWith('pe.'));
  it.each(pes.map((t) => [t.prefix, t] as const))('%s', (prefix, t) => {
    const flavor = prefix.startsWith('pe.fun') ? 'fun' : 'diffusers';
    expectRows(prefix, sincosPositionTable(CFG_2B, flavor, t.latent_frames, t.height / 16, t.width / 16), 1920);
  });
});

describe('validation before compute', () => {
  const dir = path.join(FIXTURES, 'tiny-fun-2b-inp', 'transformer');
  it('rejects bad inputs with clear messages', async () => {
    await useBackend('wasm');
    const m = await CogVideoXTransformer3DModel.fromPretrained(dir, { residency: 'resident' });
    const enc = tf.zeros([1, 226, 48]) as tf.Tensor3D;
    const x = (shape: number[]) => tf.zeros(shape) as unknown as tf.Tensor5D;
    const inp = x([1, 3, 17, 8, 12]);
    expect(() => m.forward({ hiddenStates: tf.zeros([1, 16, 8, 12]) as unknown as tf.Tensor5D, encoderHiddenStates: enc, timestep: 1 })).toThrow(
      /hiddenStates must be a rank-5 tensor \[B, T, C, h, w\], got rank 4/,
    );
    expect(() => m.forward({ hiddenStates: x([1, 3, 16, 8, 12]), encoderHiddenStates: enc, timestep: 1 })).toThrow(
      /channels: hiddenStates has 16 = 16, but this model takes 33 \(16 latents \+ inpaintLatents with 17\)/,
    );
    expect(() => m.forward({ hiddenStates: x([1, 3, 16, 8, 11]), encoderHiddenStates: enc, timestep: 1, inpaintLatents: x([1, 3, 17, 8, 11]) })).toThrow(
      /latent height\/width 8×11 must be multiples of the patch size 2/,
    );
    expect(() => m.forward({ hiddenStates: x([1, 4, 16, 8, 12]), encoderHiddenStates: enc, timestep: 1, inpaintLatents: x([1, 4, 17, 8, 12]) })).toThrow(
      /position table covers 3 latent frames \(9 video frames\); got 4/,
    );
    expect(() => m.forward({ hiddenStates: x([1, 3, 16, 8, 12]), encoderHiddenStates: tf.zeros([1, 226, 47]) as tf.Tensor3D, timestep: 1, inpaintLatents: inp })).toThrow(
      /encoderHiddenStates must be \[1, L, 48\], got \[1, 226, 47\]/,
    );
    expect(() => m.forward({ hiddenStates: x([2, 3, 16, 8, 12]), encoderHiddenStates: tf.zeros([2, 226, 48]) as tf.Tensor3D, timestep: [1, 2, 3], inpaintLatents: x([2, 3, 17, 8, 12]) })).toThrow(
      /timestep must have 2 values/,
    );
    m.dispose();
  });

  it('rejects a bad checkpoint: missing block, wrong patch_embed channels, config/weights disagreement', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-tr-'));
    const src = SafetensorsFile.open(path.join(dir, 'diffusion_pytorch_model.safetensors'));
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const write = (mutate: (t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void, cfg = config) => {
      const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
      for (const k of src.keys()) tensors[k] = { dtype: 'F32', shape: src.entry(k).shape.slice(), data: src.read(k).toFloat32() };
      mutate(tensors);
      fs.rmSync(path.join(tmp, 'diffusion_pytorch_model.safetensors'), { force: true });
      saveSafetensors(path.join(tmp, 'diffusion_pytorch_model.safetensors'), tensors);
      fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(cfg));
    };
    write((t) => {
      for (const k of Object.keys(t)) if (k.startsWith('transformer_blocks.1.')) delete t[k];
    });
    await expect(CogVideoXTransformer3DModel.fromPretrained(tmp)).rejects.toThrow(/missing tensors: transformer_blocks\.1\./);
    write((t) => {
      t['patch_embed.proj.weight'] = { dtype: 'F32', shape: [32, 16, 2, 2], data: new Float32Array(32 * 16 * 4) };
    });
    await expect(CogVideoXTransformer3DModel.fromPretrained(tmp)).rejects.toThrow(
      /\[patch_embed\.proj\.weight\]: shape \[32, 16, 2, 2\] but the config implies \[32, 33, 2, 2\]/,
    );
    write(() => {}, { ...config, num_layers: 3 });
    await expect(CogVideoXTransformer3DModel.fromPretrained(tmp)).rejects.toThrow(/missing tensors: transformer_blocks\.2\./);
    src.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
