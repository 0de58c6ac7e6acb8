// Where image to video loses frame 0: the transformer's latent frame 0, or the rest of the video the decoder sees?
// For bench/demo_quality.ts's own i2v cases (benchCombos(12, 'even'), seeds 1000 …, the CLI's defaults: DDIM_Origin,
// DEMO_DEFAULTS.steps, the start-image guidance), generates the latents and decodes four videos: the generated one;
// the clip's own latent frame 0 (VAE posterior mode × scaling factor) with the generated rest; the generated frame 0
// with the clip's own rest; the clip's own latent. Prints frame 0's PSNR against the start image for each (the bench's
// 28 dB bar) and the latent frame 0's mean squared error against the clip's.
//   npx tsx scripts/demo/frame0-probe.ts [--model assets/demo-model] [--prompts 12] [--seeds 4] [--steps N]
// --prompts: the first N of benchCombos (the held-out twelve come first).
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { DEMO_DEFAULTS, defaultGuidance, samplingDefaults } from '../../src/cli/demo.js';
import { FUN_NEGATIVE_PROMPT } from '../../src/cli/generate.js';
import { FRAME0_MIN_DB, benchCases, benchCombos, canonicalCaption, median, psnr, renderClip } from '../../src/data/index.js';
import { framesToChannelsFirst } from '../../src/media/index.js';
import { describeBackend, setBackend, shutdownBackend } from '../../src/nn/backend.js';
import { CogVideoXFunPipeline } from '../../src/pipelines/index.js';
import { decodeOutput } from '../../src/pipelines/common.js';
import { PhiloxGenerator } from '../../src/schedulers/index.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'assets/demo-model' },
    prompts: { type: 'string', default: '12' },
    seeds: { type: 'string', default: '4' },
    steps: { type: 'string', default: String(DEMO_DEFAULTS.steps) },
  },
});
function posInt(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${v}'`);
  return n;
}
const nPrompts = posInt('prompts', args.prompts);
const seeds = posInt('seeds', args.seeds);
const steps = posInt('steps', args.steps);
if (!fs.existsSync(`${args.model}/model_index.json`)) throw new Error(`--model ${args.model}: no model_index.json there`);
const SIZE = { width: 96, height: 64, frames: 17 };

await setBackend();
const guidance = defaultGuidance(samplingDefaults(true), { image: 'start' });
console.log(`backend: ${describeBackend()}; model ${args.model}; ${steps} steps of DDIM_Origin, guidance ${guidance}`);
const pipe = await CogVideoXFunPipeline.fromPretrained(args.model!, { sampler: 'DDIM_Origin' });
const { vae } = pipe;
const before = tf.memory().numTensors;

async function frame0(latents: tf.Tensor5D, start: Uint8Array): Promise<number> {
  const out = await decodeOutput(vae, latents, { outputType: 'frames', chunking: 'fun', rounding: 'truncate', emit: () => {} });
  return psnr(out.videos![0]!.frames[0]!, start);
}

const names = ['generated', 'own latent 0 + generated rest', 'generated latent 0 + own rest', 'own latent'];
const psnrs: number[][] = names.map(() => []);
const mse: number[] = [];
for (const { combo, seed, clip } of benchCases(benchCombos(12, 'even').slice(0, nPrompts), seeds, SIZE)) {
  const frames = renderClip(clip).slice(0, SIZE.frames);
  const start = frames[0]!;
  const gen = (
    await pipe.call({
      prompt: canonicalCaption(combo),
      negativePrompt: FUN_NEGATIVE_PROMPT,
      image: { width: SIZE.width, height: SIZE.height, data: start },
      height: SIZE.height,
      width: SIZE.width,
      numFrames: SIZE.frames,
      numInferenceSteps: steps,
      guidanceScale: guidance,
      generator: new PhiloxGenerator(seed),
      outputType: 'latent',
      onWarning: () => {},
    })
  ).tensor as tf.Tensor5D; // [1, T, C, h, w], scaled
  const own = tf.tidy(() => {
    const post = vae.encode(tf.tensor5d(framesToChannelsFirst(frames, SIZE.height, SIZE.width, 'signed'), [1, 3, SIZE.frames, SIZE.height, SIZE.width]));
    const z = tf.mul(post.mode(), vae.scalingFactor);
    post.dispose();
    return tf.transpose(z, [0, 2, 1, 3, 4]) as tf.Tensor5D;
  });
  const T = gen.shape[1];
  const [ownFirst, genRest] = tf.tidy(() => [tf.concat([tf.slice(own, [0, 0], [1, 1]), tf.slice(gen, [0, 1], [1, T - 1])], 1) as tf.Tensor5D, tf.concat([tf.slice(gen, [0, 0], [1, 1]), tf.slice(own, [0, 1], [1, T - 1])], 1) as tf.Tensor5D]);
  mse.push(tf.tidy(() => tf.mean(tf.square(tf.sub(tf.slice(gen, [0, 0], [1, 1]), tf.slice(own, [0, 0], [1, 1])))).dataSync()[0]!));
  const row = [await frame0(gen, start), await frame0(ownFirst!, start), await frame0(genRest!, start), await frame0(own, start)];
  row.forEach((p, i) => psnrs[i]!.push(p));
  tf.dispose([gen, own, ownFirst!, genRest!]);
  process.stderr.write(`\r${mse.length} cases`);
}
process.stderr.write('\n');
console.log(`\n${mse.length} i2v cases; latent frame 0 MSE, generated against the clip's: median ${median(mse).toFixed(4)}\n`);
console.log(`| decoded | frame 0 median dB | ≥ ${FRAME0_MIN_DB} dB |\n|---|---|---|`);
names.forEach((n, i) => console.log(`| ${n} | ${median(psnrs[i]!).toFixed(2)} | ${psnrs[i]!.filter((p) => p >= FRAME0_MIN_DB).length} / ${mse.length} |`));
console.log(`\ntensors: ${before} before the cases, ${tf.memory().numTensors} after`);
pipe.dispose();
shutdownBackend();
