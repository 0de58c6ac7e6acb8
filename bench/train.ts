// Training step time and peak memory, ours beside PyTorch fp32 CPU (bench/train_torch.py, CogVideoX-Fun's own
// transformer class and LoRA network) on the same step, same machine, with and without gradient checkpointing. Every
// configuration runs in its own process, so its peak RSS (VmHWM / ru_maxrss: loading included) is its own:
//   tiny       full fine-tune, test/fixtures/tiny-fun-2b-inp (D = 32, 2 layers), 3×4×6 latents (226 + 18 tokens)
//   d1920      full fine-tune, a Fun-2b-shaped stack (D = 1920, 30 heads, 2 layers, random seeded weights written by
//              train_torch.py --make-d1920 into bench/.weights), 4×24×32 latents (226 + 768 tokens)
//   fun2b-lora LoRA rank 64 / alpha 32 (the README's example) on Fun-2b-InP in its real shapes (30 layers, random
//              bf16 weights from bench/gen_transformer_weights.py in bench/.weights), 256×256×13 frames = 4×32×32
//              latents (226 + 1024 tokens); one step without warm-up (minutes each)
//   demo       full fine-tune of the bundled demo transformer (assets/demo-model: D = 192, 6 layers) as its training
//              runs it: batch 8, 17×64×96 clips = 5×16×24 latents, 32 text tokens (32 + 120 tokens)
// The step: forward with inpaint latents, MSE on a target, backward, clip, AdamW; batch 1 unless the case says. Time: best / median of
// REPEATS after one warm-up step (fun2b-lora: one cold step). "plan" is src/training/memory.ts's estimate for the
// configuration; a configuration the plan refuses on this machine is not run. Load average beside every timing.
// Usage: nice -n 10 npx tsx bench/train.ts [--backend tensorflow|wasm] [--cases tiny,d1920,fun2b-lora,demo]
//        [--checkpointing off,on] [--repeats N] [--no-torch]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { CogVideoXTransformer3DModel } from '../src/models/transformer.js';
import { setBackend, shutdownBackend } from '../src/nn/backend.js';
import { clipGradNorm } from '../src/training/clip.js';
import { loraTargets, LoraNetwork } from '../src/training/lora.js';
import { planTrainingMemory } from '../src/training/memory.js';
import { AdamW } from '../src/training/optimizer.js';
import { SeededRandom } from '../src/training/random.js';
import { fullTrainables, lossAndGrads, loraTrainables, type PreparedStep, type Trainables } from '../src/training/step.js';
import { readConfig } from '../src/weights/checkpoint.js';
import { TRANSFORMER_DEFAULTS, transformerExpectedShapes, type TransformerConfig } from '../src/weights/transformer_names.js';
import { loadavg, machine, peakRssGiB, PYTHON, runJson } from './common.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..');
const WEIGHTS = path.join(HERE, '.weights');
const PYPATH = ['reference', '/work/pyref/site', '/work/pyref/site-tf', '/work/pyref/src/diffusers-0.32.2/src', '/work/pyref/src/CogVideoX-Fun'].join(':');
const arg = (k: string, d: string) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1]! : d);

interface Case {
  name: string;
  /** the model folder (holding transformer/) */
  model: string;
  F: number;
  H: number;
  W: number;
  mode: 'full' | 'lora';
  rank: number;
  alpha: number;
  warmup: boolean;
  /** batch and text tokens (1 and 226 unless given) */
  batch?: number;
  textLen?: number;
}

const CASES: Case[] = [
  { name: 'tiny', model: path.join(ROOT, 'test/fixtures/tiny-fun-2b-inp'), F: 3, H: 4, W: 6, mode: 'full', rank: 0, alpha: 0, warmup: true },
  { name: 'd1920', model: path.join(WEIGHTS, 'd1920-2layer'), F: 4, H: 24, W: 32, mode: 'full', rank: 0, alpha: 0, warmup: true },
  { name: 'fun2b-lora', model: path.join(WEIGHTS, 'fun-2b'), F: 4, H: 32, W: 32, mode: 'lora', rank: 64, alpha: 32, warmup: false },
  { name: 'demo', model: path.join(ROOT, 'assets/demo-model'), F: 5, H: 16, W: 24, mode: 'full', rank: 0, alpha: 0, warmup: true, batch: 8, textLen: 32 },
];

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 3.4;
  }
  return out;
}

function rssGiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 2 ** 20 : NaN;
}

/** One configuration in this process: prints {best, median, loaded_rss_gib, peak_rss_gib}. */
async function child(c: Case, checkpointing: boolean, repeats: number, backend: string): Promise<void> {
  await setBackend(backend, { quiet: true });
  const dir = path.join(c.model, 'transformer');
  // as the trainer loads it (trainer.ts): LoRA reads the blocks per use
  const model = await CogVideoXTransformer3DModel.fromPretrained(dir, { residency: c.mode === 'lora' ? 'disk' : 'resident' });
  const cfg = model.config;
  let trainables: Trainables;
  let host: Map<string, Float32Array>;
  if (c.mode === 'full') {
    const names = model.parameterNames();
    host = new Map();
    const shapes = new Map<string, number[]>();
    for (const n of names) {
      const p = model.readParameter(n);
      host.set(n, Float32Array.from(p.dataSync() as Float32Array));
      shapes.set(n, p.shape);
      p.dispose();
    }
    trainables = fullTrainables(names, host, shapes);
  } else {
    const net = new LoraNetwork(loraTargets(transformerExpectedShapes(cfg)), { rank: c.rank, alpha: c.alpha });
    net.initialize(new SeededRandom(0));
    host = net.params;
    trainables = loraTrainables(net, (n) => model.readParameter(n));
  }
  const opt = new AdamW([{ names: trainables.names, lr: 1e-5 }], { eps: 1e-10, weightDecay: 3e-2 });
  const C = cfg.out_channels;
  const t = (shape: number[], seed: number) => tf.tensor(randn(shape.reduce((a, b) => a * b, 1), seed), shape);
  const { F, H, W } = c;
  const B = c.batch ?? 1;
  const p: PreparedStep = {
    latents: t([B, F, C, H, W], 1) as tf.Tensor5D,
    noise: t([B, F, C, H, W], 2) as tf.Tensor5D,
    noisyLatents: t([B, F, C, H, W], 3) as tf.Tensor5D,
    target: t([B, F, C, H, W], 4) as tf.Tensor5D,
    inpaintLatents: t([B, F, cfg.in_channels - C, H, W], 5) as tf.Tensor5D,
    timesteps: new Array<number>(B).fill(500),
    t2vFlags: null,
  };
  const text = t([B, c.textLen ?? 226, cfg.text_embed_dim], 6) as tf.Tensor3D;
  const loadedRss = rssGiB();
  const step = () => {
    const r = lossAndGrads(model, p, text, trainables, { gradientCheckpointing: checkpointing });
    clipGradNorm(r.grads, 0.05);
    opt.step(host, r.grads, [1e-5]);
  };
  if (c.warmup) step();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    step();
    times.push((performance.now() - t0) / 1000);
  }
  tf.dispose([p.latents, p.noise, p.noisyLatents, p.target, p.inpaintLatents!, text]);
  model.dispose();
  const sorted = [...times].sort((a, b) => a - b);
  console.log(JSON.stringify({ best: sorted[0], median: sorted[Math.floor(sorted.length / 2)], loaded_rss_gib: loadedRss, peak_rss_gib: peakRssGiB() }));
  shutdownBackend();
}

async function main(): Promise<void> {
  const backend = arg('--backend', 'tensorflow');
  const repeats = Number(arg('--repeats', '3'));
  const names = arg('--cases', 'tiny,d1920,fun2b-lora,demo').split(',');
  const modes = arg('--checkpointing', 'off,on').split(',');
  const torch = !process.argv.includes('--no-torch');
  const plan = CASES.filter((c) => names.includes(c.name));
  const env = { PYTHONPATH: PYPATH };
  for (const c of plan) {
    if (c.name === 'd1920') runJson(PYTHON, [path.join(HERE, 'train_torch.py'), '--make-d1920', path.join(c.model, 'transformer')], env);
    if (c.name === 'fun2b-lora' && !fs.existsSync(path.join(c.model, 'transformer', 'config.json'))) runJson(PYTHON, [path.join(HERE, 'gen_transformer_weights.py'), WEIGHTS, '2b'], env);
  }
  console.log(`# training step, fp32 — ${machine()}, backend ${backend}`);
  console.log('| case | batch | tokens | checkpointing | plan (GiB) | ours best / median (s) | ours RSS loaded → peak (GiB) | load | PyTorch best / median (s) | PyTorch RSS loaded → peak (GiB) | load |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of plan) {
    const cfg = { ...TRANSFORMER_DEFAULTS, ...readConfig<Partial<TransformerConfig>>(path.join(c.model, 'transformer')) } as TransformerConfig;
    const tokens = (c.textLen ?? 226) + c.F * (c.H / cfg.patch_size) * (c.W / cfg.patch_size);
    for (const mode of modes) {
      const on = mode === 'on';
      const est = planTrainingMemory({ modelDir: c.model, mode: c.mode, rank: c.rank, batch: c.batch ?? 1, latent: [c.F, c.H, c.W], useEma: false, inpaint: false, gradientCheckpointing: on });
      const fits = est.total <= 0.9 * est.limit;
      const reps = c.warmup ? repeats : 1;
      const la1 = loadavg();
      const o = fits
        ? (runJson(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', c.name, mode, String(reps), backend]) as { best: number; median: number; loaded_rss_gib: number; peak_rss_gib: number })
        : null;
      const la2 = loadavg();
      const torchArgs = [path.join(HERE, 'train_torch.py'), path.join(c.model, 'transformer'), String(c.F), String(c.H), String(c.W), String(reps)];
      if (on) torchArgs.push('--gradient-checkpointing');
      if (c.mode === 'lora') torchArgs.push('--lora', String(c.rank), String(c.alpha));
      if (!c.warmup) torchArgs.push('--no-warmup');
      if (c.batch) torchArgs.push('--batch', String(c.batch));
      if (c.textLen) torchArgs.push('--text-len', String(c.textLen));
      const py = torch ? (runJson(PYTHON, torchArgs, env) as { step_s: number; median_s: number; loaded_rss_gib: number; peak_rss_gib: number }) : null;
      const s = (x: number) => x.toFixed(x < 10 ? 3 : 1);
      console.log(
        `| ${c.name} | ${c.batch ?? 1} | ${tokens} | ${mode} | ${(est.total / 2 ** 30).toFixed(1)} | ${o ? `${s(o.best)} / ${s(o.median)}` : 'refused by the plan'} | ` +
          `${o ? `${o.loaded_rss_gib.toFixed(2)} → ${o.peak_rss_gib.toFixed(2)}` : '—'} | ${la1} → ${la2} | ` +
          `${py ? `${s(py.step_s)} / ${s(py.median_s)}` : '—'} | ${py ? `${py.loaded_rss_gib.toFixed(2)} → ${py.peak_rss_gib.toFixed(2)}` : '—'} | ${loadavg()} |`,
      );
    }
  }
}

if (process.argv[2] === '--child') {
  const c = CASES.find((x) => x.name === process.argv[3]);
  if (!c) throw new Error(`unknown case ${process.argv[3]}`);
  await child(c, process.argv[4] === 'on', Number(process.argv[5]), process.argv[6] ?? 'tensorflow');
} else {
  await main();
}
