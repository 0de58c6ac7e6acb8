// LoRA merging parity against CogVideoX-Fun's merge_lora / unmerge_lora (fixtures: reference/gen_lora.py): merged
// weights (fp32 and bf16 checkpoints), the transformer's output after two merges, unmerge, and bad files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel, type TransformerInputs } from '../src/models/transformer.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { WeightStore } from '../src/weights/checkpoint.js';
import { HostTensor } from '../src/weights/host_tensor.js';
import { LoraMerge, ModuleTree, resolveLoraLayer, type LoraSpec } from '../src/weights/lora.js';
import { WeightSource } from '../src/weights/residency.js';
import { SafetensorsFile, saveSafetensors, type TensorToWrite } from '../src/weights/safetensors.js';
import { BACKENDS, describeEachBackend, diff, expectClose, FIXTURES, loadFixture, TINY_MODEL, useBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'lora');
const MODEL_DIR = path.join(TINY_MODEL, 'transformer');
const MERGED = path.join(DIR, 'merged.safetensors');
const merges: LoraSpec[] = (() => {
  const f = SafetensorsFile.open(MERGED);
  const list = JSON.parse(f.metadata.merges!) as { file: string; multiplier: number }[];
  f.close();
  return list.map((m) => ({ path: path.join(DIR, m.file), multiplier: m.multiplier }));
})();
const [A, B] = merges as [LoraSpec, LoraSpec];
const WEIGHT_TOL = 1e-6;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-test-'));
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackend();
});

function sourceWith(dir: string, ...patches: [LoraSpec, 1 | -1][]): WeightSource {
  const store = WeightStore.open(dir);
  const source = new WeightSource(store, 'host');
  for (const [spec, sign] of patches) source.addPatch(LoraMerge.open(spec, store, sign));
  return source;
}

/** The tiny checkpoint converted to bf16 (round-to-nearest-even, as torch's .to(torch.bfloat16)). */
function bf16Checkpoint(): string {
  const dir = path.join(tmp, 'bf16');
  if (fs.existsSync(dir)) return dir;
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(MODEL_DIR, 'config.json'), path.join(dir, 'config.json'));
  const store = WeightStore.open(MODEL_DIR);
  const tensors: Record<string, TensorToWrite> = {};
  for (const k of store.keys()) tensors[k] = { dtype: 'BF16', shape: store.entry(k).shape, data: store.read(k).toFloat32() };
  store.close();
  saveSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), tensors);
  return dir;
}

function inputs(): TransformerInputs {
  const fx = loadFixture(MERGED);
  const t = (k: string) => tf.tensor(fx.f32(k), fx.shape(k));
  return {
    hiddenStates: t('in.hidden_states') as tf.Tensor5D,
    encoderHiddenStates: t('in.encoder_hidden_states') as tf.Tensor3D,
    inpaintLatents: t('in.inpaint_latents') as tf.Tensor5D,
    timestep: Array.from(fx.f32('in.timestep')),
  };
}

function disposeInputs(x: TransformerInputs): void {
  tf.dispose([x.hiddenStates, x.encoderHiddenStates, x.inpaintLatents!]);
}

describeEachBackend('LoRA merge on %s', (backend) => {
  it('fp32 weights after merge_lora(A, 0.55), merge_lora(B, -1.3) equal Fun', async () => {
    await useBackend(backend);
    const fx = loadFixture(MERGED);
    const keys = fx.names().filter((k) => k.startsWith('fp32.'));
    const source = sourceWith(MODEL_DIR, [A, 1], [B, 1]);
    const before = tf.memory().numTensors;
    let worst = 0;
    for (const k of keys) {
      const name = k.slice('fp32.'.length);
      const d = diff(source.get(name).toFloat32(), fx.f32(k));
      expect(d.maxAbs, name).toBeLessThanOrEqual(WEIGHT_TOL);
      worst = Math.max(worst, d.maxAbs);
    }
    console.log(`${backend}: ${keys.length} merged fp32 weights, worst max-abs ${worst.toExponential(2)}`);
    // Nothing else changes.
    const store = WeightStore.open(MODEL_DIR);
    const touched = new Set(keys.map((k) => k.slice('fp32.'.length)));
    for (const name of store.keys()) if (!touched.has(name)) expect(source.get(name).data, name).toEqual(store.read(name).data);
    store.close();
    expect(tf.memory().numTensors).toBe(before);
    source.close();
  });

  it('bf16 checkpoint: the fp32 delta added into bf16 weights, rounded as torch rounds', async () => {
    await useBackend(backend);
    const fx = loadFixture(MERGED);
    const raw = SafetensorsFile.open(MERGED);
    const keys = fx.names().filter((k) => k.startsWith('bf16.'));
    const source = sourceWith(bf16Checkpoint(), [A, 1], [B, 1]);
    let mismatched = 0;
    let total = 0;
    let worst = 0;
    for (const k of keys) {
      const got = source.get(k.slice('bf16.'.length));
      expect(got.storage).toBe('bf16');
      const want = raw.read(k).data as Uint16Array;
      for (let i = 0; i < want.length; i++) if (got.data[i] !== want[i]) mismatched++;
      total += want.length;
      worst = Math.max(worst, diff(got.toFloat32(), fx.f32(k)).maxAbs);
    }
    console.log(`${backend}: bf16 merged weights: ${mismatched}/${total} values differ from Fun's bits, max-abs ${worst.toExponential(2)}`);
    // Only a product landing on a bf16 rounding tie could round differently; none does here.
    expect(mismatched).toBe(0);
    raw.close();
    source.close();
  });

  it('unmerge_lora in reverse order restores the original weights', async () => {
    await useBackend(backend);
    const store = WeightStore.open(MODEL_DIR);
    const source = sourceWith(MODEL_DIR, [A, 1], [B, 1], [B, -1], [A, -1]);
    let worst = 0;
    for (const name of store.keys()) worst = Math.max(worst, diff(source.get(name).toFloat32(), store.read(name).toFloat32()).maxAbs);
    console.log(`${backend}: merge A, B then unmerge B, A: max-abs vs original ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(WEIGHT_TOL);
    store.close();
    source.close();
  });

  it.each(['resident', 'host', 'disk'] as const)('transformer output after both merges (%s)', async (residency) => {
    await useBackend(backend);
    const fx = loadFixture(MERGED);
    const x = inputs();
    const model = await CogVideoXTransformer3DModel.fromPretrained(MODEL_DIR, { residency, loras: [A, B] });
    const out = model.forward(x);
    expectClose(`${backend} ${residency} merged out`, out, fx.f32('out'), fx.shape('out'), { relL2: 1e-5 });
    out.dispose();
    model.dispose();
    disposeInputs(x);
  });

  it('mergeLora / unmergeLora on a loaded model', async () => {
    await useBackend(backend);
    const fx = loadFixture(MERGED);
    const x = inputs();
    const model = await CogVideoXTransformer3DModel.fromPretrained(MODEL_DIR, { residency: 'resident' });
    const base = model.forward(x);
    const count = tf.memory().numTensors;
    model.mergeLora(A);
    model.mergeLora(B);
    expect(tf.memory().numTensors, 'old weights freed').toBe(count);
    const merged = model.forward(x);
    expectClose(`${backend} mergeLora out`, merged, fx.f32('out'), fx.shape('out'), { relL2: 1e-5 });
    model.unmergeLora(B);
    model.unmergeLora(A);
    const restored = model.forward(x);
    expectClose(`${backend} unmerged out vs base`, restored, base.dataSync() as Float32Array, base.shape, { relL2: 1e-6 });
    tf.dispose([base, merged, restored]);
    model.dispose();
    disposeInputs(x);
  });
});

describe('LoRA files', () => {
  const store = WeightStore.open(MODEL_DIR);
  afterAll(() => store.close());
  const q = 'transformer_blocks.0.attn1.to_q.weight'; // [32, 32]

  /** A LoRA file with one layer (up [out, r], down [r, in]) plus extra tensors. */
  function write(name: string, tensors: Record<string, { shape: number[]; data?: number[] }>): string {
    const file = path.join(tmp, name);
    const out: Record<string, TensorToWrite> = {};
    for (const [k, t] of Object.entries(tensors)) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      out[k] = { dtype: 'F32', shape: t.shape, data: t.data ?? Array.from({ length: n }, (_, i) => Math.sin(i + 1) * 0.1) };
    }
    saveSafetensors(file, out);
    return file;
  }
  const layer = (prefix: string, out: number, r: number, inp: number, alpha?: number) => ({
    [`${prefix}.lora_up.weight`]: { shape: [out, r] },
    [`${prefix}.lora_down.weight`]: { shape: [r, inp] },
    ...(alpha === undefined ? {} : { [`${prefix}.alpha`]: { shape: [], data: [alpha] } }),
  });

  it('resolves names as merge_lora walks the module tree', () => {
    const tree = new ModuleTree(store.keys());
    expect(resolveLoraLayer('lora_unet__transformer_blocks_0_attn1_to_q', tree)).toBe('transformer_blocks.0.attn1.to_q');
    expect(resolveLoraLayer('lora_unet_transformer_blocks_1_ff_net_0_proj', tree)).toBe('transformer_blocks.1.ff.net.0.proj');
    expect(resolveLoraLayer('lora_unet__transformer_blocks_1_attn1_to_out_0', tree)).toBe('transformer_blocks.1.attn1.to_out.0');
    expect(resolveLoraLayer('lora_unet__time_embedding_linear_2', tree)).toBe('time_embedding.linear_2');
    expect(resolveLoraLayer('lora_unet__patch_embed_text_proj', tree)).toBe('patch_embed.text_proj');
    expect(resolveLoraLayer('lora_unet__norm_out_linear', tree)).toBe('norm_out.linear');
    expect(() => resolveLoraLayer('lora_unet__transformer_blocks_0_attn1_to_z', tree)).toThrow(/matches no module.*"to_z" below "transformer_blocks.0.attn1"/);
    expect(() => resolveLoraLayer('lora_unet__transformer_blocks_7_attn1_to_q', tree)).toThrow(/matches no module/);
  });

  it('a key that matches no layer is refused, naming file and layer', () => {
    const f = write('nomatch.safetensors', { ...layer('lora_unet__transformer_blocks_0_attn1_to_z', 32, 2, 32, 2) });
    expect(() => LoraMerge.open({ path: f }, store)).toThrow(/nomatch\.safetensors.*"lora_unet__transformer_blocks_0_attn1_to_z" matches no module/);
  });

  it('a layer that resolves to a module without weight or to a tensor is refused', () => {
    const f = write('noweight.safetensors', { ...layer('lora_unet__transformer_blocks_0_attn1', 32, 2, 32) });
    expect(() => LoraMerge.open({ path: f }, store)).toThrow(/resolves to "transformer_blocks.0.attn1", which has no weight/);
    const g = write('tensor.safetensors', { ...layer('lora_unet__proj_out_weight', 64, 2, 32) });
    expect(() => LoraMerge.open({ path: g }, store)).toThrow(/resolves to the tensor "proj_out.weight"/);
  });

  it('shape mismatches are refused before any merge', () => {
    const f = write('shape.safetensors', { ...layer('lora_unet__transformer_blocks_0_attn1_to_q', 33, 2, 32, 1) });
    expect(() => LoraMerge.open({ path: f }, store)).toThrow(/up·down is \[33, 32\].*"transformer_blocks.0.attn1.to_q.weight" is \[32, 32\]/);
    const g = write('rank.safetensors', {
      'lora_unet__proj_out.lora_up.weight': { shape: [64, 3] },
      'lora_unet__proj_out.lora_down.weight': { shape: [2, 32] },
    });
    expect(() => LoraMerge.open({ path: g }, store)).toThrow(/rank mismatch/);
  });

  it('missing alpha: scale 1 (not 1/rank), as merge_lora', async () => {
    await useBackend(BACKENDS[0]!);
    const r = 4;
    const up = Array.from({ length: 32 * r }, (_, i) => Math.cos(i) * 0.3);
    const down = Array.from({ length: r * 32 }, (_, i) => Math.sin(2 * i) * 0.3);
    const f = write('noalpha.safetensors', {
      'lora_unet__transformer_blocks_0_attn1_to_q.lora_up.weight': { shape: [32, r], data: up },
      'lora_unet__transformer_blocks_0_attn1_to_q.lora_down.weight': { shape: [r, 32], data: down },
    });
    const m = LoraMerge.open({ path: f, multiplier: 0.5 }, store);
    const w0 = store.read(q).toFloat32();
    const w1 = m.apply(q, store.read(q)).toFloat32();
    const u = Float32Array.from(up);
    const d = Float32Array.from(down);
    let worst = 0;
    for (let o = 0; o < 32; o++) {
      for (let i = 0; i < 32; i++) {
        let p = 0;
        for (let k = 0; k < r; k++) p += u[o * r + k]! * d[k * 32 + i]!;
        worst = Math.max(worst, Math.abs(w1[o * 32 + i]! - (w0[o * 32 + i]! + 0.5 * p)));
      }
    }
    expect(worst).toBeLessThanOrEqual(1e-6);
    expect(m.targets).toEqual(new Set([q]));
    m.close();
  });

  it('missing lora_down / unknown tensors / keys without "." are refused', () => {
    const f = write('nodown.safetensors', { 'lora_unet__proj_out.lora_up.weight': { shape: [64, 2] } });
    expect(() => LoraMerge.open({ path: f }, store)).toThrow(/"lora_unet__proj_out" lacks lora_down.weight/);
    const g = write('dora.safetensors', { ...layer('lora_unet__proj_out', 64, 2, 32), 'lora_unet__proj_out.dora_scale': { shape: [64, 1] } });
    expect(() => LoraMerge.open({ path: g }, store)).toThrow(/unsupported LoRA tensor "dora_scale"/);
    const h = write('nodot.safetensors', { lora_unet__proj_out: { shape: [2] } });
    expect(() => LoraMerge.open({ path: h }, store)).toThrow(/has no "\."/);
  });

  it('text-encoder layers: refused unless transformerOnly', () => {
    const f = write('te.safetensors', { ...layer('lora_te_encoder_block_0_layer_0_SelfAttention_q', 48, 2, 48, 1), ...layer('lora_unet__proj_out', 64, 2, 32, 1) });
    expect(() => LoraMerge.open({ path: f }, store)).toThrow(/1 text-encoder layers.*transformerOnly/);
    const m = LoraMerge.open({ path: f, transformerOnly: true }, store);
    expect([...m.targets]).toEqual(['proj_out.weight']);
    expect(m.skippedLayers).toEqual(['lora_te_encoder_block_0_layer_0_SelfAttention_q']);
    m.close();
  });

  it('fromPretrained fails cleanly on a bad LoRA and a bad multiplier', async () => {
    const f = write('bad.safetensors', { ...layer('lora_unet__nothing_here', 32, 2, 32, 1) });
    await expect(CogVideoXTransformer3DModel.fromPretrained(MODEL_DIR, { residency: 'disk', loras: [A, { path: f }] })).rejects.toThrow(
      /bad\.safetensors.*"lora_unet__nothing_here" matches no module/,
    );
    expect(() => LoraMerge.open({ path: A.path, multiplier: NaN }, store)).toThrow(/multiplier must be a finite number/);
  });

  it('two layers of one file on the same weight apply in file order; 1×1-conv (4-D) LoRAs', async () => {
    await useBackend(BACKENDS[0]!);
    const w = 'proj_out.weight'; // [64, 32]
    const both = write('twice.safetensors', { ...layer('lora_unet__proj_out', 64, 2, 32, 3), ...layer('lora_unet_proj_out', 64, 3, 32, 1) });
    const one = write('once_a.safetensors', layer('lora_unet__proj_out', 64, 2, 32, 3));
    const two = write('once_b.safetensors', layer('lora_unet_proj_out', 64, 3, 32, 1));
    const spec = (p: string) => ({ path: p, multiplier: 0.7 });
    const m = LoraMerge.open(spec(both), store);
    const [m1, m2] = [LoraMerge.open(spec(one), store), LoraMerge.open(spec(two), store)];
    const t = store.read(w);
    expect(m.apply(w, t).data).toEqual(m2.apply(w, m1.apply(w, t)).data);
    // A [out, in, 1, 1] weight with [out, r, 1, 1] / [r, in, 1, 1] LoRA tensors equals the 2-D case.
    const conv = write('conv.safetensors', {
      'lora_unet__conv.lora_up.weight': { shape: [64, 2, 1, 1] },
      'lora_unet__conv.lora_down.weight': { shape: [2, 32, 1, 1] },
      'lora_unet__conv.alpha': { shape: [], data: [3] },
    });
    const convIndex = { keys: () => ['conv.weight'], entry: () => ({ shape: [64, 32, 1, 1] }) };
    const mc = LoraMerge.open(spec(conv), convIndex);
    const c = mc.apply('conv.weight', new HostTensor([64, 32, 1, 1], 'f32', t.data as Float32Array));
    expect(c.shape).toEqual([64, 32, 1, 1]);
    expect(c.data).toEqual(m1.apply(w, t).data);
    for (const x of [m, m1, m2, mc]) x.close();
  });

  it('fp16 storage: the fp32 result of the widened weight, rounded once to fp16', async () => {
    await useBackend(BACKENDS[0]!);
    const m = LoraMerge.open(A, store);
    const w16 = HostTensor.float32ToF16(store.read(q).toFloat32());
    const widened = new HostTensor([32, 32], 'f16', w16).toFloat32();
    const viaF32 = m.apply(q, new HostTensor([32, 32], 'f32', Float32Array.from(widened))).toFloat32();
    const got = m.apply(q, new HostTensor([32, 32], 'f16', w16));
    expect(got.storage).toBe('f16');
    expect(Array.from(got.data)).toEqual(Array.from(HostTensor.float32ToF16(viaF32)));
    m.close();
  });
});
