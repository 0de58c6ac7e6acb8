// Makes a trained CogVideoX transformer's tokens smaller (patch_size p → p/k) while keeping what its blocks learnt, so
// the demo transformer can go on training at a finer token grid instead of starting over. Only the two tensors that
// see a patch change shape (diffusers v0.32.2 models/embeddings.py CogVideoXPatchEmbed.proj, a p×p conv; and
// models/transformers/cogvideox_transformer_3d.py proj_out, whose p·p·C rows unpatchify as (C, p, p)):
//   patch_embed.proj.weight[:, :, i, j] = Σ_{a,b<k} old[:, :, k·i+a, k·j+b]   (the old conv on a k× nearest-upsampled patch)
//   proj_out row (c, i, j)              = mean_{a,b<k} old row (c, k·i+a, k·j+b)  (the old output, k×k average-pooled)
// With sample_height/width divided by k as well, the 3D RoPE positions stay where they were in pixels
// (pipeline_cogvideox.py _prepare_rotary_positional_embeddings: positions are a linspace over the base grid
// sample/p), and then, exactly, new(x) = avgpool_k(old(upsample_k(x))): every token the new transformer sees is one
// the old one saw. The script checks that identity on random inputs before writing (max |Δ| ≤ 5e-5).
// --positions pixels (default) writes that config; --positions indices keeps sample_height/width (RoPE step = one
// new token, twice as fine a grid of integer positions), which the checked identity does not cover.
//   npx tsx scripts/demo/repatch-dit.ts --transformer SRC_DIR --out DEST_DIR [--patch 2] [--positions pixels|indices] [--seed 0]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { CogVideoXTransformer3DModel } from '../../src/models/transformer.js';
import { describeBackend, setBackend, shutdownBackend } from '../../src/nn/backend.js';
import { PhiloxGenerator } from '../../src/schedulers/index.js';
import { writeTransformerFolder } from '../../src/training/checkpoint.js';
import { WeightStore, readJson } from '../../src/weights/checkpoint.js';
import { numel, type TensorToWrite } from '../../src/weights/safetensors.js';

const USAGE = 'usage: npx tsx scripts/demo/repatch-dit.ts --transformer SRC_DIR --out DEST_DIR [--patch 2] [--positions pixels|indices] [--seed 0]';
const { values: args } = parseArgs({
  options: {
    transformer: { type: 'string' },
    out: { type: 'string' },
    patch: { type: 'string', default: '2' },
    positions: { type: 'string', default: 'pixels' },
    seed: { type: 'string', default: '0' },
  },
});
if (!args.transformer || !args.out) throw new Error(USAGE);
const src = args.transformer;
if (path.resolve(src) === path.resolve(args.out)) throw new Error('--out must differ from --transformer');
if (args.positions !== 'pixels' && args.positions !== 'indices') throw new Error(`--positions must be pixels or indices, got '${args.positions}'`);
type Config = { patch_size: number; patch_size_t: number | null; sample_height: number; sample_width: number; out_channels: number; use_rotary_positional_embeddings: boolean; [k: string]: unknown };
const config = readJson(path.join(src, 'config.json')) as Config;
const p = config.patch_size;
const q = Number(args.patch);
const k = p / q;
if (!Number.isInteger(q) || q < 1 || !Number.isInteger(k) || k < 2) {
  throw new Error(`--patch ${args.patch}: needs a proper divisor of ${src}/config.json patch_size ${p}`);
}
if (config.patch_size_t) throw new Error(`${src}/config.json patch_size_t ${config.patch_size_t}: only CogVideoX 1.0 transformers (no temporal patch) are handled`);
if (!config.use_rotary_positional_embeddings) throw new Error(`${src}/config.json: needs use_rotary_positional_embeddings (a sincos table would have to be rebuilt)`);
if (config.sample_height % k !== 0 || config.sample_width % k !== 0) {
  throw new Error(`${src}/config.json sample ${config.sample_height}×${config.sample_width} is not divisible by ${k}`);
}
const C = config.out_channels;

const store = WeightStore.open(src);
const tensors: [string, TensorToWrite][] = [];
for (const name of store.keys()) {
  const t = store.read(name);
  const old = t.toFloat32();
  if (name === 'patch_embed.proj.weight') {
    const [D, Cin] = t.shape as [number, number, number, number];
    if (t.shape[2] !== p || t.shape[3] !== p) throw new Error(`${name}: shape [${t.shape}], expected [${D}, ${Cin}, ${p}, ${p}]`);
    const data = new Float32Array(D * Cin * q * q);
    for (let o = 0; o < D * Cin; o++) {
      for (let i = 0; i < q; i++) for (let j = 0; j < q; j++) {
        let s = 0;
        for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) s += old[o * p * p + (k * i + a) * p + (k * j + b)]!;
        data[o * q * q + i * q + j] = s;
      }
    }
    tensors.push([name, { dtype: 'F32', shape: [D, Cin, q, q], data }]);
  } else if (name === 'proj_out.weight' || name === 'proj_out.bias') {
    if (t.shape[0] !== C * p * p) throw new Error(`${name}: shape [${t.shape}], expected ${C * p * p} rows (out_channels ${C} × ${p}²)`);
    const cols = t.shape.length > 1 ? t.shape[1]! : 1;
    const data = new Float32Array(C * q * q * cols);
    for (let c = 0; c < C; c++) for (let i = 0; i < q; i++) for (let j = 0; j < q; j++) {
      const to = ((c * q + i) * q + j) * cols;
      for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) {
        const from = ((c * p + k * i + a) * p + (k * j + b)) * cols;
        for (let x = 0; x < cols; x++) data[to + x]! += old[from + x]! / (k * k);
      }
    }
    tensors.push([name, { dtype: 'F32', shape: t.shape.length > 1 ? [C * q * q, cols] : [C * q * q], data }]);
  } else {
    tensors.push([name, { dtype: 'F32', shape: t.shape, data: old }]);
  }
}
store.close();

/** [B, T, C, h, w] → [B, T, C, k·h, k·w], each value repeated k × k. */
const upsample = (x: tf.Tensor5D) => tf.tidy(() => {
  const [B, T, Ch, h, w] = x.shape;
  return tf.reshape(tf.tile(tf.reshape(x, [B, T, Ch, h, 1, w, 1]), [1, 1, 1, 1, k, 1, k]), [B, T, Ch, h * k, w * k]) as tf.Tensor5D;
});
/** [B, T, C, k·h, k·w] → [B, T, C, h, w], the mean of each k × k block. */
const avgpool = (x: tf.Tensor5D) => tf.tidy(() => {
  const [B, T, Ch, H, W] = x.shape;
  return tf.mean(tf.reshape(x, [B, T, Ch, H / k, k, W / k, k]), [4, 6]) as tf.Tensor5D;
});

// Check before writing, on the pixel-positions config: new(x) = avgpool(old(upsample(x))).
fs.mkdirSync(path.dirname(path.resolve(args.out)), { recursive: true });
const tmp = fs.mkdtempSync(path.join(path.dirname(path.resolve(args.out)), '.repatch-'));
try {
  const pixels = { ...config, patch_size: q, sample_height: config.sample_height / k, sample_width: config.sample_width / k };
  const final = args.positions === 'pixels' ? pixels : { ...config, patch_size: q };
  writeTransformerFolder(tmp, pixels, tensors);
  await setBackend();
  const [a, b] = [await CogVideoXTransformer3DModel.fromPretrained(src), await CogVideoXTransformer3DModel.fromPretrained(tmp)];
  const c = a.config;
  const rng = new PhiloxGenerator(Number(args.seed));
  // a latent grid the old patch divides after upsampling and the new one before: h, w multiples of q
  const [T, h, w] = [Math.floor((c.sample_frames - 1) / c.temporal_compression_ratio) + 1, c.sample_height, c.sample_width];
  const x = {
    hiddenStates: rng.randn([2, T, C, h, w]) as tf.Tensor5D,
    inpaintLatents: rng.randn([2, T, c.in_channels - C, h, w]) as tf.Tensor5D,
    encoderHiddenStates: rng.randn([2, c.max_text_seq_length, c.text_embed_dim]) as tf.Tensor3D,
    timestep: [37, 801],
  };
  const up = { ...x, hiddenStates: upsample(x.hiddenStates), inpaintLatents: upsample(x.inpaintLatents) };
  const yOld = a.forward(up);
  const want = avgpool(yOld);
  const got = b.forward(x);
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(want, got))).dataSync()[0]!);
  const scale = tf.tidy(() => tf.max(tf.abs(want)).dataSync()[0]!);
  tf.dispose([yOld, want, got, up.hiddenStates, up.inpaintLatents, x.hiddenStates, x.inpaintLatents, x.encoderHiddenStates]);
  a.dispose();
  b.dispose();
  shutdownBackend();
  console.log(`${describeBackend()}: new(x) against avgpool(old(upsample(x))) max |Δ| ${d.toExponential(2)} (max |output| ${scale.toFixed(3)})`);
  // 5e-5: ten times the largest seen (4.8e-6 on the bundle, 5.3e-6 on an fp32 checkpoint); a wrong row order gives ~11
  if (!(d <= 5e-5)) throw new Error(`the repatched transformer does not compute the pooled old one (max |Δ| ${d}); nothing written`);
  // the weights are the same for both position choices; only the config differs (written as writeTransformerFolder does)
  if (final !== pixels) fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(final, null, 2) + '\n');
  fs.rmSync(args.out, { recursive: true, force: true });
  fs.renameSync(tmp, args.out);
  fs.chmodSync(args.out, 0o755);
  const params = tensors.reduce((n, [, t]) => n + numel(t.shape), 0);
  console.log(`wrote ${args.out}: patch_size ${p} → ${q}, sample ${final.sample_height}×${final.sample_width} (positions: ${args.positions}), ${params} parameters`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
