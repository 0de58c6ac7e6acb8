// scripts/demo/vae_state: the demo VAE trainer's AdamW and its atomic, resumable checkpoints.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamW, latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../scripts/demo/vae_state.js';
import { BACKENDS, useBackend } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-state-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
// Plain tensor bookkeeping: the first available backend is enough.
beforeAll(async () => useBackend(BACKENDS[0]!));

function makeOpt(values: number[], tag: string): AdamW {
  const params = new Map([['a.weight', tf.variable(tf.tensor1d(values), true, `${tag}/a`)]]);
  return new AdamW(params, 0.01, 0.9, 0.999, 1e-8, 0.1);
}

describe('AdamW', () => {
  it('first step: p·(1 − lr·wd) − lr·sign(g) (bias-corrected m/√v = ±1); zero gradient only decays', () => {
    const opt = makeOpt([1, -2, 3], 'first');
    opt.apply(new Map([['a.weight', tf.tensor1d([0.5, -4, 0])]]), 1);
    const p = Array.from(opt.params.get('a.weight')!.dataSync());
    expect(p[0]).toBeCloseTo(1 * (1 - 0.001) - 0.01, 6);
    expect(p[1]).toBeCloseTo(-2 * (1 - 0.001) + 0.01, 6);
    expect(p[2]).toBeCloseTo(3 * (1 - 0.001), 6);
  });

  it('second step with the same gradient moves by lr again (bias correction)', () => {
    const opt = makeOpt([0], 'second');
    const g = new Map([['a.weight', tf.tensor1d([2])]]);
    opt.apply(g, 1);
    opt.apply(g, 2);
    expect(opt.params.get('a.weight')!.dataSync()[0]).toBeCloseTo(-0.02 + 0.01 * 0.1 * 0.01, 6);
  });
});

describe('checkpoints', () => {
  it('save → latest → load restores parameters, moments and state exactly; keeps the newest two', () => {
    const run = path.join(tmp, 'run');
    fs.mkdirSync(run);
    expect(latestCheckpoint(run)).toBeNull();
    const opt = makeOpt([1, 2, 3], 'save');
    opt.apply(new Map([['a.weight', tf.tensor1d([0.3, -0.1, 0.7])]]), 1);
    for (const step of [1, 2, 3]) saveCheckpoint(run, opt, { step, lossEma: 0.5, seconds: step, options: { lr: 0.01 } });
    expect(fs.readdirSync(run).sort()).toEqual(['checkpoint-2', 'checkpoint-3', 'latest']);
    const dir = latestCheckpoint(run)!;
    expect(path.basename(dir)).toBe('checkpoint-3');
    const fresh = makeOpt([0, 0, 0], 'load');
    const state = loadCheckpoint(dir, fresh);
    expect(state).toEqual({ step: 3, lossEma: 0.5, seconds: 3, options: { lr: 0.01 } });
    for (const k of ['params', 'm', 'v'] as const) {
      const want = k === 'params' ? opt.params.get('a.weight')! : opt[k].get('a.weight')!;
      const got = k === 'params' ? fresh.params.get('a.weight')! : fresh[k].get('a.weight')!;
      expect(Array.from(got.dataSync())).toEqual(Array.from(want.dataSync()));
    }
  });

  it('keep = 1 (the copy committed to the repository) leaves only the newest checkpoint', () => {
    const run = path.join(tmp, 'run-keep1');
    const opt = makeOpt([1, 2, 3], 'keep1');
    for (const step of [4, 9]) saveCheckpoint(run, opt, { step, lossEma: null, seconds: 0, cpuSeconds: step, options: {} }, 1);
    expect(fs.readdirSync(run).sort()).toEqual(['checkpoint-9', 'latest']);
    expect(loadCheckpoint(latestCheckpoint(run)!, makeOpt([0, 0, 0], 'keep1b')).cpuSeconds).toBe(9);
  });

  it('a compact checkpoint (the repository copy) holds F16 parameters only; loading it restarts AdamW from its step', () => {
    const run = path.join(tmp, 'run-compact');
    const opt = makeOpt([1, 2.5, -3.1], 'compact');
    opt.apply(new Map([['a.weight', tf.tensor1d([0.3, -0.1, 0.7])]]), 1);
    saveCheckpoint(run, opt, { step: 7, lossEma: null, seconds: 0, options: {} }, 1, true);
    const fresh = makeOpt([0, 0, 0], 'compact-load');
    fresh.m.get('a.weight')!.assign(tf.tensor1d([9, 9, 9]));
    const state = loadCheckpoint(latestCheckpoint(run)!, fresh);
    expect(state.step).toBe(7);
    expect(state.optimizerFrom).toBe(7);
    const want = Array.from(opt.params.get('a.weight')!.dataSync());
    Array.from(fresh.params.get('a.weight')!.dataSync()).forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * 2 ** -11));
    expect(Array.from(fresh.m.get('a.weight')!.dataSync())).toEqual([0, 0, 0]);
    expect(Array.from(fresh.v.get('a.weight')!.dataSync())).toEqual([0, 0, 0]);
    const header = fs.readFileSync(path.join(latestCheckpoint(run)!, 'state.safetensors')).toString('latin1', 8, 400);
    expect(header).toMatch(/"param\/a.weight":\{"dtype":"F16"/);
    expect(header).not.toMatch(/"m\/|"v\//);
  });

  it('refuses a checkpoint of another shape, naming the tensor', () => {
    const run = path.join(tmp, 'run2');
    fs.mkdirSync(run);
    saveCheckpoint(run, makeOpt([1, 2, 3], 'other'), { step: 1, lossEma: null, seconds: 0, options: {} });
    expect(() => loadCheckpoint(latestCheckpoint(run)!, makeOpt([1, 2], 'other2'))).toThrow(/"param\/a.weight" has shape \[3\], expected \[2\]/);
  });

  it('a latest file naming a missing checkpoint is an error', () => {
    const run = path.join(tmp, 'run3');
    fs.mkdirSync(run);
    fs.writeFileSync(path.join(run, 'latest'), 'checkpoint-9\n');
    expect(() => latestCheckpoint(run)).toThrow(/no state.json/);
  });
});
