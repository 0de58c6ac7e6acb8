// Widens a CogVideoX VAE (AutoencoderKLCogVideoX) without changing what it computes, so its decoder can be trained
// with more room while the encoder — hence the latents a transformer was trained on — stays exactly as it was.
// block_out_channels and norm_num_groups are both multiplied by --factor, so every GroupNorm keeps its group size and
// the old channels keep their own groups (the first ones: groups are contiguous channels). New channels go after the
// old ones in every tensor whose dim is a channel count:
//   encoder: zero weights and biases into and out of them (GroupNorm of an all-zero group is β = 0, SiLU(0) = 0), so
//            they stay 0 and the encoder is unchanged;
//   decoder: each new channel starts as a copy of old channel (i mod C) plus noise of 1 % of the tensor's spread (its
//            weights from the old channels, bias, norm γ/β, SpatialNorm3D conv_y/conv_b), and every weight FROM a new
//            channel is zero — the old channels, and the decoded frames, are unchanged until training moves those.
// The result is checked before it is written: a world clip encoded and decoded by both VAEs (max |Δ| ≤ 1e-4).
// The diffusers config is shared by encoder and decoder (one block_out_channels), so the encoder widens too.
//   npx tsx scripts/demo/widen-vae.ts --vae SRC_DIR --out DEST_DIR [--factor 1.5] [--seed 0]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { clipRng, placeClip, renderClip } from '../../src/data/index.js';
import { framesToChannelsFirst } from '../../src/media/index.js';
import { AutoencoderKLCogVideoX } from '../../src/models/vae.js';
import { describeBackend, setBackend, shutdownBackend } from '../../src/nn/backend.js';
import { PhiloxGenerator } from '../../src/schedulers/index.js';
import { SafetensorsFile, numel, saveSafetensors, type TensorToWrite } from '../../src/weights/safetensors.js';

const { values: args } = parseArgs({
  options: { vae: { type: 'string' }, out: { type: 'string' }, factor: { type: 'string', default: '1.5' }, seed: { type: 'string', default: '0' } },
});
if (!args.vae || !args.out) throw new Error('usage: npx tsx scripts/demo/widen-vae.ts --vae SRC_DIR --out DEST_DIR [--factor 1.5] [--seed 0]');
const WEIGHTS = 'diffusion_pytorch_model.safetensors';
const src = args.vae;
if (!fs.existsSync(path.join(src, 'config.json')) || !fs.existsSync(path.join(src, WEIGHTS))) throw new Error(`--vae ${src}: needs config.json and ${WEIGHTS}`);
if (path.resolve(src) === path.resolve(args.out)) throw new Error('--out must differ from --vae');
const factor = Number(args.factor);

interface VaeConfig { block_out_channels: number[]; norm_num_groups: number; latent_channels: number; in_channels: number; out_channels: number; [k: string]: unknown }
const config = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')) as VaeConfig;
const oldChannels = config.block_out_channels;
const widened = new Map(oldChannels.map((c) => [c, c * factor]));
const groups = config.norm_num_groups * factor;
if (!(factor > 1) || [...widened.values(), groups].some((v) => !Number.isInteger(v))) {
  throw new Error(`--factor ${args.factor}: needs > 1 and integer results for block_out_channels [${oldChannels}] and norm_num_groups ${config.norm_num_groups}`);
}
// A channel dim is recognised by its size, so no other dim of a tensor may share a block's channel count.
for (const [name, v] of [['latent_channels', config.latent_channels], ['2 × latent_channels', 2 * config.latent_channels], ['in_channels', config.in_channels], ['out_channels', config.out_channels]] as const) {
  if (widened.has(v)) throw new Error(`${src}/config.json: ${name} = ${v} equals a block_out_channels entry; this script tells channel dims by size`);
}

const file = SafetensorsFile.open(path.join(src, WEIGHTS));
const rng = new PhiloxGenerator(Number(args.seed));
const out: Record<string, TensorToWrite> = {};
for (const name of file.keys()) {
  const t = file.read(name);
  const old = t.toFloat32();
  const shape = t.shape;
  // channel dims: out (0) and in (1) of a conv weight, the only dim of a bias or norm parameter
  const chanDims = (shape.length === 1 ? [0] : [0, 1]).filter((d) => widened.has(shape[d]!));
  const newShape = shape.map((s, d) => (chanDims.includes(d) ? widened.get(s)! : s));
  if (chanDims.length === 0) {
    out[name] = { dtype: 'F32', shape, data: old };
    continue;
  }
  const decoder = name.startsWith('decoder.');
  const isNorm = shape.length === 1 && /norm/.test(name) && !/conv_[yb]/.test(name);
  let mean = 0;
  for (const v of old) mean += v;
  mean /= old.length;
  let sd = 0;
  for (const v of old) sd += (v - mean) ** 2;
  sd = Math.sqrt(sd / old.length);
  const noise = rng.randnHost([numel(newShape)]);
  const data = new Float32Array(numel(newShape));
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const [o0, i0] = [shape[0]!, shape.length > 1 ? shape[1]! : 1];
  const [o1, i1] = [newShape[0]!, newShape.length > 1 ? newShape[1]! : 1];
  for (let o = 0; o < o1; o++) {
    for (let i = 0; i < i1; i++) {
      for (let k = 0; k < inner; k++) {
        const at = (o * i1 + i) * inner + k;
        if (o < o0 && i < i0) data[at] = old[(o * i0 + i) * inner + k]!; // the old tensor, unchanged
        else if (!decoder) data[at] = isNorm && name.endsWith('.weight') ? 1 : 0; // encoder: new channels stay 0
        else if (i >= i0 && chanDims.includes(1)) data[at] = 0; // decoder: nothing flows from a new channel
        else data[at] = old[((o % o0) * i0 + i) * inner + k]! + (isNorm ? 0 : 0.01 * sd * noise[at]!); // a copy of an old channel
      }
    }
  }
  out[name] = { dtype: 'F32', shape: newShape, data };
}
file.close();

// Check before writing: the same clip through both VAEs.
fs.mkdirSync(path.dirname(path.resolve(args.out)), { recursive: true });
const tmp = fs.mkdtempSync(path.join(path.dirname(path.resolve(args.out)), '.widen-'));
try {
  const newConfig = { ...config, block_out_channels: oldChannels.map((c) => widened.get(c)!), norm_num_groups: groups };
  fs.writeFileSync(path.join(tmp, 'config.json'), `${JSON.stringify(newConfig, null, 2)}\n`);
  saveSafetensors(path.join(tmp, WEIGHTS), out);
  await setBackend();
  const [a, b] = [await AutoencoderKLCogVideoX.fromPretrained(src), await AutoencoderKLCogVideoX.fromPretrained(tmp)];
  const SIZE = { width: 96, height: 64, frames: 17 };
  const frames = renderClip(placeClip({ color: 'green', shape: 'square', direction: 'left', background: 'gray' }, clipRng(7, 0), SIZE));
  const x = tf.tensor5d(framesToChannelsFirst(frames, SIZE.height, SIZE.width, 'signed'), [1, 3, SIZE.frames, SIZE.height, SIZE.width]);
  const diff = (p: tf.Tensor, q: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(p, q))).dataSync()[0]!);
  const [pa, pb] = [a.encode(x), b.encode(x)];
  const [za, zb] = [pa.mode(), pb.mode()];
  const [ya, yb] = [a.decode(za), b.decode(za)];
  const dz = diff(za, zb);
  const dy = diff(ya, yb);
  tf.dispose([x, za, zb, ya, yb]);
  pa.dispose();
  pb.dispose();
  a.dispose();
  b.dispose();
  shutdownBackend();
  console.log(`${describeBackend()}: latents max |Δ| ${dz.toExponential(2)}, decoded frames max |Δ| ${dy.toExponential(2)}`);
  if (!(dz <= 1e-4 && dy <= 1e-4)) throw new Error(`the widened VAE computes something else (latents ${dz}, frames ${dy}); nothing written`);
  fs.rmSync(args.out, { recursive: true, force: true });
  fs.renameSync(tmp, args.out);
  fs.chmodSync(args.out, 0o755);
  const params = Object.values(out).reduce((n, t) => n + numel(t.shape), 0);
  console.log(`wrote ${args.out}: block_out_channels [${newConfig.block_out_channels}], norm_num_groups ${groups}, ${params} parameters`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
