// How much could the direction word lower the loss text-probe measures, for a model that used it perfectly? With the
// first frame given (text-probe --condition first-frame) and t = 999 (ᾱ = 0, so the v-target is −x0), the best
// prediction is −E[x0 | first frame, caption]: the mean latent of the clips that start from that frame and move in
// the caption's direction at any of the world's speeds. For world clips it estimates that mean per direction from
// `--samples` speeds spread over placeClip's range (travel 30–60 % of the frame over 24 frames), and prints
//   oracle loss  mean((x0 − m_right)²): the loss left when only the speed is unknown,
//   direction gap  mean((m_right − m_wrong)²): what the right direction word saves over a wrong one (the same amount
//   for any predictor that follows the word), as a share of the oracle loss and of a given model loss (--model-loss:
//   text-probe's right-caption loss at t = 999); then the oracle loss per latent frame (text-probe prints the model's).
//   npx tsx scripts/demo/direction-oracle.ts --model DIR [--clips 8] [--samples 8] [--seed 1] [--model-loss 0.42]
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { DIRECTIONS, allCombos, clipRng, isHeldOut, placeClip, renderClip, type ClipSpec, type Combo } from '../../src/data/index.js';
import { framesToChannelsFirst } from '../../src/media/index.js';
import { AutoencoderKLCogVideoX } from '../../src/models/vae.js';
import { describeBackend, setBackend, shutdownBackend } from '../../src/nn/backend.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    clips: { type: 'string', default: '8' },
    samples: { type: 'string', default: '8' },
    seed: { type: 'string', default: '1' },
    'model-loss': { type: 'string' },
  },
});
if (!args.model) throw new Error('--model DIR is required');
const nClips = Number(args.clips);
const nSamples = Number(args.samples);
const seed = Number(args.seed);
const modelLoss = args['model-loss'] === undefined ? null : Number(args['model-loss']);
// text-probe's clips: 17 frames of 64 × 96 (the training window), placed as world clips of that length
const SIZE = { width: 96, height: 64, frames: 17 };
const [F, H, W] = [SIZE.frames, SIZE.height, SIZE.width];

await setBackend();
console.log(`backend: ${describeBackend()}; model ${args.model}`);
const vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(args.model, 'vae'));
const sf = vae.config.scaling_factor;

/** Posterior means × scaling factor of rendered clips, [N, C·f·h·w] flattened. */
function encode(specs: ClipSpec[]): Float32Array[] {
  const per = 3 * F * H * W;
  const px = new Float32Array(specs.length * per);
  specs.forEach((s, b) => framesToChannelsFirst(renderClip(s), H, W, 'signed', px, b * per));
  const x = tf.tensor5d(px, [specs.length, 3, F, H, W]);
  const d = vae.encode(x);
  const z = tf.tidy(() => tf.mul(d.mode(), sf));
  latentShape = z.shape.slice(1);
  const v = z.dataSync() as Float32Array;
  const n = v.length / specs.length;
  tf.dispose([x, z]);
  d.dispose();
  return specs.map((_, b) => v.slice(b * n, (b + 1) * n));
}
const mse = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0) / a.length;
// the latents are [C, f, h, w] flattened: the squared error per latent frame
let latentShape: number[] = [];
function msePerFrame(a: Float32Array, b: Float32Array): number[] {
  const [C, f, h, w] = latentShape as [number, number, number, number];
  const out = new Array<number>(f).fill(0);
  for (let c = 0; c < C; c++) for (let q = 0; q < f; q++) for (let i = 0; i < h * w; i++) out[q]! += (a[(c * f + q) * h * w + i]! - b[(c * f + q) * h * w + i]!) ** 2;
  return out.map((x) => x / (C * h * w));
}
const mean = (xs: Float32Array[]) => xs[0]!.map((_, i) => xs.reduce((s, x) => s + x[i]!, 0) / xs.length);

const trainable = allCombos().filter((c) => !isHeldOut(c));
const combos: Combo[] = Array.from({ length: nClips }, (_, i) => trainable[Math.floor((i * trainable.length) / nClips)]!);
let oracle = 0;
let gap = 0;
let pairs = 0;
let perFrame: number[] = [];
for (let k = 0; k < combos.length; k++) {
  // placeClip spreads the travel over SIZE.frames − 1 = 16 steps; training's windows are 17 frames of 25-frame clips
  // (24 steps), so the speed is rescaled to the world's
  const placed = placeClip(combos[k]!, clipRng(seed, k), SIZE);
  const spec = { ...placed, speed: (placed.speed * 16) / 24 };
  const [x0] = encode([spec]);
  const means = new Map<string, Float32Array>();
  for (const d of DIRECTIONS) {
    const along = d === 'left' || d === 'right' ? W : H;
    // placeClip's speeds for a 25-frame world clip (travel 30–60 % of `along` over 24 steps), evenly spread
    const specs = Array.from({ length: nSamples }, (_, j) => ({ ...spec, direction: d, speed: (along * (0.3 + (0.3 * (j + 0.5)) / nSamples)) / 24 }));
    means.set(d, mean(encode(specs)));
  }
  const right = means.get(spec.direction)!;
  const o = mse(x0!, right);
  const pf = msePerFrame(x0!, right);
  perFrame = pf.map((x, q) => (perFrame[q] ?? 0) + x / nClips);
  const gaps = DIRECTIONS.filter((d) => d !== spec.direction).map((d) => mse(right, means.get(d)!));
  oracle += o;
  gap += gaps.reduce((a, b) => a + b, 0);
  pairs += gaps.length;
  console.log(`clip ${k} (${spec.color} ${spec.shape} ${spec.direction} on ${spec.background}): oracle loss ${o.toFixed(4)}, direction gaps ${gaps.map((g) => g.toFixed(4)).join(' ')}`);
}
vae.dispose();
const o = oracle / nClips;
const g = gap / pairs;
console.log(`\nmean oracle loss ${o.toFixed(4)}; mean direction gap ${g.toFixed(4)} = ${((100 * g) / o).toFixed(1)} % of the oracle loss` + (modelLoss ? `, ${((100 * g) / modelLoss).toFixed(1)} % of the model's ${modelLoss}` : ''));
console.log(`oracle loss per latent frame: ${perFrame.map((x) => x.toFixed(3)).join(' ')}`);
shutdownBackend();
