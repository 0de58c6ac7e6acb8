// Backend selection: what is available, overrides, clear errors, and a process that exits when work ends.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { availableBackends } from '../src/nn/backend.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Runs a script file in a fresh process (worker threads inherit execArgv, so no `-e`). */
function runScript(code: string, env: Record<string, string> = {}) {
  // Inside the project so that package imports resolve; removed afterwards.
  fs.mkdirSync(path.join(ROOT, '.cache'), { recursive: true });
  const file = path.join(fs.mkdtempSync(path.join(ROOT, '.cache', 'backend-test-')), 'script.mts');
  fs.writeFileSync(file, code.replaceAll('./src/', `${ROOT}/src/`));
  try {
    return spawnSync(process.execPath, ['--import', 'tsx', file], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

describe('backends', () => {
  it('always offers wasm; tensorflow whenever tfjs-node is installed (required in CI when it was set up)', () => {
    const list = availableBackends();
    expect(list).toContain('wasm');
    if (process.env.COGVIDEOX_EXPECT_TENSORFLOW === '1') expect(list[0]).toBe('tensorflow');
    console.log(`parity tests run on: ${list.join(', ')}`);
  });

  it('honours COGVIDEOX_BACKEND, prints the running backend, and exits by itself after shutdown (threaded wasm)', () => {
    const r = runScript(
      `import { setBackend, shutdownBackend } from './src/nn/backend.ts';
       import * as tf from '@tensorflow/tfjs-core';
       await setBackend();
       console.log('sum', tf.sum(tf.tensor1d([1, 2, 3])).dataSync()[0]);
       shutdownBackend();`,
      { COGVIDEOX_BACKEND: 'wasm' },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('sum 6');
    expect(r.stderr).toMatch(/cogvideox-fun-tfjs: backend wasm \(\d+ threads?, SIMD\)/);
  });

  it('rejects an unknown backend name clearly', () => {
    const r = runScript(`import { setBackend } from './src/nn/backend.ts'; await setBackend();`, { COGVIDEOX_BACKEND: 'webgl' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/unknown backend "webgl" \(expected tensorflow or wasm\)/);
  });
});
