// Gradient checkpointing (src/nn/checkpoint.ts, the transformer's `gradientCheckpointing`): the loss and every
// gradient equal those of the taped forward, for full fine-tuning and LoRA, on the tiny Fun checkpoints (sin-cos PE,
// RoPE, 1.5's patch_t), and nothing is left allocated. (The PyTorch fixtures with checkpointing on: training_step.test.ts.)
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { recompute } from '../src/nn/checkpoint.js';
import { loraTargets, LoraNetwork } from '../src/training/lora.js';
import { fullTrainables, lossAndGrads, loraTrainables, type PreparedStep, type Trainables } from '../src/training/step.js';
import { describeEachBackend, diff, FIXTURES, useBackend } from './helpers.js';

afterAll(() => shutdownBackend());

function uniform(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
const rand = (shape: number[], seed: number, scale = 1) => tf.tensor(uniform(shape.reduce((a, b) => a * b, 1), seed).map((v) => v * scale), shape);

/** Measured worst gradient rel-L2 between the two: 2.8e-7 (both backends, every case; the same kernels, gradients
 * summed in another order); 10× that. */
const TOL = 3e-6;

async function compare(checkpoint: string, mode: 'full' | 'lora', latent: [number, number, number]): Promise<void> {
  const model = await CogVideoXTransformer3DModel.fromPretrained(path.join(FIXTURES, checkpoint, 'transformer'), { residency: 'resident' });
  const start = tf.memory().numTensors;
  const c = model.config;
  const [f, h, w] = latent;
  const C = c.out_channels;
  const shape = [2, f, C, h, w];
  const p: PreparedStep = {
    latents: rand(shape, 1) as tf.Tensor5D,
    noise: rand(shape, 2) as tf.Tensor5D,
    noisyLatents: rand(shape, 3) as tf.Tensor5D,
    target: rand(shape, 4) as tf.Tensor5D,
    inpaintLatents: c.in_channels > C ? (rand([2, f, c.in_channels - C, h, w], 5) as tf.Tensor5D) : null,
    timesteps: [100, 900],
    t2vFlags: null,
  };
  const text = rand([2, 7, c.text_embed_dim], 6) as tf.Tensor3D;
  const names = model.parameterNames();
  let trainables: Trainables;
  if (mode === 'full') {
    const host = new Map<string, Float32Array>();
    const shapes = new Map<string, number[]>();
    for (const n of names) {
      const t = model.readParameter(n);
      host.set(n, Float32Array.from(t.dataSync() as Float32Array));
      shapes.set(n, t.shape);
      t.dispose();
    }
    trainables = fullTrainables(names, host, shapes);
  } else {
    const shapes = new Map(names.map((n) => [n, model.readParameter(n)] as const).map(([n, t]) => (t.dispose(), [n, t.shape])));
    const net = new LoraNetwork(loraTargets(shapes), { rank: 3, alpha: 2 });
    // both factors non-zero, so every factor has a gradient
    net.load(new Map(net.parameterNames().map((k, i) => [k, uniform(net.params.get(k)!.length, 100 + i).map((v) => 0.3 * v)])));
    trainables = loraTrainables(net, (n) => model.readParameter(n));
  }
  const plain = lossAndGrads(model, p, text, trainables);
  const ckpt = lossAndGrads(model, p, text, trainables, { gradientCheckpointing: true });
  expect(Math.abs(ckpt.loss - plain.loss) / plain.loss, 'loss').toBeLessThan(TOL);
  expect([...ckpt.grads.keys()]).toEqual([...plain.grads.keys()]);
  let worst = 0;
  let nonZero = 0;
  for (const [n, g] of plain.grads) {
    const d = diff(ckpt.grads.get(n)!, g);
    if (g.some((v) => v !== 0)) nonZero++;
    worst = Math.max(worst, Number.isNaN(d.relL2) ? 0 : d.relL2);
    expect(d.maxAbs <= TOL * Math.max(...g.map(Math.abs)) || d.relL2 < TOL, `${n}: rel-L2 ${d.relL2}`).toBe(true);
  }
  expect(nonZero, 'gradients reach the parameters').toBeGreaterThan(plain.grads.size / 2);
  console.log(`${tf.getBackend()} ${checkpoint} ${mode}: loss ${plain.loss}, worst gradient rel-L2 checkpointed vs taped ${worst.toExponential(2)}`);
  tf.dispose([p.latents, p.noise, p.noisyLatents, p.target, text, ...(p.inpaintLatents ? [p.inpaintLatents] : [])]);
  expect(tf.memory().numTensors, 'tensors left').toBe(start);
  model.dispose();
}

describeEachBackend('gradient checkpointing on %s', (backend) => {
  it('recompute: value and gradients of a function equal the taped ones, nothing leaks', async () => {
    await useBackend(backend);
    const start = tf.memory().numTensors;
    const a = tf.tensor2d([[1, 2], [3, -1]]);
    const b = tf.tensor1d([0.5, -2]);
    const k = tf.tensor1d([3, 4]);
    const f = ([x, y]: tf.Tensor[], [z]: tf.Tensor[]) => tf.sum(tf.mul(tf.tanh(tf.add(tf.matMul(x!, x!), y!)), z!));
    const taped = tf.grads((x: tf.Tensor, y: tf.Tensor) => f([x, y], [k]))([a, b]);
    const checked = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.mul(recompute(f, [x, y], [k]), 1) as tf.Scalar)([a, b]);
    for (let i = 0; i < 2; i++) expect(Array.from(checked[i]!.dataSync())).toEqual(Array.from(taped[i]!.dataSync()));
    const v = tf.tidy(() => recompute(f, [a, b], [k])); // no tape: just f
    const ref = tf.tidy(() => f([a, b], [k]));
    expect(v.dataSync()[0]).toBe(ref.dataSync()[0]);
    tf.dispose([...taped, ...checked, v, ref, a, b, k]);
    expect(tf.memory().numTensors).toBe(start);
  });

  it('full fine-tune, tiny Fun 2b-InP (sin-cos PE): loss and gradients equal the taped forward', async () => {
    await useBackend(backend);
    await compare('tiny-fun-2b-inp', 'full', [3, 4, 6]);
  }, 60_000);

  it('LoRA, tiny Fun 5b-InP (RoPE) and 1.5-5b-InP (patch_t 2): loss and gradients equal the taped forward', async () => {
    await useBackend(backend);
    await compare('tiny-fun-5b-inp', 'lora', [2, 4, 4]);
    await compare('tiny-fun-1.5-5b-inp', 'lora', [3, 4, 4]);
  }, 60_000);
});
