// Gradients through CogVideoXTransformer3DModel against PyTorch autograd on the original classes
// (reference/gen_transformer_grads.py): loss = sum(out · R) for a fixed random R; the gradient of every parameter
// (through the `params` override, as training uses it) and of the input hidden states / text embeddings. The forward
// takes its differentiable path by itself under the tape, on every backend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { expectClose, FIXTURES, loadFixture, useBackend, describeEachBackend } from './helpers.js';

const DIR = path.join(FIXTURES, 'transformer', 'grads');
interface GradCase {
  checkpoint: string;
  parameters: string[];
}
const INDEX = JSON.parse(fs.readFileSync(path.join(DIR, 'grads.json'), 'utf8')) as { cases: Record<string, GradCase> };
const CASES = Object.keys(INDEX.cases).sort();
/** rel-L2 bound of every gradient: the worst seen over every parameter, case and both backends is 2.0e-6 (measured
 * 2026-12-02, AMD EPYC); 1e-5 is the bound training needs. */
const GRAD_TOL = { relL2: Number(process.env.COGVIDEOX_TOL_MEASURE) || 1e-5 };

/** Below this L2 norm a reference gradient is rounding noise around an exact zero (see the loop below). */
const ZERO_GRAD = 1e-4;

afterAll(() => shutdownBackend());

describeEachBackend('transformer gradients on %s', (backend) => {
  it.each(CASES)('%s', async (name) => {
    await useBackend(backend);
    const entry = INDEX.cases[name]!;
    const fx = loadFixture(path.join(DIR, `${name}.safetensors`));
    const has = (k: string) => fx.names().includes(k);
    const t = (k: string) => tf.tensor(fx.f32(k), fx.shape(k));
    const model = await CogVideoXTransformer3DModel.fromPretrained(path.join(FIXTURES, entry.checkpoint), { residency: 'resident' });
    expect(model.parameterNames().sort(), 'parameter names = torch named_parameters()').toEqual([...entry.parameters].sort());
    const start = tf.memory().numTensors;
    const hidden = t('in.hidden_states') as tf.Tensor5D;
    const encoder = t('in.encoder_hidden_states') as tf.Tensor3D;
    const inpaint = has('in.inpaint_latents') ? (t('in.inpaint_latents') as tf.Tensor5D) : undefined;
    const R = t('R');
    const rope = has('in.rope_cos') ? { cos: t('in.rope_cos') as tf.Tensor2D, sin: t('in.rope_sin') as tf.Tensor2D } : undefined;
    const inputs = { encoderHiddenStates: encoder, timestep: Array.from(fx.f32('in.timestep')), inpaintLatents: inpaint, imageRotaryEmb: rope };

    // d loss / d hidden_states: tf.grad alone, no option
    const gh = tf.grad((h: tf.Tensor) => tf.sum(tf.mul(model.forward({ ...inputs, hiddenStates: h as tf.Tensor5D }), R)))(hidden);
    expectClose(`${backend} ${name} grad hidden_states`, gh, fx.f32('grad.in.hidden_states'), fx.shape('grad.in.hidden_states'), GRAD_TOL);
    gh.dispose();

    // every parameter, as variables passed through `params`, and the text embeddings
    const initial = entry.parameters.map((n) => model.readParameter(n));
    const vars = new Map(entry.parameters.map((n, i) => [n, tf.variable(initial[i]!, true, `${backend}:${name}:${n}`)]));
    const enc = tf.variable(encoder, true, `${backend}:${name}:encoder`);
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(model.forward({ ...inputs, hiddenStates: hidden, encoderHiddenStates: enc }, { params: (n) => vars.get(n) }), R)) as tf.Scalar,
      [...vars.values(), enc],
    );
    expectClose(`${backend} ${name} loss`, value, fx.f32('loss'), [], GRAD_TOL);
    expectClose(`${backend} ${name} grad encoder_hidden_states`, grads[enc.name]!, fx.f32('grad.in.encoder_hidden_states'), fx.shape('grad.in.encoder_hidden_states'), GRAD_TOL);
    for (const [n, v] of vars) {
      const ref = fx.f32(`grad.${n}`);
      if (Math.hypot(...ref) < ZERO_GRAD) {
        // Exactly zero in exact arithmetic (both sides are rounding noise): the k LayerNorm's bias without RoPE adds
        // q·b to every score of a query, and softmax ignores a per-query constant.
        expect(Math.hypot(...(grads[v.name]!.dataSync() as Float32Array)), `${backend} ${name} grad ${n} (zero)`).toBeLessThan(ZERO_GRAD);
        continue;
      }
      expectClose(`${backend} ${name} grad ${n}`, grads[v.name]!, ref, fx.shape(`grad.${n}`), GRAD_TOL);
    }
    tf.dispose([value, ...Object.values(grads), ...vars.values(), ...initial, enc, hidden, encoder, R, ...(inpaint ? [inpaint] : []), ...(rope ? [rope.cos, rope.sin] : [])]);
    expect(tf.memory().numTensors, 'tensors left by the gradient computations').toBe(start);
    model.dispose();
  });
});
