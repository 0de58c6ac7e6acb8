// T5-XXL encoder benchmark: one 226-token prompt on a full-size checkpoint with random weights in the real
// names/shapes/dtype (bf16, sharded like the release), ours on tensorflow and wasm beside PyTorch CPU in the same run,
// each in its own process, one after the other.
//   npx tsx bench/t5.ts [--weights DIR] [--backends tensorflow,wasm] [--no-torch]
// The weights are generated on first use by bench/gen_t5_xxl.py into bench/.weights (git-ignored, 9.5 GB).
// PyTorch runs with COGVIDEOX_PYTHON and COGVIDEOX_PYTHONPATH (bench/common.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setBackend, shutdownBackend, describeBackend, availableBackends } from '../src/nn/backend.js';
import { T5EncoderModel } from '../src/models/t5.js';
import { machine, peakRssGiB, PYTHON, runJson, torchEnv, wasmHeapGiB } from './common.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

async function child(backend: string, dir: string): Promise<void> {
  await setBackend(backend, { quiet: true });
  const t0 = performance.now();
  const model = await T5EncoderModel.fromPretrained(dir);
  const loadS = (performance.now() - t0) / 1000;
  let s = 12345;
  const ids = [Array.from({ length: 226 }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), 3 + (s % Math.min(31997, model.config.vocab_size - 103))))];
  const blocks: { loadMs: number; computeMs: number }[] = [];
  const t1 = performance.now();
  const out = model.forward(ids, { onProfile: (p) => blocks.push(p) });
  const data = out.dataSync();
  const forwardS = (performance.now() - t1) / 1000;
  const finite = data.every(Number.isFinite);
  out.dispose();
  const sum = (k: 'loadMs' | 'computeMs') => blocks.reduce((a, b) => a + b[k], 0) / 1000;
  const result = {
    backend: describeBackend(),
    residency: model.residency,
    load_s: loadS,
    forward_s: forwardS,
    weights_s: sum('loadMs'),
    compute_s: sum('computeMs'),
    compute_block_s: sum('computeMs') / blocks.length,
    peak_rss_gib: peakRssGiB(),
    wasm_heap_gib: wasmHeapGiB(),
    finite,
  };
  model.dispose();
  shutdownBackend();
  console.log(JSON.stringify(result));
}

async function main(): Promise<void> {
  const dir = arg('--weights') ?? path.join(HERE, '.weights', 't5-xxl', 'text_encoder');
  const pyEnv = torchEnv();
  if (!fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) {
    console.log(`generating random T5-XXL weights (bf16, 9.5 GB) in ${dir} …`);
    runJson(PYTHON, [path.join(HERE, 'gen_t5_xxl.py'), dir], pyEnv);
  }
  const backends = (arg('--backends') ?? availableBackends().join(',')).split(',');
  console.log(`T5-XXL encoder, one 226-token prompt — ${machine()}`);
  const rows: [string, Record<string, unknown>][] = [];
  if (!process.argv.includes('--no-torch')) {
    for (const mode of ['fp32-blocks', 'bf16']) rows.push([`pytorch ${mode}`, runJson(PYTHON, [path.join(HERE, 't5_torch.py'), dir, mode], pyEnv)]);
  }
  for (const b of backends) {
    rows.push([`ours ${b}`, runJson(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', b, dir])]);
  }
  const torch32 = rows.find(([n]) => n === 'pytorch fp32-blocks')?.[1];
  const f = (v: unknown, d = 2) => (typeof v === 'number' ? v.toFixed(d) : '—');
  console.log('\n| run | forward s | compute s (per block) | weights s | peak RSS GiB | wasm heap GiB | compute vs PyTorch fp32 |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [name, r] of rows) {
    const compute = (r.compute_s ?? r.forward_s) as number;
    const perBlock = (r.compute_block_s ?? (Array.isArray(r.block_s) ? compute / r.block_s.length : undefined)) as number | undefined;
    const ratio = torch32 ? compute / (torch32.forward_s as number) : undefined;
    console.log(`| ${name}${r.backend ? ` (${r.backend}, ${r.residency})` : ''} | ${f(r.forward_s)} | ${f(compute)} (${f(perBlock, 3)}) | ${f(r.weights_s)} | ${f(r.peak_rss_gib)} | ${f(r.wasm_heap_gib)} | ${f(ratio)}× |`);
  }
  console.log('\nPyTorch fp32-blocks: each block upcast to fp32 and run alone (compute only; the fp32 model, 19 GB, does not fit beside the rest).');
  console.log('PyTorch bf16: the whole model in bf16. Ours: fp32 compute, weights streamed from disk per block (bf16 → fp32 on the host).');
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!);
else await main();
