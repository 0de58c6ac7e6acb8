// Training checkpoints: `<out>/checkpoint-N/` written to a temporary folder and renamed into place, so a crash or
// Ctrl-C never leaves a half-written one. Holds what a resume needs (the scripts' accelerate save_state: optimizer
// moments, step, LR schedule position, data position, RNG position; EMA shadows) and the trained weights:
//   LoRA  → checkpoint-N.safetensors beside it (Fun/kohya keys, or diffusers keys with --lora-format diffusers), as
//           train_lora.py writes `output_dir/checkpoint-{step}.safetensors`;
//   full  → checkpoint-N/transformer/ (config.json + diffusion_pytorch_model.safetensors, diffusers layout; sharded with
//           an index above 10 GB as save_pretrained's default max_shard_size).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { saveShardedSafetensors } from '../weights/checkpoint.js';
import { saveSafetensors, SafetensorsFile, type TensorToWrite } from '../weights/safetensors.js';
import type { AdamW } from './optimizer.js';
import type { Ema } from './ema.js';

export interface TrainingPosition {
  /** completed optimizer steps (global_step) */
  step: number;
  epoch: number;
  /** index into the epoch's permutation */
  position: number;
  /** the draw source's stream position */
  rng: { normals: number; uniforms: number };
}

export interface TrainingState extends TrainingPosition {
  /** options the run was started with (a resume checks they match) */
  options: Record<string, unknown>;
}

const SHARD_BYTES = 10e9;

export function checkpointDir(out: string, step: number): string {
  return path.join(out, `checkpoint-${step}`);
}

/** The steps N of the complete checkpoint-N folders (those with a state.json: saveCheckpoint renames a finished
 *  folder into place) under `out`, ascending; [] when there are none. */
export function checkpointSteps(out: string): number[] {
  if (!fs.existsSync(out)) return [];
  return fs
    .readdirSync(out)
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && fs.existsSync(path.join(out, m[0], 'state.json')))
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** `--resume-from-checkpoint latest`: the checkpoint-N folder with the largest N, or null. */
export function latestCheckpoint(out: string): string | null {
  const steps = checkpointSteps(out);
  return steps.length ? checkpointDir(out, steps.at(-1)!) : null;
}

/**
 * `--checkpoints-total-limit N` after checkpoint-`saved` is written: the other complete checkpoints are cut to the
 * newest N − 1 (by step) and `saved` stays, whatever its step — so a run resumed from an older checkpoint keeps the
 * folders train.py (1657-1679) and train_lora.py (1581-1598) keep, which cut to N − 1 before they save. Here the cut
 * comes after the new checkpoint is complete, so a failed save never costs an older one; and it runs at the final
 * save too, which the originals' end-of-training save_state skips (train.py:1735). A checkpoint-M.safetensors (LoRA
 * file) goes with its folder; train_lora.py without --save_state lists those files among the checkpoints and crashes
 * on int("50.safetensors") at the second checkpoint. Returns the removed steps.
 */
export function pruneCheckpoints(out: string, limit: number, saved: number): number[] {
  const others = checkpointSteps(out).filter((s) => s !== saved);
  const removed = others.slice(0, Math.max(others.length - (limit - 1), 0));
  for (const s of removed) {
    fs.rmSync(path.join(out, `checkpoint-${s}.safetensors`), { force: true });
    fs.rmSync(checkpointDir(out, s), { recursive: true, force: true });
  }
  return removed;
}

/** Writes a diffusers-layout transformer folder (config + safetensors, sharded with an index above `shardBytes`). */
export function writeTransformerFolder(dir: string, config: Record<string, unknown>, tensors: [string, TensorToWrite][], shardBytes = SHARD_BYTES): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  saveShardedSafetensors(dir, 'diffusion_pytorch_model.safetensors', tensors, shardBytes);
}

/**
 * Writes checkpoint-N atomically: `fill(tmpDir)` writes the weights; state.json, optimizer.safetensors (moments) and
 * ema.safetensors are added here; then the folder is renamed into place (replacing an older one of the same step).
 */
export function saveCheckpoint(out: string, state: TrainingState, opt: AdamW, ema: Ema | null, fill: (dir: string) => void): string {
  const final = checkpointDir(out, state.step);
  const tmp = path.join(out, `.checkpoint-${state.step}.${process.pid}.tmp`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
    const moments: Record<string, TensorToWrite> = {};
    const steps: Record<string, number> = {};
    for (const [name, st] of opt.state) {
      moments[`exp_avg.${name}`] = { dtype: 'F32', shape: [st.expAvg.length], data: st.expAvg };
      moments[`exp_avg_sq.${name}`] = { dtype: 'F32', shape: [st.expAvgSq.length], data: st.expAvgSq };
      steps[name] = st.step;
    }
    saveSafetensors(path.join(tmp, 'optimizer.safetensors'), moments, { steps: JSON.stringify(steps) });
    if (ema) {
      const shadow: Record<string, TensorToWrite> = {};
      for (const [k, v] of ema.shadow) shadow[k] = { dtype: 'F32', shape: [v.length], data: v };
      saveSafetensors(path.join(tmp, 'ema.safetensors'), shadow, { optimization_step: String(ema.optimizationStep) });
    }
    fs.writeFileSync(path.join(tmp, 'state.json'), JSON.stringify(state, null, 2));
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(tmp, final);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return final;
}

/** Reads a checkpoint's state and restores the optimizer moments / EMA shadows in place. */
export function loadCheckpoint(dir: string, opt: AdamW, ema: Ema | null): TrainingState {
  const statePath = path.join(dir, 'state.json');
  if (!fs.existsSync(statePath)) throw new Error(`--resume-from-checkpoint ${dir}: no state.json (not a training checkpoint)`);
  const state = JSON.parse(fs.readFileSync(statePath, 'utf8')) as TrainingState;
  const f = SafetensorsFile.open(path.join(dir, 'optimizer.safetensors'));
  try {
    const steps = JSON.parse(f.metadata.steps ?? '{}') as Record<string, number>;
    for (const [name, step] of Object.entries(steps)) {
      opt.state.set(name, { step, expAvg: f.read(`exp_avg.${name}`).toFloat32().slice(), expAvgSq: f.read(`exp_avg_sq.${name}`).toFloat32().slice() });
    }
  } finally {
    f.close();
  }
  if (ema) {
    const e = SafetensorsFile.open(path.join(dir, 'ema.safetensors'));
    try {
      for (const k of ema.shadow.keys()) ema.shadow.set(k, e.read(k).toFloat32().slice());
      ema.optimizationStep = Number(e.metadata.optimization_step ?? 0);
    } finally {
      e.close();
    }
  }
  return state;
}
