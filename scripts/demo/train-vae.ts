// Trains the demo model's 3D causal VAE (CogVideoX's AutoencoderKLCogVideoX) on demo-world clips.
// Objective: loss = rec + klWeight · 0.5·mean(μ² + σ² − 1 − log σ²), pixels in [−1, 1]. rec = --loss l1 (|x − x̂|,
// default), mse or l1+mse, averaged with per-pixel weights w = 1 + λ·[pixel differs from the clip's background colour]
// (--object-weight λ; Σ w·e / Σ w): a flat shape on a solid background is a few % of the pixels, and an unweighted
// loss from scratch settles on background-only reconstructions (README). x̂ is decoded from the posterior mean while
// step < --mean-steps (deterministic warm-up: at initialisation σ ≈ 1 drowns the small μ, so the decoder learns to
// ignore z), from a posterior sample after. The demo run uses l1+mse, λ = 10, KL 1e-6, mean decoding for the first
// 3000 steps (README, stage 2); from step 5913 also --edge-weight (μ more on the object's outline) and a cosine decay
// of the learning rate (--lr-final, --decay-from). AdamW (decoupled weight decay).
//   npx tsx scripts/demo/train-vae.ts --model DIR --data WORLD --out RUN [--resume] [--resume-from DIR] [--persist DIR]
//       [--steps N] [--batch 4] [--frames 9] [--crop 32x32] [--lr 5e-4] [--kl-weight 1e-3] [--loss l1|mse|l1+mse]
//       [--object-weight 0] [--mean-steps 0] [--object-crops 0.8] [--weight-decay 1e-2] [--save-minutes 5]
//       [--max-minutes M] [--seed 0] [--backend tensorflow|wasm] [--freeze-encoder] [--image-every K --image-batch 8]
//       [--max-grad-norm 0] [--edge-weight 0] [--lr-final LR --decay-from STEP]
//   npx tsx scripts/demo/train-vae.ts --model DIR --data WORLD --out RUN --export DEST [--bf16] [--keep-scaling-factor]
//   npx tsx scripts/demo/train-vae.ts --model DIR --data WORLD --out RUN --eval N     (reconstruction PSNR, analyzer)
// DIR holds the initial vae/ (scripts/demo/init_model.py); WORLD is a make-world folder (its world.json: clips are
// rendered from their specs, the frames the MP4s hold before H.264). Batches are drawn from (seed, step), so a resumed
// run sees the batches it would have seen (the step is the whole data/RNG position). RUN gets checkpoint-N folders
// (atomic), `latest`, and log.jsonl (one line per step). --resume continues from `latest` (options may change
// between runs, e.g. larger crops later). When RUN has no checkpoint, --resume-from DIR (a run folder with `latest`,
// or one checkpoint folder) supplies the starting state. --persist DIR also writes every checkpoint into DIR keeping
// only the newest: the copy committed to the repository (train-state/demo-vae), since the machine keeps nothing else
// between sessions. --object-crops is the share of crops centred near the object.
// --image-every K makes every K-th step a batch of --image-batch single frames (mixed image / clip training).
// --freeze-encoder trains the decoder alone (the encoder, its latents and the exported scaling_factor stay fixed), so
// the transformer can be trained on the encoder's latents while the decoder goes on improving (on one machine: a
// fresh one resumes from the F16 copy in the repository, which rounds the encoder's weights once).
// --export writes DEST/config.json + diffusion_pytorch_model.safetensors from `latest`, with scaling_factor set to
// 1 / std of posterior samples over 32 world clips (the convention of the released VAEs); --keep-scaling-factor keeps
// DIR's instead (a decoder trained with --freeze-encoder under a transformer already trained on DIR's scaled latents).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { BACKGROUND_RGB, END_FRAMES_MIN_DB, FRAME0_MIN_DB, Rng, analyzeVideo, centerAt, psnr, renderClip, type ClipSpec } from '../../src/data/index.js';
import { AutoencoderKLCogVideoX } from '../../src/models/vae.js';
import { setBackend } from '../../src/nn/backend.js';
import { writePng } from '../../src/media/index.js';
import { saveSafetensors, type TensorToWrite } from '../../src/weights/safetensors.js';
import { AdamW, latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainState } from './vae_state.js';
import { lrAt, objectWeights, trainStep, type RecLoss } from './vae_step.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'boolean', default: false },
    steps: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '4' },
    frames: { type: 'string', default: '9' },
    crop: { type: 'string', default: '32x32' },
    lr: { type: 'string', default: '5e-4' },
    'kl-weight': { type: 'string', default: '1e-3' },
    loss: { type: 'string', default: 'l1' },
    'object-weight': { type: 'string', default: '0' },
    'edge-weight': { type: 'string', default: '0' },
    'lr-final': { type: 'string' },
    'decay-from': { type: 'string' },
    'mean-steps': { type: 'string', default: '0' },
    'object-crops': { type: 'string', default: '0.8' },
    'resume-from': { type: 'string' },
    persist: { type: 'string' },
    'weight-decay': { type: 'string', default: '1e-2' },
    'max-grad-norm': { type: 'string', default: '0' },
    'save-minutes': { type: 'string', default: '5' },
    'max-minutes': { type: 'string' },
    seed: { type: 'string', default: '0' },
    backend: { type: 'string' },
    export: { type: 'string' },
    eval: { type: 'string' },
    bf16: { type: 'boolean', default: false },
    strip: { type: 'string' },
    'freeze-encoder': { type: 'boolean', default: false },
    'keep-scaling-factor': { type: 'boolean', default: false },
    'image-every': { type: 'string', default: '0' },
    'image-batch': { type: 'string', default: '8' },
  },
});

function need(name: 'model' | 'data' | 'out'): string {
  const v = a[name];
  if (!v) throw new Error(`--${name} is required`);
  return v;
}
function num(name: string, v: string | undefined, check: (n: number) => boolean, what: string): number {
  const n = Number(v);
  if (!check(n)) throw new Error(`--${name} must be ${what}, got '${v}'`);
  return n;
}
const posInt = (name: string, v: string | undefined) => num(name, v, (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
const nonNeg = (name: string, v: string | undefined) => num(name, v, (n) => Number.isFinite(n) && n >= 0, 'a number ≥ 0');

interface Options {
  steps: number;
  batch: number;
  frames: number;
  cropH: number;
  cropW: number;
  lr: number;
  klWeight: number;
  recLoss: RecLoss;
  /** λ of the object weighting (0: plain mean). */
  objectWeight: number;
  /** μ added on the object's outline, both sides (0: none). */
  edgeWeight?: number;
  /** Cosine decay of the learning rate from `lr` at step `decayFrom` to `lrFinal` at step `steps` (none if unset). */
  lrFinal?: number;
  decayFrom?: number;
  /** Decode the posterior mean (not a sample) while step < meanSteps. */
  meanSteps: number;
  /** Share of crops centred near the object. */
  objectCrops: number;
  weightDecay: number;
  /** Global gradient-norm clip (0: none). */
  maxGradNorm?: number;
  seed: number;
  /** Decoder-only training (the encoder, hence the latents, fixed). */
  freezeEncoder?: boolean;
  /** Every imageEvery-th step (0: never) is a batch of imageBatch single frames instead of clips. */
  imageEvery?: number;
  imageBatch?: number;
}

function readOptions(): Options {
  const frames = posInt('frames', a.frames);
  if ((frames - 1) % 4 !== 0) throw new Error(`--frames must be 1 or 4k + 1 (the VAE compresses time 4×), got ${frames}`);
  const m = /^(\d+)x(\d+)$/.exec(a.crop!);
  if (!m) throw new Error(`--crop must be HxW (e.g. 32x32), got '${a.crop}'`);
  const [cropH, cropW] = [Number(m[1]), Number(m[2])];
  if (cropH % 8 !== 0 || cropW % 8 !== 0 || cropH < 8 || cropW < 8) throw new Error(`--crop sides must be positive multiples of 8, got ${a.crop}`);
  return {
    steps: posInt('steps', a.steps),
    batch: posInt('batch', a.batch),
    frames,
    cropH,
    cropW,
    lr: num('lr', a.lr, (n) => n > 0 && n < 1, 'in (0, 1)'),
    klWeight: nonNeg('kl-weight', a['kl-weight']),
    recLoss: ((v) => {
      if (v !== 'l1' && v !== 'mse' && v !== 'l1+mse') throw new Error(`--loss must be l1, mse or l1+mse, got '${v}'`);
      return v;
    })(a.loss),
    objectWeight: nonNeg('object-weight', a['object-weight']),
    edgeWeight: nonNeg('edge-weight', a['edge-weight']),
    ...lrDecay(),
    meanSteps: nonNeg('mean-steps', a['mean-steps']),
    objectCrops: num('object-crops', a['object-crops'], (n) => n >= 0 && n <= 1, 'in [0, 1]'),
    weightDecay: nonNeg('weight-decay', a['weight-decay']),
    maxGradNorm: nonNeg('max-grad-norm', a['max-grad-norm']),
    seed: num('seed', a.seed, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer'),
    freezeEncoder: a['freeze-encoder'],
    imageEvery: nonNeg('image-every', a['image-every']),
    imageBatch: posInt('image-batch', a['image-batch']),
  };
}

function lrDecay(): { lrFinal?: number; decayFrom?: number } {
  if ((a['lr-final'] === undefined) !== (a['decay-from'] === undefined)) throw new Error('--lr-final and --decay-from go together');
  if (a['lr-final'] === undefined) return {};
  return { lrFinal: num('lr-final', a['lr-final'], (n) => n > 0 && n < 1, 'in (0, 1)'), decayFrom: nonNeg('decay-from', a['decay-from']) };
}

function loadWorld(dir: string): ClipSpec[] {
  const file = path.join(dir, 'world.json');
  if (!fs.existsSync(file)) throw new Error(`--data ${dir}: no world.json (make one with scripts/demo/make-world.ts)`);
  const world = JSON.parse(fs.readFileSync(file, 'utf8')) as { clips: { type: string; spec: ClipSpec }[] };
  const specs = world.clips.filter((c) => c.type === 'video').map((c) => c.spec);
  if (specs.length === 0) throw new Error(`${file}: no video clips`);
  return specs;
}

/** [−1, 1] value of a uint8 pixel, rounded to float32 as the batch stores it (so equality tests are exact). */
const unit = (v: number) => Math.fround(v / 127.5 - 1);

/**
 * Batch `step`: clips, a window of `frames` frames and a crop, all drawn from (seed, step). Pixels in [−1, 1];
 * `weights` [B, 1, F, H, W] (objectWeights against each clip's background) when o.objectWeight > 0.
 */
function batchFor(specs: ClipSpec[], opts: Options, step: number): { x: tf.Tensor5D; weights?: tf.Tensor5D } {
  const rng = new Rng((Math.imul(opts.seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca77)) >>> 0);
  // an image step: single frames (the causal VAE encodes frame 0 alone), many per batch — colours and shapes are
  // spatial, and a 1-frame sample costs a fifth of a 5-frame clip
  const image = !!opts.imageEvery && step % opts.imageEvery === opts.imageEvery - 1;
  const o = image ? { ...opts, frames: 1, batch: opts.imageBatch ?? 8 } : opts;
  const { cropH: H, cropW: W, frames: F } = o;
  const data = new Float32Array(o.batch * 3 * F * H * W);
  const bgs: number[][] = [];
  for (let b = 0; b < o.batch; b++) {
    const spec = specs[rng.int(specs.length)]!;
    bgs.push(BACKGROUND_RGB[spec.background].map(unit));
    if (spec.frames < F || spec.height < H || spec.width < W) {
      throw new Error(`world clip ${spec.width}x${spec.height}x${spec.frames} is smaller than the batch's ${W}x${H}x${F}`);
    }
    const clip = renderClip(spec);
    const t0 = rng.int(spec.frames - F + 1);
    // Most crops are centred near the object (jittered): a crop of bare background teaches little.
    let y0 = rng.int(spec.height - H + 1);
    let x0 = rng.int(spec.width - W + 1);
    if (rng.next() < (o.objectCrops ?? 0.8)) {
      const [cx, cy] = centerAt(spec, t0 + (F - 1) / 2);
      const clamp = (v: number, hi: number) => Math.max(0, Math.min(hi, Math.round(v)));
      x0 = clamp(cx - W / 2 + rng.uniform(-W / 4, W / 4), spec.width - W);
      y0 = clamp(cy - H / 2 + rng.uniform(-H / 4, H / 4), spec.height - H);
    }
    for (let t = 0; t < F; t++) {
      const f = clip[t0 + t]!;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const p = 3 * ((y0 + y) * spec.width + x0 + x);
          for (let c = 0; c < 3; c++) data[(((b * 3 + c) * F + t) * H + y) * W + x] = f[p + c]! / 127.5 - 1;
        }
      }
    }
  }
  const shape = [o.batch, 3, F, H, W] as const;
  const x = tf.tensor5d(data, [...shape]);
  if (!(o.objectWeight > 0)) return { x };
  return { x, weights: tf.tensor5d(objectWeights(data, shape, bgs, o.objectWeight, o.edgeWeight ?? 0), [o.batch, 1, F, H, W]) };
}

const rssGiB = () => process.memoryUsage().rss / 2 ** 30;
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/**
 * Reconstruction quality on the last `n` world clips (whole frames, the first 4k+1, posterior mean): mean PSNR over
 * whole frames, of frame 0 alone (what image to video keeps), of the last frame alone (start + end's end image: the
 * fourth of the frames its latent frame holds, so the decoder bounds what a generated one can reach) and over the
 * object's pixels (those differing from the background in the clip: the part a VAE that drops the object gets
 * wrong), and how often the analyzer reads the same colour, shape, direction and background from the
 * reconstruction as from the clip — what the demo model's quality bar needs from its VAE.
 */
async function evaluate(vae: AutoencoderKLCogVideoX, params: Map<string, tf.Variable>, specs: ClipSpec[], n: number, stripFile?: string): Promise<void> {
  const lookup = (k: string) => params.get(k);
  let psnrSum = 0;
  let firstSum = 0;
  let lastSum = 0;
  let firstOk = 0;
  let lastOk = 0;
  let objSum = 0;
  let same = 0;
  const attrs = { color: 0, shape: 0, direction: 0, background: 0, found: 0 };
  // shape confusion: what the analyzer reads on the clip → on its reconstruction, with the fill ratios behind it
  const confusion = new Map<string, { n: number; fillWant: number; fillGot: number }>();
  const picked = specs.slice(-n);
  const rows: { spec: ClipSpec; frames: Uint8Array[] }[] = [];
  for (const spec of picked) {
    const F = Math.floor((spec.frames - 1) / 4) * 4 + 1;
    const frames = renderClip(spec).slice(0, F);
    const recon = tf.tidy(() => {
      const { x } = batchFor([spec], { batch: 1, frames: F, cropH: spec.height, cropW: spec.width, seed: 0, objectWeight: 0 } as Options, 0);
      const post = vae.encode(x, { params: lookup });
      const y = vae.decode(post.mode(), { params: lookup });
      post.dispose();
      // [1, 3, F, H, W] in [−1, 1] → F frames RGB HWC uint8
      return tf.cast(tf.clipByValue(tf.round(tf.mul(tf.add(tf.transpose(tf.squeeze(y, [0]), [1, 2, 3, 0]), 1), 127.5)), 0, 255), 'int32');
    });
    const data = recon.dataSync();
    recon.dispose();
    const size = spec.width * spec.height * 3;
    const out = frames.map((_, t) => Uint8Array.from(data.subarray(t * size, (t + 1) * size)));
    psnrSum += frames.reduce((acc, f, t) => acc + Math.min(psnr(f, out[t]!), 60), 0) / F;
    const first = Math.min(psnr(frames[0]!, out[0]!), 60); // what image to video keeps
    const last = Math.min(psnr(frames[F - 1]!, out[F - 1]!), 60); // start + end's end image
    firstSum += first;
    lastSum += last;
    if (first >= FRAME0_MIN_DB) firstOk++;
    if (last >= END_FRAMES_MIN_DB) lastOk++;
    objSum += Math.min(objectPsnr(frames, out, BACKGROUND_RGB[spec.background]), 60);
    const want = analyzeVideo({ frames, width: spec.width, height: spec.height });
    const got = analyzeVideo({ frames: out, width: spec.width, height: spec.height });
    if (stripFile && rows.length < 16) rows.push({ spec, frames }, { spec, frames: out });
    for (const k of ['color', 'shape', 'direction', 'background'] as const) if (want[k] === got[k]) attrs[k]++;
    const key = `${want.shape} → ${got.shape}`;
    const c = confusion.get(key) ?? { n: 0, fillWant: 0, fillGot: 0 };
    confusion.set(key, { n: c.n + 1, fillWant: c.fillWant + (want.fillRatio ?? 0), fillGot: c.fillGot + (got.fillRatio ?? 0) });
    if (got.color !== null) attrs.found++;
    if (want.color === got.color && want.shape === got.shape && want.direction === got.direction && want.background === got.background) same++;
  }
  if (stripFile) await writePng(stripOf(rows), stripFile);
  const m = picked.length;
  console.log(
    `eval over ${m} clips: mean PSNR ${(psnrSum / m).toFixed(2)} dB, frame 0 ${(firstSum / m).toFixed(2)} dB (≥ ${FRAME0_MIN_DB} on ${firstOk}), last frame ${(lastSum / m).toFixed(2)} dB (≥ ${END_FRAMES_MIN_DB} on ${lastOk}), object region ${(objSum / m).toFixed(2)} dB; analyzer agrees on ${same}/${m} ` +
      `(object found ${attrs.found}, colour ${attrs.color}, shape ${attrs.shape}, direction ${attrs.direction}, background ${attrs.background})`,
  );
  for (const [k, c] of [...confusion].sort()) {
    console.log(`  shape ${k}: ${c.n} clips, mean fill ratio ${(c.fillWant / c.n).toFixed(3)} → ${(c.fillGot / c.n).toFixed(3)}`);
  }
}

/** --strip: one row per clip (frames 0, 4, 8, …), each clip's reconstruction under it. */
function stripOf(rows: { spec: ClipSpec; frames: Uint8Array[] }[]): { width: number; height: number; channels: 3; data: Uint8Array } {
  const { width: w, height: h } = rows[0]!.spec;
  const cols = Math.ceil(rows[0]!.frames.length / 4);
  const W = cols * (w + 2);
  const data = new Uint8Array(W * rows.length * (h + 2) * 3).fill(128);
  rows.forEach((r, i) => {
    for (let c = 0; c < cols; c++) {
      const f = r.frames[c * 4]!;
      for (let y = 0; y < h; y++) data.set(f.subarray(y * w * 3, (y + 1) * w * 3), ((i * (h + 2) + y) * W + c * (w + 2)) * 3);
    }
  });
  return { width: W, height: rows.length * (h + 2), channels: 3, data };
}

/** PSNR over the pixels (all three channels) where the clip differs from its background colour. */
function objectPsnr(frames: Uint8Array[], out: Uint8Array[], bg: readonly number[]): number {
  let se = 0;
  let count = 0;
  frames.forEach((f, t) => {
    const o = out[t]!;
    for (let p = 0; p < f.length; p += 3) {
      if (f[p] === bg[0] && f[p + 1] === bg[1] && f[p + 2] === bg[2]) continue;
      for (let c = 0; c < 3; c++) se += (f[p + c]! - o[p + c]!) ** 2;
      count += 3;
    }
  });
  if (count === 0) return 60;
  const mse = se / count;
  return mse === 0 ? 60 : 10 * Math.log10((255 * 255) / mse);
}

async function exportVae(vae: AutoencoderKLCogVideoX, params: Map<string, tf.Variable>, specs: ClipSpec[], modelDir: string, dest: string): Promise<void> {
  // scaling_factor = 1 / std of posterior samples of 32 whole world clips (frames 4k+1 ≤ clip length)
  const n = Math.min(32, specs.length);
  const F = Math.floor((specs[0]!.frames - 1) / 4) * 4 + 1;
  let s = 0, s2 = 0, count = 0;
  for (let i = 0; i < n; i++) {
    const spec = specs[i]!;
    tf.tidy(() => {
      const { x } = batchFor([spec], { batch: 1, frames: F, cropH: spec.height, cropW: spec.width, seed: i, objectWeight: 0 } as Options, 0);
      const post = vae.encode(x, { params: (k) => params.get(k) });
      const z = post.sample({ seed: i });
      const v = z.dataSync();
      for (const e of v) {
        s += e;
        s2 += e * e;
      }
      count += v.length;
      post.dispose();
    });
  }
  const std = Math.sqrt(s2 / count - (s / count) ** 2);
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'vae', 'config.json'), 'utf8')) as Record<string, unknown>;
  if (!a['keep-scaling-factor']) config.scaling_factor = Number((1 / std).toPrecision(8));
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, p] of params) tensors[name] = { dtype: a.bf16 ? 'BF16' : 'F32', shape: p.shape, data: p.dataSync() as Float32Array };
  fs.mkdirSync(dest, { recursive: true });
  saveSafetensors(path.join(dest, 'diffusion_pytorch_model.safetensors'), tensors);
  const tmp = path.join(dest, `.config.json.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n');
  fs.renameSync(tmp, path.join(dest, 'config.json'));
  const kept = a['keep-scaling-factor'] ? ` (kept from ${modelDir}/vae)` : '';
  console.log(`exported ${dest}: latent std ${std.toFixed(4)} over ${n} clips; scaling_factor ${String(config.scaling_factor)}${kept}`);
}

async function main(): Promise<void> {
  const modelDir = need('model');
  const runDir = need('out');
  const specs = loadWorld(need('data'));
  const o = readOptions();
  if (a.strip && !a.eval) throw new Error('--strip FILE goes with --eval N (it draws the evaluated clips)');
  if (a['keep-scaling-factor'] && !a.export) throw new Error('--keep-scaling-factor goes with --export DEST');
  const saveMs = nonNeg('save-minutes', a['save-minutes']) * 60_000;
  const maxMs = a['max-minutes'] !== undefined ? nonNeg('max-minutes', a['max-minutes']) * 60_000 : Infinity;
  if (!fs.existsSync(path.join(modelDir, 'vae', 'config.json'))) throw new Error(`--model ${modelDir}: no vae/config.json`);
  fs.mkdirSync(runDir, { recursive: true });
  let latest = latestCheckpoint(runDir);
  if (latest && !a.resume && !a.export && !a.eval) throw new Error(`${runDir} already has ${path.basename(latest)}; pass --resume to continue it or choose another --out`);
  if (!latest && a['resume-from']) {
    // A fresh machine: the run folder is empty, the state committed in the repository (--persist) carries on.
    const from = a['resume-from'];
    latest = fs.existsSync(path.join(from, 'latest')) ? latestCheckpoint(from) : from;
    if (!latest || !fs.existsSync(path.join(latest, 'state.json'))) throw new Error(`--resume-from ${from}: neither a run folder with \`latest\` nor a checkpoint folder (no state.json)`);
  }
  if (a.resume && !latest) console.warn(`--resume: no checkpoint in ${runDir} yet, starting from ${modelDir}/vae`);
  const persist = a.persist;

  const backend = await setBackend(a.backend, { quiet: true });
  const vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(modelDir, 'vae'), { weights: 'resident' });
  vae.disableTiling();
  const params = new Map<string, tf.Variable>();
  for (const name of vae.parameterNames()) params.set(name, tf.variable(vae.readParameter(name), true, `vae/${name}`));
  const opt = new AdamW(params, o.lr, 0.9, 0.999, 1e-8, o.weightDecay);
  let state: TrainState = { step: 0, lossEma: null, seconds: 0, cpuSeconds: 0, options: { ...o } };
  if (latest) {
    state = loadCheckpoint(latest, opt);
    console.log(`resumed ${latest} at step ${state.step}`);
  }
  if (a.eval) {
    await evaluate(vae, params, specs, posInt('eval', a.eval), a.strip);
    return;
  }
  if (a.export) {
    await exportVae(vae, params, specs, modelDir, a.export);
    return;
  }
  state.options = { ...o };
  const nParams = [...params.values()].reduce((s, p) => s + p.size, 0);
  const lrText = o.lrFinal !== undefined ? `lr ${o.lr} → ${o.lrFinal} (cosine, steps ${o.decayFrom}–${o.steps})` : `lr ${o.lr}`;
  console.log(`VAE ${nParams} parameters; batch ${o.batch}×3×${o.frames}×${o.cropH}×${o.cropW}; ${lrText}; ${o.recLoss} + ${o.klWeight}·KL (object ×${1 + o.objectWeight}, outline +${o.edgeWeight ?? 0}); ${backend}; ${os.cpus()[0]?.model ?? '?'}`);
  const logFile = path.join(runDir, 'log.jsonl');
  if (fs.existsSync(logFile)) {
    // Steps after the checkpoint were lost with the process that made them: drop their lines (rewritten atomically).
    const kept = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l && (JSON.parse(l) as { step: number }).step <= state.step);
    fs.writeFileSync(`${logFile}.tmp`, kept.map((l) => l + '\n').join(''));
    fs.renameSync(`${logFile}.tmp`, logFile);
  }
  const log = fs.openSync(logFile, 'a');
  let stop = false;
  const onSignal = () => {
    console.log('\nsignal: saving a checkpoint and stopping');
    stop = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const t0 = Date.now();
  let lastSave = Date.now();
  state.cpuSeconds ??= 0;
  let cpuMark = process.cpuUsage();
  const save = () => {
    const c = process.cpuUsage(cpuMark);
    cpuMark = process.cpuUsage();
    state.cpuSeconds = (state.cpuSeconds ?? 0) + (c.user + c.system) / 1e6;
    saveCheckpoint(runDir, opt, state);
    // The copy in the repository keeps only the newest checkpoint (≈ 25 MB: parameters and both AdamW moments, fp32).
    if (persist) saveCheckpoint(persist, opt, state, 1, true);
  };
  while (state.step < o.steps && !stop && Date.now() - t0 < maxMs) {
    await new Promise<void>((resolve) => setImmediate(resolve)); // lets a SIGINT / SIGTERM handler run between steps
    if (stop) break;
    const ts = Date.now();
    const { x, weights } = batchFor(specs, o, state.step);
    opt.lr = lrAt(o, state.step);
    const r = trainStep(vae, opt, x, o.klWeight, o.seed * 1_000_003 + state.step, state.step + 1 - (state.optimizerFrom ?? 0), o.recLoss, { weights, decodeMean: state.step < o.meanSteps, freezeEncoder: o.freezeEncoder, maxGradNorm: o.maxGradNorm });
    const { loss: total, rec, kl, gradNorm } = r;
    tf.dispose([x, ...(weights ? [weights] : [])]);
    state.step++;
    const dt = (Date.now() - ts) / 1000;
    state.seconds += dt;
    state.lossEma = state.lossEma === null ? total : 0.98 * state.lossEma + 0.02 * total;
    const entry = { step: state.step, loss: total, rec, kl, gradNorm, lr: opt.lr, decodeMean: state.step <= o.meanSteps, sPerStep: dt, rssGiB: +rssGiB().toFixed(2), load: loadavg(), time: new Date().toISOString() };
    fs.writeSync(log, JSON.stringify(entry) + '\n');
    process.stdout.write(`\rstep ${state.step}/${o.steps} loss ${total.toFixed(4)} (ema ${state.lossEma.toFixed(4)}) rec ${rec.toFixed(4)} kl ${kl.toFixed(2)} ${dt.toFixed(2)} s/step rss ${entry.rssGiB} GiB   `);
    if (Date.now() - lastSave >= saveMs) {
      save();
      lastSave = Date.now();
    }
  }
  save();
  fs.closeSync(log);
  console.log(`\nsaved step ${state.step} (${(state.seconds / 3600).toFixed(2)} h of training, ${((state.cpuSeconds ?? 0) / 3600).toFixed(2)} CPU h in all)${persist ? `; also in ${persist}` : ''}`);
}

main().catch((e: unknown) => {
  console.error(`train-vae: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
