// The demo VAE trainer's state on disk: parameters and AdamW moments in one safetensors file plus a JSON file
// (step, options, smoothed loss), in a folder `checkpoint-STEP` written under a temporary name and renamed into
// place, then named in `latest` (also written atomically). A run killed at any moment leaves the previous
// checkpoint intact; `--resume` continues from the one `latest` names.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, saveSafetensors, type TensorToWrite } from '../../src/weights/safetensors.js';

export interface TrainState {
  step: number;
  /** Exponential moving average of the loss (for the log). */
  lossEma: number | null;
  /** Wall seconds spent training so far, over all runs. */
  seconds: number;
  /** CPU seconds (user + system, all threads) of the training processes so far (absent in older checkpoints). */
  cpuSeconds?: number;
  options: Record<string, unknown>;
  /** The step at which AdamW's moments (and its bias correction) last started from zero: 0, or the step of a compact
   *  checkpoint the run resumed from. AdamW's own step is `step − optimizerFrom`. */
  optimizerFrom?: number;
}

/** AdamW (decoupled weight decay, torch.optim.AdamW's update with bias correction). */
export class AdamW {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  constructor(
    readonly params: Map<string, tf.Variable>,
    public lr: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
    readonly weightDecay = 1e-2,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** One update with `grads` (by parameter name); `step` counts from 1. */
  apply(grads: Map<string, tf.Tensor>, step: number): void {
    const bc1 = 1 - this.beta1 ** step;
    const bc2 = 1 - this.beta2 ** step;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const denom = tf.add(tf.sqrt(tf.div(v, bc2)), this.eps);
        const update = tf.div(tf.div(m, bc1), denom);
        p.assign(tf.sub(tf.mul(p, 1 - this.lr * this.weightDecay), tf.mul(update, this.lr)));
      });
    }
  }
}

function f32(t: tf.Tensor): TensorToWrite {
  return { dtype: 'F32', shape: t.shape, data: t.dataSync() as Float32Array };
}

/** Writes checkpoint-STEP atomically and points `latest` at it; keeps the newest `keep` checkpoints. `compact`: the
 *  parameters alone in F16 (≈ 4 MB for the demo VAE instead of 25 MB with fp32 moments: the copy kept in the
 *  repository, whose large files must stay under 5 MiB); a run resuming from it starts AdamW's moments afresh. */
export function saveCheckpoint(runDir: string, opt: AdamW, state: TrainState, keep = 2, compact = false): string {
  const name = `checkpoint-${state.step}`;
  const final = path.join(runDir, name);
  const tmp = path.join(runDir, `.${name}.${process.pid}.tmp`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const [n, p] of opt.params) {
    if (compact) {
      tensors[`param/${n}`] = { ...f32(p), dtype: 'F16' };
      continue;
    }
    tensors[`param/${n}`] = f32(p);
    tensors[`m/${n}`] = f32(opt.m.get(n)!);
    tensors[`v/${n}`] = f32(opt.v.get(n)!);
  }
  saveSafetensors(path.join(tmp, 'state.safetensors'), tensors);
  fs.writeFileSync(path.join(tmp, 'state.json'), JSON.stringify(state, null, 1));
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  const latestTmp = path.join(runDir, `.latest.${process.pid}.tmp`);
  fs.writeFileSync(latestTmp, name + '\n');
  fs.renameSync(latestTmp, path.join(runDir, 'latest'));
  // the one just written always stays (a folder may hold a higher step from an older run, e.g. a changed design);
  // the others kept are the highest steps, so with keep > 1 a stale higher step would outlive this run's previous one
  const old = fs
    .readdirSync(runDir)
    .filter((d) => /^checkpoint-\d+$/.test(d) && d !== name)
    .sort((a, b) => Number(b.slice(11)) - Number(a.slice(11)))
    .slice(keep - 1);
  for (const d of old) fs.rmSync(path.join(runDir, d), { recursive: true, force: true });
  return final;
}

/** The checkpoint `latest` names, or null when there is none. */
export function latestCheckpoint(runDir: string): string | null {
  const file = path.join(runDir, 'latest');
  if (!fs.existsSync(file)) return null;
  const dir = path.join(runDir, fs.readFileSync(file, 'utf8').trim());
  if (!fs.existsSync(path.join(dir, 'state.json'))) throw new Error(`${file} names ${dir}, which has no state.json`);
  return dir;
}

/** Loads parameters and moments from a checkpoint into `opt` (names and shapes must match) and returns its state.
 *  A compact checkpoint (parameters only) zeroes the moments and sets `optimizerFrom` to its step. */
export function loadCheckpoint(dir: string, opt: AdamW): TrainState {
  const st = SafetensorsFile.open(path.join(dir, 'state.safetensors'));
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as TrainState;
  const compact = !st.has(`m/${opt.params.keys().next().value}`);
  try {
    const put = (v: tf.Variable, key: string) => {
      if (!st.has(key)) throw new Error(`${dir}/state.safetensors: no tensor "${key}" (checkpoint of another VAE config?)`);
      const h = st.read(key);
      if (h.shape.length !== v.shape.length || h.shape.some((d, i) => d !== v.shape[i])) {
        throw new Error(`${dir}/state.safetensors: "${key}" has shape [${h.shape.join(', ')}], expected [${v.shape.join(', ')}]`);
      }
      tf.tidy(() => v.assign(tf.tensor(h.toFloat32(), v.shape, 'float32')));
    };
    for (const [n, p] of opt.params) {
      put(p, `param/${n}`);
      if (compact) {
        tf.tidy(() => (opt.m.get(n)!.assign(tf.zerosLike(p)), opt.v.get(n)!.assign(tf.zerosLike(p))));
        continue;
      }
      put(opt.m.get(n)!, `m/${n}`);
      put(opt.v.get(n)!, `v/${n}`);
    }
  } finally {
    st.close();
  }
  if (compact) state.optimizerFrom = state.step;
  return state;
}
