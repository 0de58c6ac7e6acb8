// Attention alone (not a test): our query-blocked attention (src/nn/attention.ts) on tensorflow beside PyTorch's
// fused CPU SDPA and its unfused softmax(q·kᵀ)·v, same shapes, same threads, in one run. Best of 2 each, as wall ms
// and as process CPU ms (user + system of all threads: steadier than wall time on a shared machine). Shows where the
// transformer's gap to PyTorch at 10⁴ tokens comes from: the unfused form writes and re-reads the [B·H, n, S]
// scores; the fused native kernel (src/nn/native.ts, `npm run setup:native`) does not.
//   npx tsx bench/attention.ts [S=4258] [heads=30]
// COGVIDEOX_NATIVE_ISA=avx2 forces the AVX2 kernel (and holds PyTorch to AVX2: bench/common.ts torchEnv); the
// portable kernel is measured with COGVIDEOX_NATIVE_ISA=portable COGVIDEOX_NATIVE_ATTENTION=1.
// PyTorch: COGVIDEOX_PYTHON, COGVIDEOX_PYTHONPATH (bench/common.ts).
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { setBackend } from '../src/nn/backend.js';
import { attention } from '../src/nn/attention.js';
import { nativeAttention, nativeThreads } from '../src/nn/native.js';
import { loadavg, machine, PYTHON, torchEnv } from './common.js';

const S = Number(process.argv[2] ?? 4258);
const H = Number(process.argv[3] ?? 30);
const flop = 4 * 2 * H * S * S * 64;
const threads = nativeThreads();
const py = `
import time
import torch
torch.set_num_threads(${threads})
S, H = ${S}, ${H}
q, k, v = (torch.randn(2, H, S, 64) for _ in range(3))
def t(f):
    wall, cpu = 1e9, 1e9
    for _ in range(2):
        s, c = time.perf_counter(), time.process_time()
        f()
        wall, cpu = min(wall, time.perf_counter() - s), min(cpu, time.process_time() - c)
    return f"{wall} {cpu}"
print('isa', torch.backends.cpu.get_cpu_capability())
print('sdpa', t(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)))
print('unfused', t(lambda: ((q * 0.125) @ k.transpose(-1, -2)).softmax(-1) @ v))
`;
const r = spawnSync(PYTHON, ['-c', py], { encoding: 'utf8', env: { ...process.env, ...torchEnv() } });
if (r.status !== 0) throw new Error(`PyTorch run failed (${PYTHON}; set COGVIDEOX_PYTHON / COGVIDEOX_PYTHONPATH): ${r.stderr.slice(-2000)}`);
const rows: [string, number, number, string][] = [];
let torchIsa = '?';
for (const line of r.stdout.trim().split('\n')) {
  const [name, a, b] = line.split(' ');
  if (name === 'isa') torchIsa = a!;
  else if (name && a && b) rows.push([`PyTorch fp32 ${name === 'sdpa' ? 'fused SDPA' : 'unfused'} (ATen ${torchIsa})`, Number(a) * 1000, Number(b) * 1000, loadavg()]);
}
await setBackend('tensorflow', { quiet: true });
const [q, k, v] = [0, 1, 2].map(() => tf.randomNormal([2, H, S, 64]) as tf.Tensor4D);
const time = (scratchBytes?: number): [number, number] => {
  let wall = Infinity;
  let cpu = Infinity;
  for (let i = 0; i < 2; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    const o = attention(q!, k!, v!, { scale: 0.125, scratchBytes });
    o.dataSync();
    o.dispose();
    wall = Math.min(wall, performance.now() - t);
    const u = process.cpuUsage(c);
    cpu = Math.min(cpu, (u.user + u.system) / 1000);
  }
  return [wall, cpu];
};
const fused = nativeAttention();
if (fused) rows.push([`ours tensorflow, fused native kernel (${fused.simd}, incl. copies)`, ...time(), loadavg()]);
else console.error('native kernel absent (not built, or only its portable kernel here: COGVIDEOX_NATIVE_ATTENTION=1 keeps it): fused row skipped');
process.env.COGVIDEOX_NATIVE_ATTENTION = '0';
for (const mib of [1024, 256]) rows.push([`ours tensorflow, TF ops, ${mib} MiB score blocks`, ...time(mib * 2 ** 20), loadavg()]);
console.log(`attention [2, ${H}, ${S}, 64], ${(flop / 1e9).toFixed(0)} GFLOP, ${threads} threads — ${machine()}\n`);
console.log('| implementation | ms | GFLOP/s | vs SDPA | cpu ms | cpu vs SDPA | load |\n|---|---|---|---|---|---|---|');
const [, refMs, refCpu] = rows[0]!;
for (const [n, ms, cpu, load] of rows) console.log(`| ${n} | ${ms.toFixed(0)} | ${(flop / 1e6 / ms).toFixed(1)} | ${(ms / refMs).toFixed(2)}× | ${cpu.toFixed(0)} | ${(cpu / refCpu).toFixed(2)}× | ${load} |`);
