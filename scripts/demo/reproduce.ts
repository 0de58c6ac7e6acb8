// Runs OUR generation — the `cogvideox-fun generate` code path: flags → resolveRun (the CLI's defaults) → runJob
// (input files read as the CLI reads them, the pipeline, frames written as PNG) — on a model folder for the four
// modes of the InP model, with every random draw recorded, so scripts/demo/reproduce_torch.py can run CogVideoX-Fun's
// own pipeline on the same folder with the same noise and compare frames (issue 15: "the original PyTorch pipeline
// reproduces our frames").
//
//   npx tsx scripts/demo/reproduce.ts --model DIR --out OUT [--steps N] [--modes t2v,i2v,start-end,v2v]
//                                     [--backend tensorflow|wasm]
//
// OUT/manifest.json: per case the resolved request (prompt, negative prompt, size, steps, sampler, guidance, strength,
// seed, max_sequence_length), its input files, and its draws in call order (key, shape, the stage that drew it);
// OUT/<case>.safetensors: `draw.NN` (F32, as drawn) and `frames_u8` [F, H, W, 3] (U8, our output);
// OUT/<case>/: the input PNGs (start.png, end.png, video/frame_NNNN.png) and our frames (frames/frame_NNNN.png).
// Inputs are world clips from src/data (17 frames, 96×64), fixed seeds; steps default to the CLI's for the bundled demo
// model (DEMO_DEFAULTS.steps), and so does guidance (6; unguided with start images, since 2026-12-06), the sampler is
// the CLI's default for an InP folder (DDIM_Origin, as the predict scripts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_DEFAULTS, defaultGuidance, samplingDefaults } from '../../src/cli/demo.js';
import { resolveRun } from '../../src/cli/generate.js';
import { runJob } from '../../src/cli/job.js';
import { parseGenerateArgs } from '../../src/cli/options.js';
import type { JobEvent } from '../../src/cli/protocol.js';
import { canonicalCaption, clipRng, placeClip, renderClip, type Combo } from '../../src/data/index.js';
import { readImage, writePng } from '../../src/media/image.js';
import { shutdownBackend } from '../../src/nn/backend.js';
import { PhiloxGenerator, type Generator } from '../../src/schedulers/generator.js';
import { saveSafetensors, type TensorToWrite } from '../../src/weights/safetensors.js';
import * as tf from '@tensorflow/tfjs-core';

const SIZE = { width: 96, height: 64, frames: 17 };
const WORLD_SEED = 15; // issue 15

type Mode = 't2v' | 'i2v' | 'start-end' | 'v2v';
const MODES: readonly Mode[] = ['t2v', 'i2v', 'start-end', 'v2v'];

interface CaseSpec {
  name: Mode;
  seed: number;
  /** the clip the inputs come from (t2v: none) and the prompt's combination */
  clip?: Combo;
  prompt: Combo;
  strength?: number;
}

// Fixed cases: one seen and one held-out combination among them; V2V asks for another colour than the source's
// (the issue's V2V test: the colour follows the new prompt, the path stays).
const CASES: readonly CaseSpec[] = [
  { name: 't2v', seed: 43, prompt: { color: 'red', shape: 'circle', direction: 'right', background: 'black' } },
  { name: 'i2v', seed: 44, clip: { color: 'blue', shape: 'square', direction: 'left', background: 'white' }, prompt: { color: 'blue', shape: 'square', direction: 'left', background: 'white' } },
  { name: 'start-end', seed: 45, clip: { color: 'yellow', shape: 'triangle', direction: 'right', background: 'black' }, prompt: { color: 'yellow', shape: 'triangle', direction: 'right', background: 'black' } },
  { name: 'v2v', seed: 46, strength: 0.7, clip: { color: 'green', shape: 'circle', direction: 'down', background: 'gray' }, prompt: { color: 'magenta', shape: 'circle', direction: 'down', background: 'gray' } },
];

/** Passes every draw through to a seeded generator and keeps a copy (values, shape, the stage that asked). */
class RecordingGenerator implements Generator {
  readonly draws: { data: Float32Array; shape: number[]; stage: string }[] = [];
  constructor(
    private readonly inner: Generator,
    private readonly stage: () => string,
  ) {}
  randnHost(shape: readonly number[]): Float32Array {
    const data = this.inner.randnHost(shape);
    this.draws.push({ data: data.slice(), shape: shape.slice(), stage: this.stage() });
    return data;
  }
  randn(shape: readonly number[]): tf.Tensor {
    return tf.tensor(this.randnHost(shape), shape.slice(), 'float32');
  }
}

function usage(): string {
  return 'usage: npx tsx scripts/demo/reproduce.ts --model DIR --out OUT [--steps N] [--modes t2v,i2v,start-end,v2v] [--backend tensorflow|wasm]';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, out: { type: 'string' }, steps: { type: 'string' }, modes: { type: 'string' }, backend: { type: 'string' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) return void console.log(usage());
  if (!values.model || !values.out) throw new Error(`--model and --out are required\n${usage()}`);
  const model = path.resolve(values.model);
  const out = path.resolve(values.out);
  const steps = values.steps ?? String(DEMO_DEFAULTS.steps);
  const modes = (values.modes ?? MODES.join(',')).split(',');
  for (const m of modes) if (!MODES.includes(m as Mode)) throw new Error(`--modes: unknown mode "${m}", expected some of ${MODES.join(', ')}`);
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) throw new Error(`--out ${out}: exists and is not empty`);
  fs.mkdirSync(out, { recursive: true });

  const manifest: Record<string, unknown>[] = [];
  for (const c of CASES.filter((c) => modes.includes(c.name))) {
    const dir = path.join(out, c.name);
    fs.mkdirSync(dir);
    const argv = ['--model', model, '--prompt', canonicalCaption(c.prompt), '--frames', String(SIZE.frames), '--height', String(SIZE.height), '--width', String(SIZE.width), '--steps', steps, '--seed', String(c.seed), '--out', path.join(dir, 'frames'), '--quiet'];
    if (values.backend) argv.push('--backend', values.backend);
    const inputs: Record<string, string | string[]> = {};
    if (c.clip) {
      const clip = renderClip(placeClip(c.clip, clipRng(WORLD_SEED, CASES.indexOf(c)), SIZE));
      const png = async (data: Uint8Array, rel: string) => {
        await writePng({ width: SIZE.width, height: SIZE.height, channels: 3, data }, path.join(dir, rel));
        return rel;
      };
      if (c.name === 'i2v' || c.name === 'start-end') {
        inputs.start = await png(clip[0]!, 'start.png');
        argv.push('--image', path.join(dir, inputs.start));
      }
      if (c.name === 'start-end') {
        inputs.end = await png(clip[clip.length - 1]!, 'end.png');
        argv.push('--end-image', path.join(dir, inputs.end));
      }
      if (c.name === 'v2v') {
        fs.mkdirSync(path.join(dir, 'video'));
        inputs.video = await Promise.all(clip.map((f, i) => png(f, `video/frame_${String(i).padStart(4, '0')}.png`)));
        argv.push('--video', path.join(dir, 'video'), '--strength', String(c.strength));
      }
    }
    // the bundled demo's guidance for these inputs (the folder is named with --model, which would give 6 throughout)
    argv.push('--guidance', String(defaultGuidance(samplingDefaults(true), { image: inputs.start as string | undefined, video: inputs.video ? 'video' : undefined })));
    const run = resolveRun(parseGenerateArgs(argv));
    const job = run.job;
    let stage = 'inputs';
    const gen = new RecordingGenerator(new PhiloxGenerator(BigInt(job.seed)), () => stage);
    const warnings: string[] = [];
    const t0 = performance.now();
    await runJob(
      job,
      (e: JobEvent) => {
        if (e.type === 'stage') stage = e.stage;
        if (e.type === 'warning') warnings.push(e.message);
      },
      () => false,
      gen,
    );
    const seconds = (performance.now() - t0) / 1000;
    fs.renameSync(job.outTmp, run.out);
    const names = fs.readdirSync(run.out).filter((n) => n.endsWith('.png')).sort();
    const frames = await Promise.all(names.map((n) => readImage(path.join(run.out, n))));
    const F = frames.length;
    const u8 = new Uint8Array(F * SIZE.height * SIZE.width * 3);
    frames.forEach((f, i) => {
      if (f.width !== SIZE.width || f.height !== SIZE.height || f.channels !== 3) throw new Error(`${names[i]}: ${f.width}×${f.height}×${f.channels}, expected ${SIZE.width}×${SIZE.height}×3`);
      u8.set(f.data, i * f.data.length);
    });
    const tensors: Record<string, TensorToWrite> = { frames_u8: { dtype: 'U8', shape: [F, SIZE.height, SIZE.width, 3], data: u8 } };
    const draws = gen.draws.map((d, i) => {
      const key = `draw.${String(i).padStart(2, '0')}`;
      tensors[key] = { dtype: 'F32', shape: d.shape, data: d.data };
      return { key, shape: d.shape, stage: d.stage };
    });
    saveSafetensors(path.join(out, `${c.name}.safetensors`), tensors);
    manifest.push({
      name: c.name,
      prompt: job.prompt,
      negative_prompt: job.negativePrompt,
      seed: job.seed,
      steps: job.steps,
      sampler: job.sampler,
      guidance: job.guidance,
      strength: job.strength,
      frames: job.frames,
      height: job.height,
      width: job.width,
      max_sequence_length: job.maxSequenceLength,
      inputs,
      draws,
      frames_file: `${c.name}.safetensors`,
      frames_key: 'frames_u8',
      output_frames: F,
      seconds: Number(seconds.toFixed(2)),
      warnings,
    });
    console.log(`${c.name}: ${F} frames in ${seconds.toFixed(1)} s, ${draws.length} draw(s): ${draws.map((d) => `${d.stage} [${d.shape.join(',')}]`).join('; ')}`);
  }
  fs.writeFileSync(path.join(out, 'manifest.json'), JSON.stringify({ model, world_seed: WORLD_SEED, cases: manifest }, null, 2) + '\n');
  await shutdownBackend();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
