// Linear layers alone (not a test): the transformer block's matMul shapes through our linear() on tensorflow — the
// native GEMM (src/nn/native/gemm.h, `npm run setup:native`) and TensorFlow's matMul — beside PyTorch's
// F.linear (MKL sgemm), fp32, 2 threads, same shapes, in one run. Best of 3 each; "incl. copies" is linear() on
// tensors (TF → host → TF), "kernel" the addon on host arrays.
//   npx tsx bench/linear.ts [rows,…=1988,8516] [D,…=1920,3072]
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { setBackend } from '../src/nn/backend.js';
import { disposeLinear, linear, linearFromHost } from '../src/nn/linear.js';
import { nativeLinear, nativeThreads } from '../src/nn/native.js';
import { HostTensor } from '../src/weights/host_tensor.js';

const ROWS = (process.argv[2] ?? '1988,8516').split(',').map(Number);
const DIMS = (process.argv[3] ?? '1920,3072').split(',').map(Number);
// [rows, in, out]: q/k/v/out projections, FF up, FF down
const shapes = ROWS.flatMap((M) => DIMS.flatMap((D) => [[M, D, D], [M, D, 4 * D], [M, 4 * D, D]] as [number, number, number][]));

const py = `
import sys, time, json
sys.path.insert(0, '/work/pyref/site')
import torch
torch.set_num_threads(2)
out = []
for M, K, N in ${JSON.stringify(shapes)}:
    x, w, b = torch.randn(M, K), torch.randn(N, K) * 0.02, torch.randn(N)
    best = 1e9
    for _ in range(3):
        s = time.perf_counter(); torch.nn.functional.linear(x, w, b); best = min(best, time.perf_counter() - s)
    out.append(best * 1000)
print(json.dumps(out))
`;
const r = spawnSync(process.env.PYTHON ?? '/usr/bin/python3', ['-c', py], { encoding: 'utf8' });
if (r.status !== 0) throw new Error(`PyTorch run failed: ${r.stderr.slice(-2000)}`);
const torchMs = JSON.parse(r.stdout.trim()) as number[];

await setBackend('tensorflow', { quiet: true });
const native = nativeLinear();
if (!native) console.error('native GEMM not built (npm run setup:native) or not AVX-512: native rows skipped');
const best = (f: () => void): number => {
  let ms = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    f();
    ms = Math.min(ms, performance.now() - t);
  }
  return ms;
};
console.log(`linear layers, fp32, ${nativeThreads()} threads, ${new Date().toISOString().slice(0, 16)}\n`);
console.log('| rows × in → out | GFLOP | PyTorch ms (GFLOP/s) | native GEMM, kernel | native GEMM, linear() incl. copies | TF matMul, linear() |');
console.log('|---|---|---|---|---|---|');
const rate = (flop: number, ms: number) => `${ms.toFixed(0)} (${(flop / 1e6 / ms).toFixed(0)}; ${(ms / torchRef).toFixed(2)}×)`;
let torchRef = 1;
for (const [i, [M, K, N]] of shapes.entries()) {
  const flop = 2 * M * K * N;
  torchRef = torchMs[i]!;
  const x = tf.randomNormal([M, K]) as tf.Tensor2D;
  const wv = tf.tidy(() => tf.mul(tf.randomNormal([N, K]), 0.02)).dataSync() as Float32Array;
  const bv = tf.randomNormal([N]).dataSync() as Float32Array;
  const w = new HostTensor([N, K], 'f32', wv);
  const b = new HostTensor([N], 'f32', bv);
  const cells: string[] = [];
  if (native) {
    const xv = x.dataSync() as Float32Array;
    const out = new Float32Array(M * N);
    cells.push(rate(flop, best(() => native.linear(xv, M, K, wv, K, N, bv, out, nativeThreads()))));
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
  console.log(`| ${M} × ${K} → ${N} | ${(flop / 1e9).toFixed(1)} | ${torchRef.toFixed(0)} (${(flop / 1e6 / torchRef).toFixed(0)}) | ${cells.join(' | ')} |`);
}
