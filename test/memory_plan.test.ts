// The memory plan on the real model shapes (configs as shipped; sizes as the safetensors would have them): it grows
// with the request, refuses what cannot fit with the stage and a suggestion, and the pipelines consult it first.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { T5Tokenizer } from '../src/models/t5_tokenizer.js';
import { AutoencoderKLCogVideoX } from '../src/models/vae.js';
import { CogVideoXFunPipeline } from '../src/pipelines/cogvideox_fun.js';
import { planMemory, type MemoryInputs } from '../src/pipelines/memory_plan.js';
import { loadScheduler } from '../src/schedulers/index.js';
import { readConfig } from '../src/weights/checkpoint.js';
import type { T5Config } from '../src/weights/t5_names.js';
import { TRANSFORMER_DEFAULTS, type TransformerConfig } from '../src/weights/transformer_names.js';
import type { VaeConfig } from '../src/weights/vae_names.js';
import { TINY_MODEL } from './helpers.js';

const GiB = 2 ** 30;
const t5: T5Config = { vocab_size: 32128, d_model: 4096, d_kv: 64, d_ff: 10240, num_layers: 24, num_heads: 64 } as T5Config;
const fun2b = { ...TRANSFORMER_DEFAULTS, in_channels: 33, num_layers: 30, num_attention_heads: 30 } as TransformerConfig;
const vae = { ...readConfig<VaeConfig>(path.join(TINY_MODEL, 'vae')), block_out_channels: [128, 256, 256, 512] } as VaeConfig;

const inputs = (backend: string): MemoryInputs => ({
  backend,
  t5: { config: t5, storedBytes: 9.52e9, fp32Bytes: 19.04e9, residency: 'disk' },
  transformer: { config: fun2b, storedBytes: 3.39e9, fp32Bytes: 6.78e9, residency: backend === 'wasm' ? 'host' : 'resident' },
  vae: { config: vae, storedBytes: 0.43e9, fp32Bytes: 0.86e9, weights: 'block', tiling: false },
});
const limits = { ramBytes: 24 * GiB, heapBytes: 4 * GiB };

describe('memory plan', () => {
  it('Fun-2b 384×672×49 fits this machine on tensorflow; every stage is planned', () => {
    const p = planMemory(inputs('tensorflow'), { height: 384, width: 672, numFrames: 49 }, limits);
    expect(p.stages.map((s) => s.stage)).toEqual(['text', 'denoise', 'decode']);
    expect(p.fits).toBe(true);
    expect(p.peakRssBytes).toBeGreaterThan(6.78e9); // resident fp32 weights at least
    expect(p.peakRssBytes).toBeLessThan(24 * GiB);
  });
  it('grows with resolution and frames', () => {
    const a = planMemory(inputs('tensorflow'), { height: 384, width: 672, numFrames: 9 }, limits).peakRssBytes;
    const b = planMemory(inputs('tensorflow'), { height: 384, width: 672, numFrames: 49 }, limits).peakRssBytes;
    const c = planMemory(inputs('tensorflow'), { height: 768, width: 1344, numFrames: 49 }, limits).peakRssBytes;
    expect(a).toBeLessThan(b);
    expect(b).toBeLessThan(c);
  });
  it('refuses 1344×1344×49 on wasm with the stage and a suggestion', () => {
    const p = planMemory(inputs('wasm'), { height: 1344, width: 1344, numFrames: 49 }, limits);
    expect(p.fits).toBe(false);
    expect(p.problems.join('\n')).toMatch(/wasm heap \((denoise|decode) stage\), the limit is 4\.0 GiB: .*(lower the resolution|tiling)/);
  });
  it('the denoise stage of 1344×1344×49 runs offloaded: inside the wasm heap, within RAM on tensorflow', () => {
    // 13·84·84 + 226 tokens: one [2, S, 1920] activation is 1.4 GB; in-heap it would need ≈ 10 of them
    const w = planMemory({ ...inputs('wasm'), vae: { ...inputs('wasm').vae, tiling: true } }, { height: 1344, width: 1344, numFrames: 49 }, limits);
    const wd = w.stages.find((s) => s.stage === 'denoise')!;
    expect(wd.heapBytes).toBeLessThan(2 * GiB);
    expect(wd.terms.weightsHost).toBeGreaterThan(3.39e9 + 3 * 1.4e9); // + residual stream, q/k/v/out of one sequence
    const t = planMemory(inputs('tensorflow'), { height: 1344, width: 1344, numFrames: 49 }, limits);
    expect(t.stages.find((s) => s.stage === 'denoise')!.rssBytes).toBeLessThan(24 * GiB);
    // a size that fits stays in-heap (no host activations)
    const small = planMemory(inputs('wasm'), { height: 384, width: 672, numFrames: 49 }, limits).stages.find((s) => s.stage === 'denoise')!;
    expect(small.terms.weightsHost).toBeLessThan(3.39e9 + 1);
  });
  it('a conditioning stage appears for I2V / V2V', () => {
    const p = planMemory(inputs('tensorflow'), { height: 384, width: 672, numFrames: 49, image: true }, limits);
    expect(p.stages.map((s) => s.stage)).toEqual(['text', 'conditioning', 'denoise', 'decode']);
  });
  it('the pipeline refuses before compute when the plan does not fit', async () => {
    const pipe = new CogVideoXFunPipeline({
      tokenizer: await T5Tokenizer.fromPretrained(path.join(TINY_MODEL, 'tokenizer')),
      textEncoder: async () => {
        throw new Error('loaded');
      },
      transformer: async () => {
        throw new Error('loaded');
      },
      transformerConfig: fun2b,
      vae: await AutoencoderKLCogVideoX.fromPretrained(path.join(TINY_MODEL, 'vae')),
      scheduler: loadScheduler('DDIM_Origin', path.join(TINY_MODEL, 'scheduler')),
      memory: { ...inputs('tensorflow'), transformer: { ...inputs('tensorflow').transformer, storedBytes: 1e15, fp32Bytes: 1e15, residency: 'resident' } },
    });
    await expect(pipe.call({ prompt: 'x', height: 384, width: 672, numFrames: 9 })).rejects.toThrow(/memory plan: needs about .* GiB of RAM \(denoise stage\)/);
  });
});

describe('the memory plan asks nn what a strategy costs', () => {
  it('the offload rule it plans with is the one the DiT execution plan applies (a forward at that size runs offloaded)', async () => {
    const tf = await import('@tensorflow/tfjs-core');
    const { transformerOffloaded } = await import('../src/nn/capabilities.js');
    const { planDit } = await import('../src/nn/dit/plan.js');
    const backend = tf.getBackend();
    let offloaded = 0;
    for (const B of [1, 2, 4]) {
      for (const N of [1350, 3250, 13_104, 17_550, 40_000]) {
        for (const [heads, headDim] of [[30, 64], [48, 64]] as const) {
          const planned = transformerOffloaded(B, 226 + N, heads * headDim, backend);
          const ops = planDit({ B, Lt: 226, N, heads, headDim }, {});
          expect(ops.name === 'offloaded row chunks', `${backend} B ${B} N ${N} D ${heads * headDim}: ran as ${ops.name}`).toBe(planned);
          if (planned) offloaded++;
        }
      }
    }
    expect(offloaded, 'some of these sizes must be offloaded and some not').toBeGreaterThan(0);
    expect(offloaded).toBeLessThan(30);
  });
});
