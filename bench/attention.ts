// Attention alone (not a test): our query-blocked attention (src/nn/attention.ts) on tensorflow beside PyTorch's
// fused CPU SDPA and its unfused softmax(q·kᵀ)·v, same shapes, in one run. Shows where the transformer's remaining
// gap to PyTorch at 10⁴ tokens comes from: the unfused form writes and re-reads the [B·H, n, S] scores; the fused
// native kernel (src/nn/native.ts, `npm run setup:native`) does not.
//   npx tsx bench/attention.ts [S=4258] [heads=30]
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { setBackend } from '../src/nn/backend.js';
import { attention } from '../src/nn/attention.js';
import { nativeAttention, nativeThreads } from '../src/nn/native.js';

const S = Number(process.argv[2] ?? 4258);
const H = Number(process.argv[3] ?? 30);
const flop = 4 * 2 * H * S * S * 64;
const py = `
import sys, time
sys.path.insert(0, '/work/pyref/site')
import torch
torch.set_num_threads(2)
S, H = ${S}, ${H}
q, k, v = (torch.randn(2, H, S, 64) for _ in range(3))
def t(f):
    best = 1e9
    for _ in range(2):
        s = time.perf_counter(); f(); best = min(best, time.perf_counter() - s)
    return best
print('sdpa', t(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)))
print('unfused', t(lambda: ((q * 0.125) @ k.transpose(-1, -2)).softmax(-1) @ v))
`;
const r = spawnSync(process.env.PYTHON ?? '/usr/bin/python3', ['-c', py], { encoding: 'utf8' });
if (r.status !== 0) throw new Error(`PyTorch run failed: ${r.stderr.slice(-2000)}`);
const rows: [string, number][] = [];
for (const line of r.stdout.trim().split('\n')) {
  const [name, s] = line.split(' ');
  if (name && s) rows.push([`PyTorch fp32 ${name === 'sdpa' ? 'fused SDPA' : 'unfused'}`, Number(s) * 1000]);
}
await setBackend('tensorflow', { quiet: true });
const [q, k, v] = [0, 1, 2].map(() => tf.randomNormal([2, H, S, 64]) as tf.Tensor4D);
const time = (scratchBytes?: number): number => {
  let best = Infinity;
  for (let i = 0; i < 2; i++) {
    const t = performance.now();
    const o = attention(q!, k!, v!, { scale: 0.125, scratchBytes });
    o.dataSync();
    o.dispose();
    best = Math.min(best, performance.now() - t);
  }
  return best;
};
const fused = nativeAttention();
if (fused) rows.push([`ours tensorflow, fused native kernel (${fused.simd}, ${nativeThreads()} threads, incl. copies)`, time()]);
else console.error('native kernel not built (npm run setup:native): fused row skipped');
process.env.COGVIDEOX_NATIVE_ATTENTION = '0';
for (const mib of [1024, 256]) rows.push([`ours tensorflow, TF ops, ${mib} MiB score blocks`, time(mib * 2 ** 20)]);
console.log(`attention [2, ${H}, ${S}, 64], ${(flop / 1e9).toFixed(0)} GFLOP, ${new Date().toISOString().slice(0, 16)}\n`);
console.log('| implementation | ms | GFLOP/s |\n|---|---|---|');
for (const [n, ms] of rows) console.log(`| ${n} | ${ms.toFixed(0)} | ${(flop / 1e6 / ms).toFixed(1)} |`);
