// Linear layers alone (not a test): the transformer block's matMul shapes through our linear() on tensorflow — the
// native GEMM (src/nn/native/gemm_*.h, `npm run setup:native`) and TensorFlow's matMul — beside PyTorch's
// F.linear (MKL sgemm), fp32, same threads, same shapes, in one run. Best of 3 each, as wall ms and as process CPU
// ms (user + system of all threads: steadier than wall time on a shared machine); "incl. copies" is linear() on
// tensors (TF → host → TF), "kernel" the addon on host arrays.
//   npx tsx bench/linear.ts [rows,…=1988,8516] [D,…=1920,3072]
// The native ISA is the best this CPU has; COGVIDEOX_NATIVE_ISA=avx2 forces the AVX2 kernels (and holds PyTorch to
// AVX2: bench/common.ts torchEnv); add ONEDNN_MAX_CPU_ISA=AVX2 to hold TensorFlow's oneDNN to AVX2 too.
// PyTorch: COGVIDEOX_PYTHON, COGVIDEOX_PYTHONPATH (bench/common.ts).
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { setBackend } from '../src/nn/backend.js';
import { disposeLinear, linear, linearFromHost } from '../src/nn/linear.js';
import { nativeInfo, nativeLinear, nativeThreads } from '../src/nn/native.js';
import { HostTensor } from '../src/weights/host_tensor.js';
import { loadavg, machine, PYTHON, torchEnv } from './common.js';

const ROWS = (process.argv[2] ?? '1988,8516').split(',').map(Number);
const DIMS = (process.argv[3] ?? '1920,3072').split(',').map(Number);
// [rows, in, out]: q/k/v/out projections, FF up, FF down
const shapes = ROWS.flatMap((M) => DIMS.flatMap((D) => [[M, D, D], [M, D, 4 * D], [M, 4 * D, D]] as [number, number, number][]));
const threads = nativeThreads();

const py = `
import time, json
import torch
torch.set_num_threads(${threads})
out = []
for M, K, N in ${JSON.stringify(shapes)}:
    x, w, b = torch.randn(M, K), torch.randn(N, K) * 0.02, torch.randn(N)
    wall, cpu = 1e9, 1e9
    for _ in range(3):
        s, c = time.perf_counter(), time.process_time()
        torch.nn.functional.linear(x, w, b)
        wall, cpu = min(wall, time.perf_counter() - s), min(cpu, time.process_time() - c)
    out.append([wall * 1000, cpu * 1000])
print(json.dumps({"isa": torch.backends.cpu.get_cpu_capability(), "ms": out}))
`;
const r = spawnSync(PYTHON, ['-c', py], { encoding: 'utf8', env: { ...process.env, ...torchEnv() } });
if (r.status !== 0) throw new Error(`PyTorch run failed (${PYTHON}; set COGVIDEOX_PYTHON / COGVIDEOX_PYTHONPATH): ${r.stderr.slice(-2000)}`);
const torchRes = JSON.parse(r.stdout.trim().split('\n').pop()!) as { isa: string; ms: [number, number][] };

await setBackend('tensorflow', { quiet: true });
const native = nativeLinear();
const info = nativeInfo();
if (!native) console.error(`native GEMM absent (${info ? `ISA ${info.isa}` : 'addon not built: npm run setup:native'}): native columns skipped`);
/** Best of 3: [wall ms, process CPU ms]. */
const best = (f: () => void): [number, number] => {
  let wall = Infinity;
  let cpu = Infinity;
  for (let i = 0; i < 3; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    f();
    wall = Math.min(wall, performance.now() - t);
    const u = process.cpuUsage(c);
    cpu = Math.min(cpu, (u.user + u.system) / 1000);
  }
  return [wall, cpu];
};
console.log(`linear layers, fp32, ${threads} threads — ${machine()}`);
console.log(`ours: native ${info?.kernels.linear ?? 'none'}; PyTorch: ATen ${torchRes.isa}${process.env.COGVIDEOX_NATIVE_ISA === 'avx2' ? ', MKL / oneDNN held to AVX2' : ''}\n`);
console.log('| rows × in → out | GFLOP | PyTorch ms (GFLOP/s), cpu ms | native GEMM, kernel | native GEMM, linear() incl. copies | TF matMul, linear() | load |');
console.log('|---|---|---|---|---|---|---|');
let torchRef: [number, number] = [1, 1];
const rate = (flop: number, [ms, cpu]: [number, number]) => `${ms.toFixed(0)} (${(flop / 1e6 / ms).toFixed(0)}; ${(ms / torchRef[0]).toFixed(2)}×), cpu ${cpu.toFixed(0)} (${(cpu / torchRef[1]).toFixed(2)}×)`;
for (const [i, [M, K, N]] of shapes.entries()) {
  const flop = 2 * M * K * N;
  torchRef = torchRes.ms[i]!;
  const x = tf.randomNormal([M, K]) as tf.Tensor2D;
  const wv = tf.tidy(() => tf.mul(tf.randomNormal([N, K]), 0.02)).dataSync() as Float32Array;
  const bv = tf.randomNormal([N]).dataSync() as Float32Array;
  const w = new HostTensor([N, K], 'f32', wv);
  const b = new HostTensor([N], 'f32', bv);
  const cells: string[] = [];
  if (native) {
    const xv = x.dataSync() as Float32Array;
    const out = new Float32Array(M * N);
    cells.push(rate(flop, best(() => native.linear(xv, M, K, wv, K, N, bv, out, threads))));
    const p = linearFromHost(w, b, { rows: M });
    cells.push(rate(flop, best(() => linear(x, p).dispose())));
    disposeLinear(p);
  } else cells.push('–', '–');
  process.env.COGVIDEOX_NATIVE_GEMM = '0';
  const p = linearFromHost(w, b, { rows: M });
  cells.push(rate(flop, best(() => {
    const y = linear(x, p);
    y.dataSync();
    y.dispose();
  })));
  disposeLinear(p);
  delete process.env.COGVIDEOX_NATIVE_GEMM;
  x.dispose();
  console.log(`| ${M} × ${K} → ${N} | ${(flop / 1e9).toFixed(1)} | ${torchRef[0].toFixed(0)} (${(flop / 1e6 / torchRef[0]).toFixed(0)}), cpu ${torchRef[1].toFixed(0)} | ${cells.join(' | ')} | ${loadavg()} |`);
}
