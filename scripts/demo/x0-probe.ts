// Where do generated frames lose quality: the transformer's denoising or the decoder? For one world clip, decodes
// (a) the clean latent, (b) the clean latent plus Gaussian noise of a given std, (c) the transformer's one-step
// estimate x̂0 = √ᾱ·x_t − √(1−ᾱ)·v̂ from x_t at fixed timesteps (text-to-video conditioning, the clip's caption), and
// prints the latent RMSE and frame PSNR of each against the clip; --strip writes the decoded frames.
//   npx tsx scripts/demo/x0-probe.ts --model DIR [--transformer DIR] [--timesteps 100,300,500,700,900]
//       [--sigmas 0.02,0.05,0.1,0.2] [--clip 0] [--strip DIR]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { allCombos, canonicalCaption, clipRng, isHeldOut, placeClip, renderClip } from '../../src/data/index.js';
import { framesToChannelsFirst, writePng } from '../../src/media/index.js';
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
    timesteps: { type: 'string', default: '100,300,500,700,900' },
    sigmas: { type: 'string', default: '0.02,0.05,0.1,0.2' },
    clip: { type: 'string', default: '0' },
    strip: { type: 'string' },
  },
});
if (!args.model) throw new Error('--model DIR is required');
const model = args.model;
const SIZE = { width: 96, height: 64, frames: 17 };
const [F, H, W] = [SIZE.frames, SIZE.height, SIZE.width];
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

await setBackend();
console.log(`backend: ${describeBackend()}; model ${model}`);
const trainable = allCombos().filter((c) => !isHeldOut(c));
const k = Number(args.clip);
const combo = trainable[(k * 37) % trainable.length]!;
const frames = renderClip(placeClip(combo, clipRng(1, k), SIZE));
const px = framesToChannelsFirst(frames, H, W, 'signed');

const vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(model, 'vae'));
const sf = vae.config.scaling_factor;
const x = tf.tensor5d(px, [1, 3, F, H, W]);
const dist = vae.encode(x);
const z = tf.tidy(() => tf.transpose(tf.mul(dist.mode(), sf), [0, 2, 1, 3, 4]) as tf.Tensor5D); // [1, f, C, h, w]
dist.dispose();
console.log(`clip ${k}: "${canonicalCaption(combo)}"; latent ${z.shape.join('×')}, std ${tf.tidy(() => tf.sqrt(tf.moments(z).variance).dataSync()[0]!).toFixed(3)}`);

async function report(name: string, lat: tf.Tensor5D): Promise<void> {
  const rmse = tf.tidy(() => tf.sqrt(tf.mean(tf.square(tf.sub(lat, z)))).dataSync()[0]!);
  const y = tf.tidy(() => vae.decode(tf.div(tf.transpose(lat, [0, 2, 1, 3, 4]), sf) as tf.Tensor5D));
  const mse = tf.tidy(() => tf.mean(tf.square(tf.sub(tf.clipByValue(y, -1, 1), x))).dataSync()[0]! / 4);
  console.log(`| ${name} | ${rmse.toFixed(4)} | ${(10 * Math.log10(1 / mse)).toFixed(2)} |`);
  if (args.strip) {
    const u8 = tf.tidy(() => tf.cast(tf.round(tf.mul(tf.add(tf.clipByValue(y, -1, 1), 1), 127.5)), 'int32').dataSync());
    const picked = [0, 4, 8, 12, 16];
    const data = new Uint8Array(W * picked.length * H * 3);
    picked.forEach((t, j) => {
      for (let yy = 0; yy < H; yy++) for (let xx = 0; xx < W; xx++) for (let ch = 0; ch < 3; ch++) {
        data[((yy * W * picked.length) + j * W + xx) * 3 + ch] = u8[((ch * F + t) * H + yy) * W + xx]!;
      }
    });
    fs.mkdirSync(args.strip, { recursive: true });
    await writePng({ width: W * picked.length, height: H, channels: 3, data }, path.join(args.strip, `${name.replaceAll(' ', '_')}.png`));
  }
  y.dispose();
}

console.log('| latent | RMSE vs clean | frame PSNR dB |\n|---|---|---|');
await report('clean', z);
const gen = new PhiloxGenerator(7);
for (const s of args.sigmas.split(',').map(Number)) {
  const n = gen.randn(z.shape);
  const lat = tf.tidy(() => tf.add(z, tf.mul(n, s)) as tf.Tensor5D);
  await report(`noise ${s}`, lat);
  tf.dispose([n, lat]);
}
if (args.transformer) {
  const tokenizer = await T5Tokenizer.fromPretrained(path.join(model, 'tokenizer'));
  const t5 = await T5EncoderModel.fromPretrained(path.join(model, 'text_encoder'));
  const maxLength = readJson<{ max_text_seq_length?: number }>(path.join(args.transformer, 'config.json')).max_text_seq_length ?? 226;
  const embeds = t5.forward(tokenizer.call([canonicalCaption(combo)], { maxLength, padding: 'max_length', truncation: true }).inputIds);
  t5.dispose();
  const net = await CogVideoXTransformer3DModel.fromPretrained(args.transformer);
  const schedule = new NoiseSchedule(readJson<ConstructorParameters<typeof NoiseSchedule>[0]>(path.join(model, 'scheduler', 'scheduler_config.json')));
  for (const t of args.timesteps.split(',').map(Number)) {
    const n = gen.randn(z.shape);
    const x0 = tf.tidy(() => {
      const noisy = schedule.addNoise(z, n, [t]);
      const [, f, C, h, w] = z.shape;
      const v = net.forward({ hiddenStates: noisy as tf.Tensor5D, encoderHiddenStates: embeds, timestep: [t], inpaintLatents: tf.zeros([1, f, C + 1, h, w]) as tf.Tensor5D });
      return schedule.predictX0(noisy, v, [t]) as tf.Tensor5D;
    });
    await report(`x0 from t ${t}`, x0);
    tf.dispose([n, x0]);
  }
  // DDIM (η = 0, v-prediction) from x_t at t = start down to 0 in 100-step strides with the training schedule's ᾱ:
  // a multi-step denoise that bypasses the pipeline, to tell sampler drift from a pipeline difference
  for (const start of [699, 999]) {
    const n = gen.randn(z.shape);
    let x = schedule.addNoise(z, n, [start]) as tf.Tensor5D;
    n.dispose();
    for (let t = start; t >= 0; t -= 100) {
      const prev = t - 100;
      const a = schedule.alphasCumprod[t]!;
      const ap = prev >= 0 ? schedule.alphasCumprod[prev]! : 1;
      const next = tf.tidy(() => {
        const [, f, C, h, w] = z.shape;
        const v = net.forward({ hiddenStates: x, encoderHiddenStates: embeds, timestep: [t], inpaintLatents: tf.zeros([1, f, C + 1, h, w]) as tf.Tensor5D });
        const x0 = tf.sub(tf.mul(x, Math.sqrt(a)), tf.mul(v, Math.sqrt(1 - a)));
        const eps = tf.add(tf.mul(v, Math.sqrt(a)), tf.mul(x, Math.sqrt(1 - a)));
        return tf.add(tf.mul(x0, Math.sqrt(ap)), tf.mul(eps, Math.sqrt(1 - ap))) as tf.Tensor5D;
      });
      x.dispose();
      x = next;
    }
    await report(`ddim from ${start}`, x);
    x.dispose();
  }
  net.dispose();
  embeds.dispose();
}
tf.dispose([x, z]);
vae.dispose();
shutdownBackend();
