// Does the transformer read each attribute of the caption? For world clips rendered from known combinations, the
// training loss (v-prediction MSE, text-to-video conditioning: zero inpaint latents, as t2v_flag 0 rows in training)
// with the clip's canonical caption against the same caption with one attribute swapped (colour, shape, direction or
// background replaced by every other value in turn), at fixed timesteps and fixed noise. A model that ignores an
// attribute scores the same loss either way (gap 0); one that reads it scores lower with the right caption. Cheap
// (forward passes only), so it can follow a run checkpoint by checkpoint, before generations show the attribute.
//   npx tsx scripts/demo/text-probe.ts --model /work/demo-run/model-dit --transformer DIR[,DIR…] [--clips 12]
//       [--timesteps 300,600,900] [--seed 1] [--condition none|first-frame] [--attention] [--pairs ATTR]
// --pairs ATTR: also that attribute's gap per unordered pair of values (e.g. --pairs shape: circle↔square apart from
// circle↔triangle), from the same forward passes.
// --attention: also where the video tokens of each latent frame look, per block (the right caption's attention
// probabilities, softmax(q·k/√d) from the emitted q and k, mean over heads, tokens and clips): the share on the text,
// on latent frame 0, on their own frame and on the other frames, and (frames ≥ 1) on frame 0's token at their own
// grid place; and how many keys a query spreads over (exp of the entropy of its probabilities).
// --condition first-frame: image-to-video conditioning instead (get_random_mask type 2 with k = 1: the clip's first
// frame known, the rest −1; inpaint latents = cat(keep-mask resized, VAE mode of that video) × scaling_factor, as
// train.py:1475-1490 without the reference-noise draw), where the direction word decides where the object goes.
// DIR: a transformer folder (diffusers layout: a checkpoint-N/transformer, or the mean from average-dit.ts).
// Prints per transformer and timestep the mean relative gap (loss_wrong − loss_right) / loss_right per attribute and
// the share of (clip, wrong value) pairs where the right caption had the lower loss; then the right caption's loss per
// latent frame.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { BACKGROUNDS, COLORS, DIRECTIONS, SHAPES, allCombos, canonicalCaption, clipRng, isHeldOut, placeClip, renderClip, type Combo } from '../../src/data/index.js';
import { framesToChannelsFirst } from '../../src/media/index.js';
import { T5EncoderModel } from '../../src/models/t5.js';
import { T5Tokenizer } from '../../src/models/t5_tokenizer.js';
import { CogVideoXTransformer3DModel } from '../../src/models/transformer.js';
import { AutoencoderKLCogVideoX } from '../../src/models/vae.js';
import { describeBackend, setBackend, shutdownBackend } from '../../src/nn/backend.js';
import { PhiloxGenerator } from '../../src/schedulers/index.js';
import { NoiseSchedule } from '../../src/training/schedule.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    transformer: { type: 'string' },
    clips: { type: 'string', default: '12' },
    timesteps: { type: 'string', default: '300,600,900' },
    seed: { type: 'string', default: '1' },
    condition: { type: 'string', default: 'none' },
    attention: { type: 'boolean', default: false },
    pairs: { type: 'string' },
  },
});
if (!args.model || !args.transformer) throw new Error('--model DIR and --transformer DIR[,DIR…] are required');
const model = args.model;
const transformerDirs = args.transformer.split(',');
const nClips = Number(args.clips);
const timesteps = args.timesteps.split(',').map(Number);
const seed = Number(args.seed);
if (args.condition !== 'none' && args.condition !== 'first-frame') throw new Error(`--condition: expected none or first-frame, got ${args.condition}`);
const firstFrame = args.condition === 'first-frame';
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;
// the training clips' size (scripts/demo/README.md stage 3: 17 frames of 64 × 96)
const SIZE = { width: 96, height: 64, frames: 17 };

type Attr = 'color' | 'shape' | 'direction' | 'background';
const VALUES: Record<Attr, readonly string[]> = { color: COLORS, shape: SHAPES, direction: DIRECTIONS, background: BACKGROUNDS };
const ATTRS = Object.keys(VALUES) as Attr[];
if (args.pairs !== undefined && !(ATTRS as string[]).includes(args.pairs)) throw new Error(`--pairs: expected one of ${ATTRS.join(', ')}, got ${args.pairs}`);

await setBackend();
console.log(`backend: ${describeBackend()}; model ${model}; condition ${args.condition}`);

// seen combinations spread over all of them (as bench/demo_quality.ts picks its seen prompts)
const trainable = allCombos().filter((c) => !isHeldOut(c));
const combos: Combo[] = Array.from({ length: nClips }, (_, i) => trainable[Math.floor((i * trainable.length) / nClips)]!);

// captions: each clip's canonical one, then every one-attribute swap
const captions: string[] = [];
const swaps: { clip: number; attr: Attr | null; value: string | null; caption: number }[] = [];
combos.forEach((c, k) => {
  swaps.push({ clip: k, attr: null, value: null, caption: captions.push(canonicalCaption(c)) - 1 });
  for (const a of ATTRS) for (const v of VALUES[a]) if (v !== c[a]) swaps.push({ clip: k, attr: a, value: v, caption: captions.push(canonicalCaption({ ...c, [a]: v })) - 1 });
});

const tokenizer = await T5Tokenizer.fromPretrained(path.join(model, 'tokenizer'));
const t5 = await T5EncoderModel.fromPretrained(path.join(model, 'text_encoder'));
const maxLength = readJson<{ max_text_seq_length?: number }>(path.join(transformerDirs[0]!, 'config.json')).max_text_seq_length ?? 226;
const embeds = t5.forward(tokenizer.call(captions, { maxLength, padding: 'max_length', truncation: true }).inputIds);
t5.dispose();

// clean latents (posterior mean × scaling factor) of each clip, [1, f, C, h, w]
const vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(model, 'vae'));
const sf = vae.config.scaling_factor;
const conditions: tf.Tensor5D[] = [];
const latents = combos.map((c, k) => {
  const frames = renderClip(placeClip(c, clipRng(seed, k), SIZE));
  const [F, H, W] = [SIZE.frames, SIZE.height, SIZE.width];
  const px = framesToChannelsFirst(frames, H, W, 'signed');
  const x = tf.tensor5d(px, [1, 3, F, H, W]);
  const dist = vae.encode(x);
  const z = tf.tidy(() => tf.transpose(tf.mul(dist.mode(), sf), [0, 2, 1, 3, 4]) as tf.Tensor5D);
  if (firstFrame) {
    const [, f, , h, w] = z.shape;
    const masked = px.slice();
    for (let ch = 0; ch < 3; ch++) masked.fill(-1, (ch * F + 1) * H * W, (ch + 1) * F * H * W);
    const mx = tf.tensor5d(masked, [1, 3, F, H, W]);
    const md = vae.encode(mx);
    conditions.push(
      tf.tidy(() => {
        const keep = tf.concat([tf.ones([1, 1, 1, h, w]), tf.zeros([1, f - 1, 1, h, w])], 1);
        const ml = tf.transpose(md.mode(), [0, 2, 1, 3, 4]);
        return tf.mul(tf.concat([keep, ml], 2), sf) as tf.Tensor5D;
      }),
    );
    tf.dispose([mx]);
    md.dispose();
  }
  tf.dispose([x]);
  dist.dispose();
  return z;
});
vae.dispose();

const schedule = new NoiseSchedule(readJson<ConstructorParameters<typeof NoiseSchedule>[0]>(path.join(model, 'scheduler', 'scheduler_config.json')));
const gen = new PhiloxGenerator(seed);
const noises = latents.map((z) => timesteps.map(() => gen.randn(z.shape)));

/**
 * --attention: adds to acc[query frame] one clip's share of the video queries' attention probabilities
 * (softmax(q·k/√d), q and k [1, heads, S, d] of the right caption) on [text, frame 0, own frame, other frames, frame 0
 * at the query's grid place, exp(entropy)], averaged over heads, the frame's tokens and `clips`.
 */
function addAttentionShares(acc: number[][], q: { data: Float32Array; shape: number[] }, k: { data: Float32Array }, f: number, grid: number, clips: number): void {
  const [, H, S, d] = q.shape as [number, number, number, number];
  const Lt = S - f * grid;
  const p = new Float64Array(S);
  const weight = 1 / (H * grid * clips);
  for (let hh = 0; hh < H; hh++) {
    for (let i = Lt; i < S; i++) {
      const qf = Math.floor((i - Lt) / grid);
      for (let j = 0; j < S; j++) {
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q.data[(hh * S + i) * d + e]! * k.data[(hh * S + j) * d + e]!;
        p[j] = dot / Math.sqrt(d);
      }
      const max = p.reduce((a, b) => Math.max(a, b), -Infinity);
      let sum = 0;
      for (let j = 0; j < S; j++) sum += p[j] = Math.exp(p[j]! - max);
      const cell = acc[qf]!;
      let entropy = 0;
      for (let j = 0; j < S; j++) {
        const a = p[j]! / sum;
        if (a > 0) entropy -= a * Math.log(a);
        if (j < Lt) {
          cell[0]! += a * weight;
          continue;
        }
        const kf = Math.floor((j - Lt) / grid);
        if (kf === 0) cell[1]! += a * weight; // frame 0 (for frame 0's own queries also their own frame, below)
        if (kf === qf) cell[2]! += a * weight;
        else if (kf !== 0) cell[3]! += a * weight;
        if (kf === 0 && qf > 0 && (j - Lt) % grid === (i - Lt) % grid) cell[4]! += a * weight;
      }
      cell[5]! += Math.exp(entropy) * weight;
    }
  }
}

for (const dir of transformerDirs) {
  const net = await CogVideoXTransformer3DModel.fromPretrained(dir);
  // loss[swap][timestep]
  const loss = swaps.map(() => timesteps.map(() => 0));
  // the right caption's loss per latent frame, mean over clips: frameLoss[timestep][frame]
  const frameLoss: number[][] = [];
  // --attention: share[timestep][block][query frame] = [text, frame 0, own frame, other frames, frame 0 same place]
  const share: number[][][][] = [];
  for (let k = 0; k < combos.length; k++) {
    const rows = swaps.map((s, i) => [s, i] as const).filter(([s]) => s.clip === k);
    timesteps.forEach((t, ti) => {
      const l = tf.tidy(() => {
        const z = latents[k]!;
        const noisy = schedule.addNoise(z, noises[k]![ti]!, [t]);
        const target = schedule.target(z, noises[k]![ti]!, [t]);
        const n = rows.length;
        const [, f, C, h, w] = z.shape;
        // block.i.attn.q / .k: [n, heads, Lt + N, head dim]; the right caption is row 0 (pushed first for each clip)
        const qk = new Map<string, { data: Float32Array; shape: number[] }>();
        const onOutput = (name: string, x: tf.Tensor) => {
          if (/^block\.\d+\.attn\.[qk]$/.test(name)) qk.set(name, { data: tf.tidy(() => tf.slice(x, [0], [1]).dataSync() as Float32Array), shape: x.shape });
        };
        const pred = net.forward(
          {
            hiddenStates: tf.tile(noisy, [n, 1, 1, 1, 1]) as tf.Tensor5D,
            encoderHiddenStates: tf.gather(embeds, rows.map(([s]) => s.caption)) as tf.Tensor3D,
            timestep: rows.map(() => t),
            inpaintLatents: (firstFrame ? tf.tile(conditions[k]!, [n, 1, 1, 1, 1]) : tf.zeros([n, f, C + 1, h, w])) as tf.Tensor5D,
          },
          args.attention ? { onOutput } : {},
        );
        if (args.attention) {
          const grid = (h / net.config.patch_size) * (w / net.config.patch_size);
          for (let b = 0; qk.has(`block.${b}.attn.q`); b++) {
            const acc = ((share[ti] ??= [])[b] ??= Array.from({ length: f }, () => [0, 0, 0, 0, 0, 0]));
            addAttentionShares(acc, qk.get(`block.${b}.attn.q`)!, qk.get(`block.${b}.attn.k`)!, f, grid, combos.length);
          }
        }
        return tf.mean(tf.square(tf.sub(pred, target)), [2, 3, 4]); // [n, f]: per latent frame
      });
      const v = l.dataSync();
      const f = l.shape[1]!;
      rows.forEach(([s, i], j) => {
        const row = Array.from(v.subarray(j * f, (j + 1) * f));
        loss[i]![ti] = row.reduce((a, b) => a + b, 0) / f;
        if (s.attr === null) frameLoss[ti] = (frameLoss[ti] ?? new Array<number>(f).fill(0)).map((x, q) => x + row[q]! / combos.length);
      });
      l.dispose();
    });
  }
  net.dispose();
  console.log(`\n${dir}`);
  console.log(`| t | right-caption loss | ${ATTRS.map((a) => `${a} gap % (right lower)`).join(' | ')} |`);
  /** Over the swapped captions `keep` selects: the summed relative gap to their clip's right caption, how many of them
   * scored worse than it, and how many there were. */
  const gapOver = (ti: number, keep: (s: (typeof swaps)[number]) => boolean) => {
    let gap = 0;
    let wins = 0;
    let n = 0;
    swaps.forEach((s, i) => {
      if (!keep(s)) return;
      const r = loss[swaps.findIndex((q) => q.clip === s.clip && q.attr === null)]![ti]!;
      gap += (loss[i]![ti]! - r) / r;
      wins += r < loss[i]![ti]! ? 1 : 0;
      n++;
    });
    return { gap, wins, n };
  };
  console.log(`|---|---|${ATTRS.map(() => '---').join('|')}|`);
  timesteps.forEach((t, ti) => {
    const right = swaps.filter((s) => s.attr === null).map((s) => loss[swaps.indexOf(s)]![ti]!);
    const cells = ATTRS.map((a) => {
      const { gap, wins, n } = gapOver(ti, (s) => s.attr === a);
      return `${((100 * gap) / n).toFixed(2)} (${Math.round((100 * wins) / n)} %)`;
    });
    console.log(`| ${t} | ${(right.reduce((a, b) => a + b, 0) / right.length).toFixed(4)} | ${cells.join(' | ')} |`);
  });
  if (args.pairs !== undefined) {
    const a = args.pairs as Attr;
    const vals = VALUES[a];
    const pairs = vals.flatMap((u, i) => vals.slice(i + 1).map((v) => [u, v] as const));
    console.log(`\n| t | ${pairs.map(([u, v]) => `${u}↔${v} gap % (right lower, n)`).join(' | ')} |`);
    console.log(`|---|${pairs.map(() => '---').join('|')}|`);
    timesteps.forEach((t, ti) => {
      const cells = pairs.map(([u, v]) => {
        const { gap, wins, n } = gapOver(ti, (s) => s.attr === a && [u, v].includes(combos[s.clip]![a]) && [u, v].includes(s.value!));
        return n ? `${((100 * gap) / n).toFixed(2)} (${wins} / ${n})` : '–';
      });
      console.log(`| ${t} | ${cells.join(' | ')} |`);
    });
  }
  console.log(`right-caption loss per latent frame: ${timesteps.map((t, ti) => `t ${t}: ${frameLoss[ti]!.map((x) => x.toFixed(3)).join(' ')}`).join('; ')}`);
  if (args.attention) {
    console.log(`\nattention of each latent frame's video tokens (right caption), % on: text / frame 0 / own frame / other frames / frame 0 at the same place (the effective number of keys, exp(entropy), of ${embeds.shape[1]} text + ${latents[0]!.shape[1]} × grid video)`);
    timesteps.forEach((t, ti) =>
      share[ti]!.forEach((fr, b) => console.log(`t ${t} block ${b}: ${fr.map((c, qf) => `f${qf} ${c.slice(0, 5).map((x) => (100 * x).toFixed(1)).join('/')} (${c[5]!.toFixed(0)} keys)`).join('  ')}`)),
    );
  }
}
tf.dispose([embeds, ...latents, ...conditions, ...noises.flat()]);
shutdownBackend();
