// AdamW, the LR schedules, the adaptive and plain gradient clips and the EMA against torch.optim.AdamW, diffusers'
// get_scheduler / EMAModel and train.py's clip block, 3 steps on synthetic tensors (fixtures: reference/gen_training.py,
// test/fixtures/training/optim.safetensors).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { adaptiveMaxNorm, clipGradNorm, linearDecay } from '../src/training/clip.js';
import { Ema } from '../src/training/ema.js';
import { checkLrSchedule, groupLrs, LR_SCHEDULERS, lrFactor, type LrSchedulerName } from '../src/training/lr_schedule.js';
import { AdamW } from '../src/training/optimizer.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { FIXTURES } from './helpers.js';

const f = SafetensorsFile.open(path.join(FIXTURES, 'training', 'optim.safetensors'));
const meta = JSON.parse(f.metadata.meta!);
const t = (k: string) => f.read(k).toFloat32();

/** Relative closeness of float32 arrays: max |a − b| / max(|b|, floor). */
function maxRel(a: Float32Array, b: Float32Array, floor = 1e-30): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor));
  return worst;
}

/** The spec's parameter tolerance: |Δp_ours − Δp_ref| ≤ 1e-5·lr + 1e-5·|Δp_ref| elementwise. */
function updateOk(ours: Float32Array, ref: Float32Array, before: Float32Array, lr: number): boolean {
  for (let i = 0; i < ref.length; i++) {
    const dRef = ref[i]! - before[i]!;
    const dOurs = ours[i]! - before[i]!;
    if (Math.abs(dOurs - dRef) > 1e-5 * lr + 1e-5 * Math.abs(dRef)) return false;
  }
  return true;
}

describe('optimiser pieces vs torch / diffusers / train.py', () => {
  const runs: [number, string, string, string][] = meta.runs.map((r: any, i: number) => [
    i,
    r.lr_scheduler,
    r.adaptive_clip ? 'adaptive' : 'plain',
    r.use_ema ? 'EMA' : 'no EMA',
  ]);
  it.each(runs)(
    'run %i (%s, %s clip, %s): 3 steps',
    (run) => {
      const r = meta.runs[run];
      const names = (r.groups as string[][]).flat();
      const all = [...names, ...r.frozen];
      const params = new Map<string, Float32Array>(all.map((k: string) => [k, t(`run${run}.init.${k}`)]));
      const groups = (r.groups as string[][]).map((n, gi) => ({ names: n, lr: r.learning_rate * r.group_lr_ratio[gi] }));
      const opt = new AdamW(groups, { beta1: r.betas[0], beta2: r.betas[1], eps: r.adam_epsilon, weightDecay: r.adam_weight_decay });
      const ema = r.use_ema ? new Ema(params) : null;
      for (let step = 0; step < 3; step++) {
        const rec = r.steps[step];
        const grads = new Map<string, Float32Array>(names.map((k) => [k, t(`run${run}.step${step}.grad.${k}`)]));
        const before = new Map([...params].map(([k, v]) => [k, v.slice()]));
        let maxNorm = r.max_grad_norm;
        if (r.adaptive_clip) {
          const total = [...grads.values()].reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0);
          const a = adaptiveMaxNorm(Math.fround(Math.sqrt(total)), step, {
            maxGradNorm: r.max_grad_norm,
            initialGradNormRatio: r.initial_grad_norm_ratio,
            abnormalNormClipStart: r.abnormal_norm_clip_start,
          });
          expect(a.threshold).toBeCloseTo(rec.mgn, 12);
          expect(Math.abs(a.actual - rec.actual)).toBeLessThanOrEqual(1e-7 * rec.actual);
          maxNorm = a.actual;
        }
        const { total } = clipGradNorm(grads, maxNorm);
        expect(Math.abs(total - rec.clip_total)).toBeLessThanOrEqual(1e-6 * rec.clip_total);
        const lrs = groupLrs({ name: r.lr_scheduler as LrSchedulerName, warmupSteps: r.lr_warmup_steps, trainingSteps: r.steps.length, baseLr: r.learning_rate }, step, groups.map((g) => g.lr));
        lrs.forEach((lr, i) => expect(lr).toBeCloseTo(rec.lr[i], 15));
        opt.step(params, grads, lrs);
        if (ema) {
          ema.step(params, (k) => names.includes(k));
          expect(ema.curDecay).toBeCloseTo(rec.ema_decay, 15);
        }
        for (const k of all) {
          const pre = `run${run}.step${step}`;
          expect(updateOk(params.get(k)!, t(`${pre}.param.${k}`), before.get(k)!, Math.max(...lrs, 1e-30)), `${pre} param ${k}`).toBe(true);
          if (names.includes(k)) {
            expect(maxRel(opt.state.get(k)!.expAvg, t(`${pre}.exp_avg.${k}`), 1e-12), `${pre} exp_avg ${k}`).toBeLessThan(1e-5);
            expect(maxRel(opt.state.get(k)!.expAvgSq, t(`${pre}.exp_avg_sq.${k}`), 1e-20), `${pre} exp_avg_sq ${k}`).toBeLessThan(1e-5);
          } else {
            expect(opt.state.has(k)).toBe(false);
            expect(Array.from(params.get(k)!)).toEqual(Array.from(t(`${pre}.param.${k}`)));
          }
          if (ema) expect(maxRel(ema.shadow.get(k)!, t(`${pre}.ema.${k}`), 1e-6), `${pre} ema ${k}`).toBeLessThan(1e-5);
        }
      }
    },
  );

  it('lr tables (constant, constant_with_warmup W = 3 and 0) equal get_scheduler', () => {
    for (const [key, want] of Object.entries(meta.lr_tables as Record<string, number[]>)) {
      const [name, w] = key.split(':') as [LrSchedulerName, string];
      expect(want.map((_, s) => lrFactor({ name, warmupSteps: Number(w), trainingSteps: 10, baseLr: 1 }, s)), key).toEqual(want);
    }
    expect(() => lrFactor({ name: 'piecewise_constant' as LrSchedulerName, warmupSteps: 3, trainingSteps: 10, baseLr: 1 }, 0)).toThrow(/--lr-scheduler piecewise_constant/);
  });

  // test/fixtures/training/lr_schedules.json (reference/gen_lr_schedules.py): the lr before each optimizer step, for
  // every --lr_scheduler train.py offers, get_scheduler called as train.py:1206-1211 calls it
  it('every train.py scheduler (linear, cosine, cosine_with_restarts, polynomial, constant*) equals get_scheduler', () => {
    const fx = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'training', 'lr_schedules.json'), 'utf8')) as {
      tables: { name: LrSchedulerName; warmup: number; training_steps: number; lr: number; lrs: number[] }[];
    };
    expect(new Set(fx.tables.map((t) => t.name))).toEqual(new Set(LR_SCHEDULERS));
    let worst = 0;
    for (const t of fx.tables) {
      const sched = { name: t.name, warmupSteps: t.warmup, trainingSteps: t.training_steps, baseLr: t.lr };
      checkLrSchedule(sched);
      t.lrs.forEach((want, s) => {
        const got = groupLrs(sched, s, [t.lr])[0]!;
        // double arithmetic in the same order; cos may differ from Python's by an ulp
        const err = Math.abs(got - want);
        worst = Math.max(worst, err);
        expect(err, `${t.name} W=${t.warmup} T=${t.training_steps} lr=${t.lr} step ${s}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-15 * t.lr);
      });
    }
    expect(worst).toBeLessThan(1e-18);
    expect(() => checkLrSchedule({ name: 'polynomial', warmupSteps: 0, trainingSteps: 10, baseLr: 1e-7 })).toThrow(/--learning-rate must be larger, got 1e-7/);
  });

  it('EMA decay table equals EMAModel.get_decay', () => {
    const e = new Ema(new Map());
    const n = [...Array.from({ length: 20 }, (_, i) => i + 1), 89990, 89991, 1e6];
    expect(n.map((x) => e.getDecay(x))).toEqual(meta.ema_decay_table);
  });

  it('linear_decay and the abnormal-norm branch', () => {
    expect(linearDecay(0.25, 0.05, 1000, 0)).toBe(0.25);
    expect(linearDecay(0.25, 0.05, 1000, 1000)).toBe(0.05);
    const o = { maxGradNorm: 0.05, initialGradNormRatio: 5, abnormalNormClipStart: 1000 };
    expect(adaptiveMaxNorm(1.0, 1001, o).actual).toBeCloseTo(0.005, 12);
    expect(adaptiveMaxNorm(0.3, 1001, o).actual).toBeCloseTo(Math.fround(0.05 / Math.fround(0.3 / 0.05)), 9);
    expect(adaptiveMaxNorm(0.2, 1001, o).actual).toBe(0.05);
  });
});
