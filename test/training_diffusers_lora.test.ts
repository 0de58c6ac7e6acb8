// LoRAs our trainer saved with --lora-format diffusers (reference/train_tiny_lora.ts; tiny CogVideoX-2b and 1.5),
// loaded by diffusers v0.32.2's CogVideoXPipeline.load_lora_weights + fuse_lora(lora_scale) as THUDM's cli_demo does
// (reference/gen_diffusers_lora.py, peft 0.21.0): our --lora loading of the same file with multiplier = lora_scale
// gives the same fused weights and the same transformer output, for cli_demo's 1/rank and for 1.0.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { describeEachBackend, diff, expectClose, FIXTURES, loadFixture, useBackend, type Fixture } from './helpers.js';

const MODELS = ['tiny-pipe-2b', 'tiny-pipe-1.5'] as const;
const DIR = (m: string) => path.join(FIXTURES, 'training', 'diffusers_lora', m);
const LORA = (m: string) => path.join(DIR(m), 'pytorch_lora_weights.safetensors');
const fixtures = Object.fromEntries(MODELS.map((m) => [m, loadFixture(path.join(DIR(m), 'fused.safetensors'))]));
const metaOf = (m: string) => {
  const f = SafetensorsFile.open(path.join(DIR(m), 'fused.safetensors'));
  const meta = JSON.parse(f.metadata.meta!) as { rank: number; scales: { tag: string; lora_scale: number; fused_weights: number }[] };
  f.close();
  return meta;
};
/** The layers of our LoRA file (one lora_A per wrapped Linear). */
const layersOf = (m: string) => {
  const f = SafetensorsFile.open(LORA(m));
  const n = f.keys().filter((k) => k.endsWith('.lora_A.weight')).length;
  f.close();
  return n;
};
// measured worst (both models and backends): output rel-L2 2.6e-7, fused weights max-abs 6.0e-8 / rel-L2 1.4e-8
// (fp32 sums in another order); ×10
const OUT_TOL = { relL2: 3e-6 };
const W_TOL = { relL2: 1.5e-7, maxAbs: 6e-7 };

afterAll(() => shutdownBackend());

function inputs(fx: Fixture) {
  return {
    hiddenStates: tf.tensor<tf.Rank>(fx.f32('input.hidden_states'), fx.shape('input.hidden_states')) as tf.Tensor5D,
    encoderHiddenStates: tf.tensor<tf.Rank>(fx.f32('input.encoder_hidden_states'), fx.shape('input.encoder_hidden_states')) as tf.Tensor3D,
    timestep: Array.from(fx.f32('input.timestep')),
  };
}

describeEachBackend('diffusers-format LoRA from our trainer vs diffusers load_lora_weights + fuse_lora (%s)', (backend) => {
  for (const model of MODELS) {
    const fx = fixtures[model]!;
    const MODEL = path.join(FIXTURES, model, 'transformer');
    it(`${model}: base transformer output (the inputs reach the same model)`, async () => {
      await useBackend(backend);
      const m = await CogVideoXTransformer3DModel.fromPretrained(MODEL, { residency: 'resident' });
      const x = inputs(fx);
      const y = m.forward(x);
      expectClose(`${backend} ${model} base output`, y, fx.f32('base.output'), fx.shape('base.output'), OUT_TOL);
      tf.dispose([y, x.hiddenStates, x.encoderHiddenStates]);
      m.dispose();
    });

    for (const s of metaOf(model).scales) {
      it(`${model}: fuse_lora(lora_scale=${s.tag === 'cli_demo' ? '1/rank' : s.lora_scale}): fused weights and output`, async () => {
        await useBackend(backend);
        const before = tf.memory().numTensors;
        const m = await CogVideoXTransformer3DModel.fromPretrained(MODEL, { residency: 'resident', loras: [{ path: LORA(model), multiplier: s.lora_scale }] });
        const names = fx.names().filter((n) => n.startsWith(`${s.tag}.weight.`));
        // diffusers fused every Linear our trainer wrapped (2b: 5 outside the blocks + 8 per block; 1.5: + the Linear patch embedding)
        expect(names.length).toBe(s.fused_weights);
        expect(names.length).toBe(layersOf(model));
        for (const n of names) {
          const w = m.readParameter(n.slice(`${s.tag}.weight.`.length));
          expectClose(`${backend} ${n}`, w, fx.f32(n), fx.shape(n), W_TOL);
          w.dispose();
        }
        const x = inputs(fx);
        const y = m.forward(x);
        const d = expectClose(`${backend} ${model} ${s.tag} output`, y, fx.f32(`${s.tag}.output`), fx.shape(`${s.tag}.output`), OUT_TOL);
        // the LoRA moves the output far beyond the tolerance, so a wrong scale or a missed layer fails
        const fromBase = diff(fx.f32(`${s.tag}.output`), fx.f32('base.output'));
        expect(fromBase.relL2).toBeGreaterThan(100 * Math.max(d.relL2, OUT_TOL.relL2 / 10));
        tf.dispose([y, x.hiddenStates, x.encoderHiddenStates]);
        m.dispose();
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  }
});
