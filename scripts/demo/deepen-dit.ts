// Deepens a CogVideoX transformer without changing what it computes, so a trained demo transformer can go on
// training with more layers instead of starting over. After each of the blocks named by --after, a new block is
// inserted: a copy of that block with its four gates zeroed. A CogVideoXBlock adds gate·attn and gate·ff to the
// residual stream (diffusers v0.32.2 models/transformers/cogvideox_transformer_3d.py, CogVideoXBlock.forward), and
// the gates are rows of its AdaLN linears (models/normalization.py, CogVideoXLayerNormZero: linear(silu(temb)) chunks
// into shift, scale, gate, enc_shift, enc_scale, enc_gate), so with those rows and their biases zero the new block
// adds exactly 0 (the adaLN-Zero start of DiT). Training opens the gates first (their gradient is the block's output),
// then the copied attention and feed-forward move.
// The result is checked before it is written: both transformers on the same random latents, inpaint latents, text and
// timesteps must agree to max |Δ| ≤ 1e-6.
//   npx tsx scripts/demo/deepen-dit.ts --transformer SRC_DIR --out DEST_DIR [--after 0,1,2,3,4,5] [--seed 0]
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

const USAGE = 'usage: npx tsx scripts/demo/deepen-dit.ts --transformer SRC_DIR --out DEST_DIR [--after 0,1,2,3,4,5] [--seed 0]';
const { values: args } = parseArgs({
  options: { transformer: { type: 'string' }, out: { type: 'string' }, after: { type: 'string', default: '0,1,2,3,4,5' }, seed: { type: 'string', default: '0' } },
});
if (!args.transformer || !args.out) throw new Error(USAGE);
const src = args.transformer;
if (path.resolve(src) === path.resolve(args.out)) throw new Error('--out must differ from --transformer');
const config = readJson(path.join(src, 'config.json')) as { num_layers: number; num_attention_heads: number; attention_head_dim: number; [k: string]: unknown };
const oldLayers = config.num_layers;
const after = args.after.split(',').map((s) => Number(s.trim()));
if (after.some((i) => !Number.isInteger(i) || i < 0 || i >= oldLayers) || new Set(after).size !== after.length) {
  throw new Error(`--after ${args.after}: needs distinct block indices in 0..${oldLayers - 1} (${src}/config.json num_layers ${oldLayers})`);
}
const dim = config.num_attention_heads * config.attention_head_dim;

// The new order: each old block, then its zero-gated copy when it is named by --after.
const order: { from: number; zeroGates: boolean }[] = [];
for (let i = 0; i < oldLayers; i++) {
  order.push({ from: i, zeroGates: false });
  if (after.includes(i)) order.push({ from: i, zeroGates: true });
}

const store = WeightStore.open(src);
const tensors: [string, TensorToWrite][] = [];
const BLOCK = /^transformer_blocks\.(\d+)\.(.*)$/;
const blockKeys = new Map<number, { name: string; suffix: string }[]>(); // block index → its tensors
for (const name of store.keys()) {
  const m = BLOCK.exec(name);
  if (m) {
    const i = Number(m[1]);
    blockKeys.set(i, [...(blockKeys.get(i) ?? []), { name, suffix: m[2]! }]);
    continue;
  }
  const t = store.read(name);
  tensors.push([name, { dtype: 'F32', shape: t.shape, data: t.toFloat32() }]);
}
order.forEach(({ from, zeroGates }, to) => {
  for (const { name, suffix } of blockKeys.get(from) ?? []) {
    const t = store.read(name);
    const data = t.toFloat32().slice(); // a block and its copy must not share a buffer
    // norm1.linear / norm2.linear: [6·dim, time_embed_dim] weight and [6·dim] bias; chunks 2 and 5 are the gates
    if (zeroGates && /^norm[12]\.linear\.(weight|bias)$/.test(suffix)) {
      if (t.shape[0] !== 6 * dim) throw new Error(`${name}: shape [${t.shape}], expected ${6 * dim} rows (6 × inner dim ${dim})`);
      const row = t.shape.length > 1 ? t.shape[1]! : 1;
      for (const chunk of [2, 5]) data.fill(0, chunk * dim * row, (chunk + 1) * dim * row);
    }
    tensors.push([`transformer_blocks.${to}.${suffix}`, { dtype: 'F32', shape: t.shape, data }]);
  }
});
store.close();

// Check before writing: the same inputs through both transformers.
fs.mkdirSync(path.dirname(path.resolve(args.out)), { recursive: true });
const tmp = fs.mkdtempSync(path.join(path.dirname(path.resolve(args.out)), '.deepen-'));
try {
  const newConfig = { ...config, num_layers: order.length };
  writeTransformerFolder(tmp, newConfig, tensors);
  await setBackend();
  const [a, b] = [await CogVideoXTransformer3DModel.fromPretrained(src), await CogVideoXTransformer3DModel.fromPretrained(tmp)];
  const c = a.config;
  const rng = new PhiloxGenerator(Number(args.seed));
  const [T, h, w] = [Math.floor((c.sample_frames - 1) / c.temporal_compression_ratio) + 1, c.sample_height, c.sample_width];
  const latent = c.out_channels;
  const inputs = {
    hiddenStates: rng.randn([2, T, latent, h, w]) as tf.Tensor5D,
    inpaintLatents: rng.randn([2, T, c.in_channels - latent, h, w]) as tf.Tensor5D,
    encoderHiddenStates: rng.randn([2, c.max_text_seq_length, c.text_embed_dim]) as tf.Tensor3D,
    timestep: [37, 801],
  };
  const [ya, yb] = [a.forward(inputs), b.forward(inputs)];
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0]!);
  const scale = tf.tidy(() => tf.max(tf.abs(ya)).dataSync()[0]!);
  tf.dispose([ya, yb, inputs.hiddenStates, inputs.inpaintLatents, inputs.encoderHiddenStates]);
  a.dispose();
  b.dispose();
  shutdownBackend();
  console.log(`${describeBackend()}: outputs max |Δ| ${d.toExponential(2)} (max |output| ${scale.toFixed(3)})`);
  if (!(d <= 1e-6)) throw new Error(`the deepened transformer computes something else (max |Δ| ${d}); nothing written`);
  fs.rmSync(args.out, { recursive: true, force: true });
  fs.renameSync(tmp, args.out);
  fs.chmodSync(args.out, 0o755);
  const params = tensors.reduce((n, [, t]) => n + numel(t.shape), 0);
  console.log(`wrote ${args.out}: num_layers ${oldLayers} → ${order.length} (copies after blocks ${after.join(',')}), ${params} parameters`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
