// Where a shape is rounded off between the latent and the generated video. For a few world clips of one shape (the
// first in DIR/world.json that stay in frame, one per colour × background), the shape the bench's analyzer reads (fill
// ratio of the box: ≥ 0.9 square, < 0.66 triangle, else circle) after
//   - the VAE alone (encode, posterior mode → decode): what a transformer could at best hand the decoder;
//   - one transformer step per --timesteps t: the clip's latent noised to t (fixed noise), the clip's canonical caption,
//     text-to-video conditioning (zero inpaint latents), x̂0 (NoiseSchedule.predictX0: √ᾱ_t·x_t − √(1−ᾱ_t)·v̂ for v-prediction), decoded;
//   - text to video from that caption (the CLI's sampler, --steps (default DEMO_DEFAULTS.steps), the predict scripts'
//     negative prompt) at each --guidance, seeds 1000 and 1001;
// per --transformer folder (each swapped into --model's folder). --write-metadata FILE writes the clips as a Fun
// metadata file with their canonical captions, so a run can be trained on them alone: the overfit test of
// scripts/demo/README.md ("… a transformer that memorises eight squares still draws them round").
//   npx tsx scripts/demo/shape-probe.ts --model DIR --world DIR [--transformer DIR[,DIR…]] [--shape square] [--clips 8]
//       [--timesteps 50,200,400,700] [--guidance 1,6] [--steps N] [--write-metadata FILE]
// Prints one line per row: the clips' reads as S (square) / c (circle) / t (triangle) / - (no object) and the fill.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { DEMO_DEFAULTS } from '../../src/cli/demo.js';
import { FUN_NEGATIVE_PROMPT } from '../../src/cli/generate.js';
import { cliDefaultSampler, inspectModelFolder } from '../../src/cli/model_folder.js';
import { SHAPES, analyzeVideo, canonicalCaption, renderClip, type ClipSpec, type Shape, type WorldEntry } from '../../src/data/index.js';
import { framesToChannelsFirst } from '../../src/media/index.js';
import { T5EncoderModel } from '../../src/models/t5.js';
import { T5Tokenizer } from '../../src/models/t5_tokenizer.js';
import { CogVideoXTransformer3DModel } from '../../src/models/transformer.js';
import { AutoencoderKLCogVideoX } from '../../src/models/vae.js';
import { describeBackend, setBackend, shutdownBackend } from '../../src/nn/backend.js';
import { CogVideoXFunPipeline, toUint8Videos } from '../../src/pipelines/index.js';
import { PhiloxGenerator } from '../../src/schedulers/index.js';
import { NoiseSchedule } from '../../src/training/schedule.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    world: { type: 'string' },
    transformer: { type: 'string' },
    shape: { type: 'string', default: 'square' },
    clips: { type: 'string', default: '8' },
    timesteps: { type: 'string', default: '50,200,400,700' },
    guidance: { type: 'string', default: '1,6' },
    steps: { type: 'string', default: String(DEMO_DEFAULTS.steps) },
    'write-metadata': { type: 'string' },
  },
});
const need = (name: string, v: string | undefined, file: string): string => {
  if (!v) throw new Error(`--${name} DIR is required`);
  if (!fs.existsSync(path.join(v, file))) throw new Error(`--${name} ${v}: no ${file} there`);
  return v;
};
const model = need('model', args.model, 'model_index.json');
const worldDir = need('world', args.world, 'world.json');
if (!(SHAPES as readonly string[]).includes(args.shape!)) throw new Error(`--shape: expected one of ${SHAPES.join(', ')}, got ${args.shape}`);
const shape = args.shape as Shape;
const nClips = Number(args.clips);
if (!Number.isInteger(nClips) || nClips < 1) throw new Error(`--clips must be a positive integer, got '${args.clips}'`);
const numbers = (name: string, v: string, ok: (x: number) => boolean): number[] => {
  const xs = v.split(',').map(Number);
  if (xs.some((x) => !ok(x))) throw new Error(`--${name}: got '${v}'`);
  return xs;
};
const timesteps = numbers('timesteps', args.timesteps!, (t) => Number.isInteger(t) && t >= 0 && t < 1000);
const guidances = numbers('guidance', args.guidance!, (g) => Number.isFinite(g) && g >= 1);
const [steps] = numbers('steps', args.steps!, (n) => Number.isInteger(n) && n >= 1);
const transformers = (args.transformer ?? path.join(model, 'transformer')).split(',');
for (const t of transformers) need('transformer', t, 'config.json');
const SIZE = { width: 96, height: 64, frames: 17 };

// the clips: the first of the shape that stay in frame, one per colour × background
const world = JSON.parse(fs.readFileSync(path.join(worldDir, 'world.json'), 'utf8')) as { clips: WorldEntry[] };
const picked: WorldEntry[] = [];
const seenKeys = new Set<string>();
for (const c of world.clips) {
  const key = `${c.spec.color}/${c.spec.background}`;
  if (c.type !== 'video' || c.spec.shape !== shape || c.spec.entering || seenKeys.has(key)) continue;
  seenKeys.add(key);
  picked.push(c);
  if (picked.length === nClips) break;
}
if (picked.length < nClips) throw new Error(`${worldDir}/world.json: only ${picked.length} ${shape} clips staying in frame with distinct colour × background, ${nClips} asked`);
const specs: ClipSpec[] = picked.map((c) => c.spec);
const captions = specs.map((s) => canonicalCaption(s));
if (args['write-metadata']) {
  const rows = picked.map((c, i) => ({ file_path: c.file_path, text: captions[i]!, type: 'video', width: c.width, height: c.height }));
  fs.writeFileSync(args['write-metadata'], JSON.stringify(rows, null, 1));
  console.log(`wrote ${args['write-metadata']}: ${rows.length} clips`);
}

await setBackend();
console.log(`backend: ${describeBackend()}; model ${model}; ${os.cpus()[0]?.model ?? '?'}`);
for (const [i, c] of picked.entries()) console.log(`  clip ${i}: ${c.file_path} "${captions[i]}"`);

const vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(model, 'vae'));
const sf = vae.config.scaling_factor;
/** The analyzer's read of a video, "S0.93". */
const read = (frames: readonly Uint8Array[]): string => {
  const a = analyzeVideo({ frames, width: SIZE.width, height: SIZE.height });
  return `${a.shape == null ? '-' : a.shape === 'square' ? 'S' : a.shape[0]}${(a.fillRatio ?? 0).toFixed(2)}`;
};
/** Latent [1, f, C, h, w] (× scaling factor, the transformer's layout) → frames. */
const decode = (z: tf.Tensor5D): Uint8Array[] => {
  const y = tf.tidy(() => {
    const x = vae.decode(tf.div(tf.transpose(z, [0, 2, 1, 3, 4]), sf) as tf.Tensor5D);
    return tf.clipByValue(tf.add(tf.mul(x, 0.5), 0.5), 0, 1) as tf.Tensor5D;
  });
  const [v] = toUint8Videos(y, 'round');
  y.dispose();
  return [...v!.frames];
};
const latents = specs.map((s) =>
  tf.tidy(() => {
    const { frames: F, height: H, width: W } = SIZE;
    const x = tf.tensor5d(framesToChannelsFirst(renderClip(s).slice(0, F), H, W, 'signed'), [1, 3, F, H, W]);
    const post = vae.encode(x);
    const z = tf.transpose(tf.mul(post.mode(), sf), [0, 2, 1, 3, 4]) as tf.Tensor5D;
    post.dispose();
    return z;
  }),
);
const row = (label: string, cells: string[]) => console.log(`${label.padEnd(28)} ${cells.join(' ')}`);
row('clip', specs.map((s) => read(renderClip(s).slice(0, SIZE.frames))));
row('VAE round trip', latents.map(decode).map(read));

const tokenizer = await T5Tokenizer.fromPretrained(path.join(model, 'tokenizer'));
const t5 = await T5EncoderModel.fromPretrained(path.join(model, 'text_encoder'));
const schedule = new NoiseSchedule(JSON.parse(fs.readFileSync(path.join(model, 'scheduler', 'scheduler_config.json'), 'utf8')) as ConstructorParameters<typeof NoiseSchedule>[0]);
const gen = new PhiloxGenerator(5);
const noises = latents.map((z) => timesteps.map(() => gen.randn(z.shape)));

for (const dir of transformers) {
  const net = await CogVideoXTransformer3DModel.fromPretrained(dir);
  const maxLength = net.config.max_text_seq_length ?? 226;
  const embeds = t5.forward(tokenizer.call(captions, { maxLength, padding: 'max_length', truncation: true }).inputIds);
  for (const [ti, t] of timesteps.entries()) {
    const cells = latents.map((z, k) => {
      const x0 = tf.tidy(() => {
        const xt = schedule.addNoise(z, noises[k]![ti]!, [t]) as tf.Tensor5D;
        const [, f, C, h, w] = z.shape;
        const v = net.forward({ hiddenStates: xt, encoderHiddenStates: tf.slice(embeds, [k], [1]) as tf.Tensor3D, timestep: [t], inpaintLatents: tf.zeros([1, f, C + 1, h, w]) as tf.Tensor5D });
        return schedule.predictX0(xt, v, [t]) as tf.Tensor5D;
      });
      const r = read(decode(x0));
      x0.dispose();
      return r;
    });
    row(`x̂0 at t ${t}`, cells);
  }
  embeds.dispose();
  net.dispose();

  // text to video through the pipeline, with this transformer in the model's folder (a folder of links)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shape-probe-'));
  try {
    for (const p of fs.readdirSync(model)) fs.symlinkSync(path.resolve(p === 'transformer' ? dir : path.join(model, p)), path.join(tmp, p));
    const pipe = await CogVideoXFunPipeline.fromPretrained(tmp, { sampler: cliDefaultSampler(inspectModelFolder(tmp).kind) });
    for (const g of guidances) {
      const cells: string[] = [];
      for (const caption of captions) {
        for (const seed of [1000, 1001]) {
          const out = await pipe.call({ prompt: caption, height: SIZE.height, width: SIZE.width, numFrames: SIZE.frames, numInferenceSteps: steps, guidanceScale: g, negativePrompt: FUN_NEGATIVE_PROMPT, generator: new PhiloxGenerator(seed), onWarning: () => {} });
          cells.push(read(out.videos![0]!.frames));
        }
      }
      row(`t2v, ${steps} steps, guidance ${g}`, cells);
    }
    pipe.dispose();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`  (${dir})`);
}
t5.dispose();
vae.dispose();
tf.dispose(latents);
tf.dispose(noises.flat());
await shutdownBackend();
