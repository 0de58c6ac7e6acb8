// Demo-VAE training step time, ours (scripts/demo/vae_step.ts on the chosen backend) beside PyTorch CPU fp32
// (scripts/demo/vae_step_torch.py: CogVideoX-Fun's AutoencoderKLCogVideoX, same loss, torch.optim.AdamW), same
// config and batch, one after the other in one run; random weights from VAE_DIR, random pixels.
//   npx tsx scripts/demo/vae-step-bench.ts --vae DIR [--shapes 4,9,32,32;1,17,64,96] [--steps 3] [--backend tensorflow]
//                                         [--torch-threads N]
// Prints per shape: median s/step of each (after one warm-up step) and the ratio, with the load average.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { AutoencoderKLCogVideoX } from '../../src/models/vae.js';
import { describeBackend, setBackend } from '../../src/nn/backend.js';
import { AdamW } from './vae_state.js';
import { trainStep } from './vae_step.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const { values: a } = parseArgs({
  options: { vae: { type: 'string' }, shapes: { type: 'string', default: '4,9,32,32' }, steps: { type: 'string', default: '3' }, backend: { type: 'string' }, 'torch-threads': { type: 'string' } },
});
if (!a.vae || !fs.existsSync(path.join(a.vae, 'config.json'))) throw new Error(`--vae must be a folder with config.json, got '${a.vae}'`);
const steps = Number(a.steps);
if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer, got '${a.steps}'`);
const shapes = a.shapes!.split(';').map((s) => {
  const v = s.split(',').map(Number);
  if (v.length !== 4 || v.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--shapes: '${s}' is not B,F,H,W`);
  return v as [number, number, number, number];
});
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;

async function ours(B: number, F: number, H: number, W: number): Promise<number[]> {
  const vae = await AutoencoderKLCogVideoX.fromPretrained(a.vae!, { weights: 'resident' });
  vae.disableTiling();
  const params = new Map<string, tf.Variable>();
  for (const n of vae.parameterNames()) params.set(n, tf.variable(vae.readParameter(n), true, `bench/${n}/${B}x${F}x${H}x${W}`));
  const opt = new AdamW(params, 1e-4, 0.9, 0.999, 1e-8, 1e-2);
  const times: number[] = [];
  for (let s = 0; s <= steps; s++) {
    const x = tf.sub(tf.mul(tf.randomUniform([B, 3, F, H, W], 0, 1, 'float32', s), 2), 1) as tf.Tensor5D;
    const t0 = performance.now();
    trainStep(vae, opt, x, 1e-3, s, s + 1);
    if (s > 0) times.push((performance.now() - t0) / 1000);
    x.dispose();
  }
  for (const p of params.values()) p.dispose();
  for (const v of [...opt.m.values(), ...opt.v.values()]) v.dispose();
  vae.dispose();
  return times;
}

function torch(B: number, F: number, H: number, W: number): number[] {
  const py = ['reference', '/work/pyref/site', '/work/pyref/site-tf', '/work/pyref/src/diffusers-0.32.2/src', '/work/pyref/src/CogVideoX-Fun'];
  const out = execFileSync('/usr/bin/python3', [path.join(HERE, 'vae_step_torch.py'), a.vae!, `${B},${F},${H},${W}`, '--steps', String(steps)], {
    cwd: REPO,
    // --torch-threads: torch's intra-op threads (OMP_NUM_THREADS); on a loaded machine 2 OpenMP threads spin-wait
    // on each other and run many times slower than 1.
    env: { ...process.env, PYTHONPATH: py.join(':'), ...(a['torch-threads'] ? { OMP_NUM_THREADS: a['torch-threads'] } : {}) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const line = out.trim().split('\n').pop()!;
  return (JSON.parse(line) as { s_per_step: number[] }).s_per_step;
}

async function main(): Promise<void> {
  await setBackend(a.backend, { quiet: true });
  console.log(`${describeBackend()}; ${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length}; ${steps} steps after a warm-up`);
  console.log('| batch B×3×F×H×W | ours s/step | PyTorch s/step | ours / PyTorch | load before → after |');
  console.log('|---|---|---|---|---|');
  for (const [B, F, H, W] of shapes) {
    const l0 = loadavg();
    const o = median(await ours(B, F, H, W));
    const t = median(torch(B, F, H, W));
    console.log(`| ${B}×3×${F}×${H}×${W} | ${o.toFixed(2)} | ${t.toFixed(2)} | ${(o / t).toFixed(2)} | ${l0} → ${loadavg()} |`);
  }
}

main().catch((e: unknown) => {
  console.error(`vae-step-bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
