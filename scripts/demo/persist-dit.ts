// Copies the newest transformer of a `cogvideox-fun train` run into the repository in compact form: parameters in
// F16, sharded under 4 MiB (the repository's large files must stay under 5 MiB), with the run's step and time. The
// machine keeps nothing outside the repository between sessions, so this is how a demo transformer run survives one;
// the next session continues from it as a model folder (README, stage 3): the weights resume exactly as rounded to
// F16, AdamW's moments start afresh.
//   npx tsx scripts/demo/persist-dit.ts --run /work/demo-run/dit-run --out train-state/demo-dit
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { latestCheckpoint, writeTransformerFolder } from '../../src/training/checkpoint.js';
import { WeightStore, readJson } from '../../src/weights/checkpoint.js';
import type { TensorToWrite } from '../../src/weights/safetensors.js';

const { values: a } = parseArgs({ options: { run: { type: 'string' }, out: { type: 'string' } } });
if (!a.run || !a.out) throw new Error('usage: persist-dit.ts --run RUN_DIR --out DIR');
const ckpt = latestCheckpoint(a.run);
if (!ckpt) throw new Error(`--run ${a.run}: no checkpoint-N with a state.json`);
const src = path.join(ckpt, 'transformer');
const store = WeightStore.open(src);
const tensors: [string, TensorToWrite][] = store.keys().map((k) => {
  const t = store.read(k);
  return [k, { dtype: 'F16', shape: t.shape, data: t.toFloat32() }];
});
store.close();
const state = readJson(path.join(ckpt, 'state.json')) as { step: number };
// the run's own step log: total training time of the steps this checkpoint holds (earlier legs add theirs in state.json)
const log = path.join(a.run, 'train_log.jsonl');
const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number; stepSec: number }) : [];
// a leg is one run folder; its id is the folder's creation time (the same path is reused on every machine; on a
// filesystem without birth times this is the epoch or ctime, and legs would merge)
const runId = fs.statSync(a.run).birthtime.toISOString();
// a resumed run appends its re-run steps again: the last line of each step counts
const byStep = new Map(lines.filter((l) => l.step <= state.step).map((l) => [l.step, l.stepSec]));
const seconds = [...byStep.values()].reduce((s, v) => s + v, 0);
const tmp = `${a.out}.tmp`;
fs.rmSync(tmp, { recursive: true, force: true });
writeTransformerFolder(path.join(tmp, 'transformer'), readJson(path.join(src, 'config.json')) as Record<string, unknown>, tensors, 4 * 2 ** 20);
const prev = fs.existsSync(path.join(a.out, 'state.json')) ? (readJson(path.join(a.out, 'state.json')) as { legs?: { runId: string }[] }) : null;
const leg = { runId, step: state.step, stepSeconds: Math.round(seconds), savedAt: new Date().toISOString() };
fs.writeFileSync(path.join(tmp, 'state.json'), JSON.stringify({ legs: [...(prev?.legs ?? []).filter((l) => l.runId !== runId), leg] }, null, 1) + '\n');
for (const f of fs.readdirSync(path.join(tmp, 'transformer'))) {
  const size = fs.statSync(path.join(tmp, 'transformer', f)).size;
  if (size > 5 * 2 ** 20) throw new Error(`${f}: ${size} bytes, over the repository's 5 MiB limit (one tensor larger than a shard)`);
}
fs.rmSync(a.out, { recursive: true, force: true });
fs.renameSync(tmp, a.out);
console.log(`${ckpt} → ${a.out}: ${tensors.length} tensors, F16, step ${state.step}, ${Math.round(seconds)} s of steps`);
