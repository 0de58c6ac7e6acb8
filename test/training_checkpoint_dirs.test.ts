// Which checkpoint-N folders of a run count (src/training/checkpoint.ts): `--resume-from-checkpoint latest` and
// scripts/demo/average-dit.ts read the same list — complete folders only (a state.json), ordered by N as a number;
// --checkpoints-total-limit prunes by it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { checkpointDir, checkpointSteps, latestCheckpoint, pruneCheckpoints } from '../src/training/checkpoint.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function run(folders: Record<string, boolean>): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-dirs-'));
  dirs.push(out);
  for (const [name, complete] of Object.entries(folders)) {
    fs.mkdirSync(path.join(out, name));
    if (complete) fs.writeFileSync(path.join(out, name, 'state.json'), '{}');
  }
  return out;
}

it('lists complete checkpoints by step as a number and picks the largest', () => {
  // checkpoint-1000 sorts before checkpoint-950 as text; checkpoint-1050 has no state.json (being written)
  const out = run({ 'checkpoint-950': true, 'checkpoint-1000': true, 'checkpoint-50': true, 'checkpoint-1050': false, 'checkpoint-x': true, sample: true });
  expect(checkpointSteps(out)).toEqual([50, 950, 1000]);
  expect(latestCheckpoint(out)).toBe(checkpointDir(out, 1000));
});

it('an empty or missing run has none', () => {
  const out = run({});
  expect(checkpointSteps(out)).toEqual([]);
  expect(latestCheckpoint(out)).toBeNull();
  expect(checkpointSteps(path.join(out, 'missing'))).toEqual([]);
});

it('--checkpoints-total-limit keeps the newest N complete checkpoints and removes the older ones with their LoRA files', () => {
  const out = run({ 'checkpoint-50': true, 'checkpoint-100': true, 'checkpoint-950': true, 'checkpoint-1000': true, 'checkpoint-1050': false, sample: true });
  for (const s of [50, 950]) fs.writeFileSync(path.join(out, `checkpoint-${s}.safetensors`), '');
  expect(pruneCheckpoints(out, 2, 1000)).toEqual([50, 100]);
  // the folder being written (no state.json yet) and other files are not the limit's business
  expect(fs.readdirSync(out).sort()).toEqual(['checkpoint-1000', 'checkpoint-1050', 'checkpoint-950', 'checkpoint-950.safetensors', 'sample']);
  expect(pruneCheckpoints(out, 5, 1000)).toEqual([]);
  expect(checkpointSteps(out)).toEqual([950, 1000]);
});

it('a run resumed from an older checkpoint keeps the one it just saved (train.py cuts the others to N − 1 first)', () => {
  // resumed from 400 with 500 and 600 left by the abandoned run; checkpoint-450 is the new one
  const out = run({ 'checkpoint-400': true, 'checkpoint-450': true, 'checkpoint-500': true, 'checkpoint-600': true });
  expect(pruneCheckpoints(out, 2, 450)).toEqual([400, 500]);
  expect(checkpointSteps(out)).toEqual([450, 600]);
  expect(pruneCheckpoints(out, 1, 450)).toEqual([600]);
  expect(checkpointSteps(out)).toEqual([450]);
});
