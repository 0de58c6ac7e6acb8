// LoRA construction and files against CogVideoX-Fun's create_network / save_weights / merge_lora (fixtures:
// reference/gen_training.py → test/fixtures/training/step_lora_5b.safetensors, lora_5b_saved_{fp32,bf16}.safetensors),
// and the diffusers / PEFT format round trip.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../src/nn/backend.js';
import { loraTargets, LoraNetwork } from '../src/training/lora.js';
import { loraTensors, saveLora } from '../src/training/lora_file.js';
import { SeededRandom } from '../src/training/random.js';
import { WeightStore } from '../src/weights/checkpoint.js';
import { LoraMerge, loraFormatOf } from '../src/weights/lora.js';
import { WeightSource } from '../src/weights/residency.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { diff, FIXTURES, useBackend, describeEachBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'training');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'train-lora-'));
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackend();
});

const fx = SafetensorsFile.open(path.join(DIR, 'step_lora_5b.safetensors'));
const meta = JSON.parse(fx.metadata.meta!);
const modelDir = (ckpt: string) => path.join(FIXTURES, ckpt, 'transformer');

function shapesOf(ckpt: string): Map<string, number[]> {
  const store = WeightStore.open(modelDir(ckpt));
  const m = new Map(store.keys().map((k) => [k, store.entry(k).shape.slice()]));
  store.close();
  return m;
}

/** The network with the factors the reference had after its 3 steps. */
function trainedNetwork(): LoraNetwork {
  const net = new LoraNetwork(loraTargets(shapesOf(meta.checkpoint)), { rank: meta.rank, alpha: meta.network_alpha });
  net.load(new Map(net.parameterNames().map((k) => [k, fx.read(`step2.param.${k}`).toFloat32()])));
  return net;
}

describe('LoRA network', () => {
  it('targets and names equal create_network on the tiny 5b (every Linear, registration order)', () => {
    const targets = loraTargets(shapesOf(meta.checkpoint));
    expect(targets.map((t) => t.name)).toEqual(meta.lora_names);
    const net = new LoraNetwork(targets, { rank: meta.rank, alpha: meta.network_alpha });
    expect(net.scale).toBe(0.5);
    // network.parameters() order and shapes = the reference's initial state
    for (const k of net.parameterNames()) expect(fx.entry(`lora_init.${k}`).shape, k).toEqual(net.shapeOf(k));
  });

  it('v1.5 wraps the patch Linear, v1.0 skips the patch Conv2d; 5 + 8·layers (+1) layers', () => {
    const t15 = loraTargets(shapesOf('tiny-fun-1.5-5b-inp'));
    const t2b = loraTargets(shapesOf('tiny-fun-2b-inp'));
    expect(t15[0]!.name).toBe('lora_unet__patch_embed_proj');
    expect(t15.length).toBe(5 + 8 * 2 + 1);
    expect(t2b.length).toBe(5 + 8 * 2);
    expect(t2b.some((t) => t.module === 'patch_embed.proj')).toBe(false);
  });

  it('initialisation: lora_up 0, lora_down within ±1/√in; rank ≤ 0 is refused', () => {
    const net = new LoraNetwork(loraTargets(shapesOf(meta.checkpoint)), { rank: 4 });
    expect(net.alpha).toBe(4);
    net.initialize(new SeededRandom(1));
    for (const t of net.targets) {
      const down = net.params.get(`${t.name}.lora_down.weight`)!;
      const b = 1 / Math.sqrt(t.inFeatures);
      expect(down.every((x) => Math.abs(x) <= b)).toBe(true);
      expect(down.some((x) => x !== 0)).toBe(true);
      expect(net.params.get(`${t.name}.lora_up.weight`)!.every((x) => x === 0)).toBe(true);
    }
    expect(() => new LoraNetwork(net.targets, { rank: 0 })).toThrow(/--rank must be a positive integer, got 0/);
  });
});

describe('LoRA files', () => {
  it.each(['fp32', 'bf16'] as const)('Fun format (%s) equals save_weights: header, sshs hashes, data bytes', (d) => {
    const out = path.join(tmp, `ours_${d}.safetensors`);
    saveLora(out, trainedNetwork(), 'fun', d === 'fp32' ? 'F32' : 'BF16');
    // safetensors writes __metadata__ from a Rust HashMap: its key order varies between runs, so the header is compared
    // parsed and the data section byte for byte
    const split = (b: Buffer) => {
      const n = Number(b.readBigUInt64LE(0));
      return { header: JSON.parse(b.subarray(8, 8 + n).toString('utf8')), data: b.subarray(8 + n) };
    };
    const got = split(fs.readFileSync(out));
    const want = split(fs.readFileSync(path.join(DIR, `lora_5b_saved_${d}.safetensors`)));
    expect(got.header).toEqual(want.header);
    expect(Object.keys(got.header)).toEqual(Object.keys(want.header));
    expect(got.data.equals(want.data)).toBe(true);
  });

  describeEachBackend('on %s', (backend) => {
    it("merge_lora of the trained LoRA equals ours (Fun file), and the diffusers file merges to the same weights", async () => {
      await useBackend(backend);
      const net = trainedNetwork();
      const funFile = path.join(tmp, `merge_fun_${backend}.safetensors`);
      const difFile = path.join(tmp, `merge_dif_${backend}.safetensors`);
      saveLora(funFile, net, 'fun');
      saveLora(difFile, net, 'diffusers');
      const dif = SafetensorsFile.open(difFile);
      expect(loraFormatOf(dif.keys())).toBe('diffusers');
      expect(dif.keys()).toContain('transformer.transformer_blocks.0.attn1.to_q.lora_A.weight');
      dif.close();
      for (const file of [funFile, difFile]) {
        const store = WeightStore.open(modelDir(meta.checkpoint));
        const source = new WeightSource(store, 'host');
        source.addPatch(LoraMerge.open({ path: file, multiplier: 1 }, store));
        let worst = 0;
        const keys = fx.keys().filter((k) => k.startsWith('merged.'));
        expect(keys.length).toBe(net.targets.length);
        for (const k of keys) {
          const d = diff(source.get(k.slice('merged.'.length)).toFloat32(), fx.read(k).toFloat32());
          worst = Math.max(worst, d.maxAbs);
        }
        console.log(`${backend} ${path.basename(file)}: worst merged max-abs ${worst.toExponential(2)}`);
        expect(worst).toBeLessThanOrEqual(1e-6);
        source.close();
      }
    });
  });

  it('diffusers format: lora_B carries alpha/rank; bad keys are refused naming the key', () => {
    const net = trainedNetwork();
    const fun = new Map(loraTensors(net, 'fun', 'F32'));
    const dif = new Map(loraTensors(net, 'diffusers', 'F32'));
    const up = fun.get('lora_unet__proj_out.lora_up.weight')!.data as Float32Array;
    const b = dif.get('transformer.proj_out.lora_B.weight')!.data as Float32Array;
    expect(Array.from(b)).toEqual(Array.from(up, (x) => Math.fround(x * 0.5)));
    const bad = path.join(tmp, 'bad.safetensors');
    fs.copyFileSync(path.join(DIR, 'lora_5b_saved_fp32.safetensors'), bad);
    const store = WeightStore.open(modelDir(meta.checkpoint));
    const badDif = path.join(tmp, 'bad_dif.safetensors');
    saveLora(badDif, net, 'diffusers');
    // rename one key to a module that does not exist
    const f = SafetensorsFile.open(badDif);
    const tensors = Object.fromEntries(
      f.keys().map((k) => [k.replace('transformer.proj_out.', 'transformer.proj_nope.'), { dtype: 'F32' as const, shape: f.entry(k).shape, data: f.read(k).toFloat32() }]),
    );
    f.close();
    fs.rmSync(badDif);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return import('../src/weights/safetensors.js').then(({ saveSafetensors }) => {
      saveSafetensors(badDif, tensors);
      expect(() => LoraMerge.open({ path: badDif }, store)).toThrow(/proj_nope/);
      store.close();
    });
  });
});
