// Training step time, ours beside PyTorch fp32 CPU (bench/train_torch.py) on the same step, same machine, one run:
// one full fine-tuning step of the CogVideoX-Fun transformer (forward with inpaint latents, MSE on a target, backward,
// clip_grad_norm_, AdamW), batch 1, after one warm-up step, best of REPEATS:
//   tiny  — test/fixtures/tiny-fun-2b-inp (D = 32, 2 layers), 3×4×6 latents (226 + 18 tokens)
//   d1920 — a Fun-2b-shaped stack (D = 1920, 30 heads, 2 layers, random seeded weights), 4×24×32 latents (226 + 768)
// Prints a table with the load average beside every timing (the machine is shared: numbers are noisy).
// Usage: npx tsx bench/train.ts [--backend tensorflow|wasm] [--cases tiny,d1920] [--repeats N]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { setBackend, shutdownBackend } from '../src/nn/backend.js';
import { clipGradNorm } from '../src/training/clip.js';
import { AdamW } from '../src/training/optimizer.js';
import { fullTrainables, lossAndGrads, type PreparedStep } from '../src/training/step.js';
import { machine, peakRssGiB, PYTHON, runJson } from './common.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYPATH = ['reference', '/work/pyref/site', '/work/pyref/site-tf', '/work/pyref/src/diffusers-0.32.2/src', '/work/pyref/src/CogVideoX-Fun'].join(':');
const arg = (k: string, d: string) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1]! : d);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 3.4;
  }
  return out;
}

async function ours(dir: string, F: number, H: number, W: number, repeats: number): Promise<{ best: number; median: number }> {
  const model = await CogVideoXTransformer3DModel.fromPretrained(dir, { residency: 'resident' });
  const names = model.parameterNames();
  const host = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const n of names) {
    const p = model.readParameter(n);
    host.set(n, Float32Array.from(p.dataSync() as Float32Array));
    shapes.set(n, p.shape);
    p.dispose();
  }
  const c = model.config;
  const C = c.out_channels;
  const trainables = fullTrainables(names, host, shapes);
  const opt = new AdamW([{ names, lr: 1e-5 }], { eps: 1e-10, weightDecay: 3e-2 });
  const t = (shape: number[], seed: number) => tf.tensor(randn(shape.reduce((a, b) => a * b, 1), seed), shape);
  const p: PreparedStep = {
    latents: t([1, F, C, H, W], 1) as tf.Tensor5D,
    noise: t([1, F, C, H, W], 2) as tf.Tensor5D,
    noisyLatents: t([1, F, C, H, W], 3) as tf.Tensor5D,
    target: t([1, F, C, H, W], 4) as tf.Tensor5D,
    inpaintLatents: t([1, F, C + 1, H, W], 5) as tf.Tensor5D,
    timesteps: [500],
    t2vFlags: null,
  };
  const text = t([1, 226, c.text_embed_dim], 6) as tf.Tensor3D;
  const step = () => {
    const r = lossAndGrads(model, p, text, trainables);
    clipGradNorm(r.grads, 0.05);
    opt.step(host, r.grads, [1e-5]);
  };
  step();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    step();
    times.push((performance.now() - t0) / 1000);
  }
  tf.dispose([p.latents, p.noise, p.noisyLatents, p.target, p.inpaintLatents!, text]);
  model.dispose();
  return { best: Math.min(...times), median: times.sort((a, b) => a - b)[Math.floor(times.length / 2)]! };
}

async function main(): Promise<void> {
  const backend = arg('--backend', 'tensorflow');
  const repeats = Number(arg('--repeats', '3'));
  const cases = arg('--cases', 'tiny,d1920').split(',');
  await setBackend(backend, { quiet: true });
  const d1920 = path.join(os.tmpdir(), 'cogvideox-bench-d1920-2layer');
  const plan = [
    { name: 'tiny', dir: path.join(ROOT, 'test/fixtures/tiny-fun-2b-inp/transformer'), F: 3, H: 4, W: 6 },
    { name: 'd1920', dir: d1920, F: 4, H: 24, W: 32 },
  ].filter((c) => cases.includes(c.name));
  if (plan.some((c) => c.name === 'd1920')) runJson(PYTHON, ['bench/train_torch.py', '--make-d1920', d1920], { PYTHONPATH: PYPATH });
  console.log(`# training step (full fine-tune, fp32, batch 1) — ${machine()}, backend ${backend}`);
  console.log('| case | tokens | ours best / median (s) | load avg | PyTorch best / median (s) | load avg | ours / torch | our peak RSS |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const c of plan) {
    const la1 = loadavg();
    const o = await ours(c.dir, c.F, c.H, c.W, repeats);
    const rss = peakRssGiB();
    const la2 = loadavg();
    const py = runJson(PYTHON, ['bench/train_torch.py', c.dir, String(c.F), String(c.H), String(c.W), String(repeats)], { PYTHONPATH: PYPATH }) as { step_s: number; median_s: number; tokens: number };
    console.log(
      `| ${c.name} | ${py.tokens} | ${o.best.toFixed(3)} / ${o.median.toFixed(3)} | ${la1} → ${la2} | ${py.step_s.toFixed(3)} / ${py.median_s.toFixed(3)} | ${loadavg()} | ` +
        `${(o.best / py.step_s).toFixed(2)}× | ${rss.toFixed(2)} GiB |`,
    );
  }
  shutdownBackend();
}

await main();
