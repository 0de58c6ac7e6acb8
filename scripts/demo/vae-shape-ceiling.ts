// How many shapes survive the VAE alone: encodes world clips (posterior mode), decodes them and reads the shape with
// the bench's analyzer (src/data/analyze.ts: fill ratio of the box, < 0.66 triangle, ≥ 0.9 square), per shape and
// per object speed. A transformer can at best hand the decoder the clip's own latent, so this bounds the shape column
// of bench/demo_quality.ts. Speeds: the generator's (placeClip) scaled by each --speeds entry; a clip rendered
// --frames long moves 24/16 = 1.5× as fast as the 25-frame training clips (×0.67 = the training speed at 17 frames).
//   npx tsx scripts/demo/vae-shape-ceiling.ts [--vae assets/demo-model/vae] [--clips 12] [--speeds 0,0.67,1]
//       [--radius R]   (R: fixed object radius R + (i mod 4) px instead of the generator's 12–19 % of the short side)
//       [--distances 1,1.5,2]
//       [--ends 4 [--clip-frames 17,25]]
// --distances: instead, how far apart the shapes lie in latent space: the same placement rendered as a circle, a
// square and a triangle (radius × each scale), encoded (posterior mode × scaling factor), the median squared L2
// distance per pair — what a transformer gains from reading the shape word is of that order, so a pair much closer
// than another is learnt that much more slowly from the same loss.
// --ends S: instead, the copied frames' bound: bench/demo_quality.ts's own image-to-video and start + end clips
// (benchCombos(12, 'even'), seeds 1000 … 1000 + S − 1, rendered --clip-frames long and cut to 17 as the bench's
// --clip-frames does; 17 is the bench's default, 25 the world's clip length, whose objects move 2/3 as fast) through
// the round trip: frame 0 against the 28 dB bar, the last frame against 26 dB. A transformer that hands the decoder
// the clip's own latent gets these frames, so a share under the bench's 90 % here is the VAE's, not the transformer's.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  BACKGROUNDS,
  COLORS,
  DIRECTIONS,
  END_FRAMES_MIN_DB,
  FRAME0_MIN_DB,
  SHAPES,
  analyzeVideo,
  benchCases,
  benchCombos,
  clipRng,
  isHeldOut,
  median,
  placeClip,
  psnr,
  renderClip,
  type Combo,
} from '../../src/data/index.js';
import { framesToChannelsFirst } from '../../src/media/index.js';
import { AutoencoderKLCogVideoX } from '../../src/models/vae.js';
import { describeBackend, setBackend, shutdownBackend } from '../../src/nn/backend.js';
import { toUint8Videos } from '../../src/pipelines/index.js';

const { values: args } = parseArgs({
  options: {
    vae: { type: 'string', default: 'assets/demo-model/vae' },
    clips: { type: 'string', default: '12' },
    speeds: { type: 'string', default: '0,0.67,1' },
    radius: { type: 'string' },
    distances: { type: 'string' },
    ends: { type: 'string' },
    'clip-frames': { type: 'string', default: '17,25' },
  },
});
if (!fs.existsSync(`${args.vae}/config.json`)) throw new Error(`--vae ${args.vae}: no config.json there`);
const nClips = Number(args.clips);
if (!Number.isInteger(nClips) || nClips < 1) throw new Error(`--clips must be a positive integer, got '${args.clips}'`);
const speeds = args.speeds!.split(',').map(Number);
if (speeds.some((s) => !Number.isFinite(s) || s < 0)) throw new Error(`--speeds must be non-negative numbers, got '${args.speeds}'`);
if (args.distances !== undefined && args.distances.split(',').map(Number).some((s) => !Number.isFinite(s) || s <= 0)) {
  throw new Error(`--distances must be positive numbers, got '${args.distances}'`);
}
const endSeeds = args.ends === undefined ? undefined : Number(args.ends);
if (endSeeds !== undefined && (!Number.isInteger(endSeeds) || endSeeds < 1)) throw new Error(`--ends must be a positive integer (seeds), got '${args.ends}'`);
const clipLengths = args['clip-frames']!.split(',').map(Number);
if (clipLengths.some((n) => !Number.isInteger(n) || n < 17)) throw new Error(`--clip-frames must be integers ≥ 17, got '${args['clip-frames']}'`);
const radius = args.radius === undefined ? undefined : Number(args.radius);
const SIZE = { width: 96, height: 64, frames: 17 };

await setBackend();
console.log(`backend: ${describeBackend()}; VAE ${args.vae}; ${nClips} clips per shape and speed, ${SIZE.frames}×${SIZE.height}×${SIZE.width}`);
const vae = await AutoencoderKLCogVideoX.fromPretrained(args.vae!);

/** The clip's frames through encode (posterior mode) and decode, RGB HWC uint8 (rounded, as train-vae --eval). */
function roundTrip(frames: Uint8Array[]): Uint8Array[] {
  const { frames: F, height: H, width: W } = SIZE;
  const y = tf.tidy(() => {
    const x = tf.tensor5d(framesToChannelsFirst(frames, H, W, 'signed'), [1, 3, F, H, W]);
    const post = vae.encode(x);
    const out = vae.decode(post.mode());
    post.dispose();
    return tf.clipByValue(tf.add(tf.mul(out, 0.5), 0.5), 0, 1) as tf.Tensor5D;
  });
  const [video] = toUint8Videos(y, 'round');
  y.dispose();
  return video!.frames;
}

/** Clip i's placement (the generator's geometry for a spread of colours, directions and backgrounds) as `shape`. */
function placement(i: number, shape: Combo['shape']) {
  const combo: Combo = { color: COLORS[i % COLORS.length]!, shape, direction: DIRECTIONS[i % DIRECTIONS.length]!, background: BACKGROUNDS[(i >> 1) % BACKGROUNDS.length]! };
  return placeClip(combo, clipRng(1000 + i, i), SIZE);
}

/** The clip's latent, posterior mode × scaling factor. */
function encode(frames: Uint8Array[]): tf.Tensor {
  const { frames: F, height: H, width: W } = SIZE;
  return tf.tidy(() => {
    const post = vae.encode(tf.tensor5d(framesToChannelsFirst(frames, H, W, 'signed'), [1, 3, F, H, W]));
    const z = tf.mul(post.mode(), vae.config.scaling_factor);
    post.dispose();
    return z;
  });
}

/** --distances: the median squared latent distance between the shapes at one placement, per radius scale. */
function distanceTable(scales: number[]): void {
  const pairs = [['square', 'circle'], ['triangle', 'circle'], ['triangle', 'square']] as const;
  console.log(`\n| radius | ${pairs.map(([a, b]) => `${a}–${b}`).join(' | ')} | a circle's own ‖z‖² |\n|---|---|---|---|---|`);
  for (const scale of scales) {
    const d: number[][] = pairs.map(() => []);
    const own: number[] = [];
    for (let i = 0; i < nClips; i++) {
      const placed = placement(i, 'circle');
      const z = Object.fromEntries(SHAPES.map((shape) => [shape, encode(renderClip({ ...placed, shape, radius: placed.radius * scale }))]));
      pairs.forEach(([a, b], j) => d[j]!.push(tf.tidy(() => tf.sum(tf.square(tf.sub(z[a]!, z[b]!))).dataSync()[0]!)));
      own.push(tf.tidy(() => tf.sum(tf.square(z.circle!)).dataSync()[0]!));
      tf.dispose(Object.values(z));
    }
    console.log(`| ×${scale} | ${d.map((v) => median(v).toFixed(0)).join(' | ')} | ${median(own).toFixed(0)} |`);
  }
}

/** The round-trip table: how many clips of each shape and speed the analyzer reads right after encode → decode. */
function roundTripTable(): void {
  console.log('\n| speed | shape | read right | median fill, clip → decoded |\n|---|---|---|---|');
  for (const speed of speeds) {
    for (const shape of SHAPES) {
      let right = 0;
      const fillIn: number[] = [];
      const fillOut: number[] = [];
      for (let i = 0; i < nClips; i++) {
        const placed = placement(i, shape);
        const spec = { ...placed, speed: placed.speed * speed, radius: radius === undefined ? placed.radius : radius + (i % 4) };
        const frames = renderClip(spec);
        const a = analyzeVideo({ frames, width: SIZE.width, height: SIZE.height });
        const b = analyzeVideo({ frames: roundTrip(frames), width: SIZE.width, height: SIZE.height });
        if (b.shape === shape) right++;
        if (a.fillRatio !== null) fillIn.push(a.fillRatio);
        if (b.fillRatio !== null) fillOut.push(b.fillRatio);
      }
      const med = (v: number[]) => (v.length ? median(v).toFixed(3) : '–');
      console.log(`| ×${speed} | ${shape} | ${right} / ${nClips} | ${med(fillIn)} → ${med(fillOut)} |`);
    }
  }
}

/** --ends: frame 0 and the last frame of the bench's clips after the round trip, per clip length, split and shape. */
function endsTable(seeds: number): void {
  const pct = (v: boolean[]) => `${v.filter(Boolean).length} / ${v.length}`;
  console.log(`\n| clip frames | split / shape | frame 0 median dB | frame 0 ≥ ${FRAME0_MIN_DB} | last median dB | last ≥ ${END_FRAMES_MIN_DB} |\n|---|---|---|---|---|---|`);
  for (const clipFrames of clipLengths) {
    const rows: { held: boolean; shape: Combo['shape']; first: number; last: number }[] = [];
    for (const { combo, clip } of benchCases(benchCombos(12, 'even'), seeds, { ...SIZE, frames: clipFrames })) {
      const frames = renderClip(clip).slice(0, SIZE.frames);
      const out = roundTrip(frames);
      rows.push({ held: isHeldOut(combo), shape: combo.shape, first: psnr(out[0]!, frames[0]!), last: psnr(out.at(-1)!, frames.at(-1)!) });
    }
    const groups: [string, typeof rows][] = [
      ['seen', rows.filter((r) => !r.held)],
      ['held-out', rows.filter((r) => r.held)],
      ...SHAPES.map((shape): [string, typeof rows] => [`${shape}s (both)`, rows.filter((r) => r.shape === shape)]),
    ];
    for (const [name, g] of groups) {
      const first = g.map((r) => r.first);
      const last = g.map((r) => r.last);
      console.log(`| ${clipFrames} | ${name} | ${median(first).toFixed(1)} | ${pct(first.map((p) => p >= FRAME0_MIN_DB))} | ${median(last).toFixed(1)} | ${pct(last.map((p) => p >= END_FRAMES_MIN_DB))} |`);
    }
  }
}

if (endSeeds !== undefined) endsTable(endSeeds);
else if (args.distances === undefined) roundTripTable();
else distanceTable(args.distances.split(',').map(Number));
vae.dispose();
shutdownBackend();
