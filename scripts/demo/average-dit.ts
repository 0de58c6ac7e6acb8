// The mean of the newest K transformer checkpoints of a `cogvideox-fun train` run, as a transformer folder (fp32):
// what to sample from while a run is young. At lr 5e-4, batch 8, the demo transformer's single checkpoints swing
// (step 450, 550 and 600 gave a black, a gray and a white background for the same prompt and seed); the mean of six
// checkpoints 50 steps apart gave the prompted background (scripts/demo/README.md, stage 3, second leg). Training
// resumes from the raw checkpoints; this only reads them.
//   npx tsx scripts/demo/average-dit.ts --run /work/demo-run/dit-run --last 6 --out /tmp/avg/transformer
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { checkpointDir, checkpointSteps, writeTransformerFolder } from '../../src/training/checkpoint.js';
import { WeightStore, readJson } from '../../src/weights/checkpoint.js';
import type { TensorToWrite } from '../../src/weights/safetensors.js';

const { values: a } = parseArgs({ options: { run: { type: 'string' }, last: { type: 'string', default: '6' }, out: { type: 'string' } } });
if (!a.run || !a.out) throw new Error('usage: average-dit.ts --run RUN_DIR [--last K] --out DIR');
const k = Number(a.last);
if (!Number.isInteger(k) || k < 1) throw new Error(`--last must be a positive integer, got '${a.last}'`);
const steps = checkpointSteps(a.run).slice(-k);
if (steps.length < k) throw new Error(`--run ${a.run}: ${steps.length} checkpoint(s), --last asks for ${k}`);
const dirs = steps.map((s) => path.join(checkpointDir(a.run!, s), 'transformer'));
const sum = new Map<string, { shape: number[]; data: Float64Array }>();
for (const dir of dirs) {
  const store = WeightStore.open(dir);
  // the same names in every checkpoint (one run), else a mean over fewer than K would be divided by K
  if (sum.size && (store.keys().length !== sum.size || store.keys().some((n) => !sum.has(n)))) {
    throw new Error(`${dir}: its tensor names differ from ${dirs[0]}'s`);
  }
  for (const name of store.keys()) {
    const t = store.read(name);
    const v = t.toFloat32();
    let acc = sum.get(name);
    if (!acc) sum.set(name, (acc = { shape: t.shape.slice(), data: new Float64Array(v.length) }));
    else if (acc.data.length !== v.length) throw new Error(`${dir}: ${name} has ${v.length} values, the first checkpoint ${acc.data.length}`);
    for (let i = 0; i < v.length; i++) acc.data[i]! += v[i]!;
  }
  store.close();
}
const tensors: [string, TensorToWrite][] = [...sum].map(([name, { shape, data }]) => [name, { dtype: 'F32', shape, data: Float32Array.from(data, (x) => x / k) }]);
writeTransformerFolder(a.out, readJson(path.join(dirs.at(-1)!, 'config.json')) as Record<string, unknown>, tensors);
console.log(`mean of steps ${steps.join(', ')} → ${a.out} (${tensors.length} tensors)`);
