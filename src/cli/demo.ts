// The bundled demo checkpoint (assets/demo-model, a tiny CogVideoX-Fun InP layout) that `generate` runs when no
// --model is given, and what the user is told about it. What the model knows (its world, held-out combinations, grid,
// whether it is trained) is in the folder's demo.json (written by scripts/demo/bundle.ts); without demo.json the
// folder is the random-weights stand-in and the CLI says so.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Names another folder to use as the bundled demo model (e.g. a fresh `scripts/demo/bundle.ts` output, tried before it
 * replaces assets/demo-model; the server tests point it at a temporary bundle). Honoured by generate, info, serve and
 * worker alike, since they all find the demo model here. */
export const DEMO_MODEL_ENV = 'COGVIDEOX_DEMO_MODEL';

let found: { from: string | undefined; dir: string } | undefined;

/** assets/demo-model (found from src/cli or dist/cli alike: both two levels below the package root), or $COGVIDEOX_DEMO_MODEL. */
export function demoModelDir(): string {
  const from = process.env[DEMO_MODEL_ENV] || undefined;
  if (found && found.from === from) return found.dir; // once there, it stays (the server asks for every submission)
  if (from !== undefined) {
    const dir = path.resolve(from);
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${DEMO_MODEL_ENV}=${from}: not a folder (it names the folder used as the demo model)`);
    return (found = { from, dir }).dir;
  }
  const dir = fileURLToPath(new URL('../../assets/demo-model', import.meta.url));
  if (!fs.existsSync(dir)) throw new Error(`the bundled demo model is missing (${dir}); reinstall the package or pass --model DIR`);
  return (found = { from, dir }).dir;
}

/** Demo defaults: the tiny model's own grid and few steps, so a run takes seconds. `guidanceWithImage`: with a start
 * (and end) image and no source video, classifier-free guidance off. Guidance scales the conditional − unconditional
 * gap on every latent frame, the given ones included, and the tiny model's two branches disagree there; at the
 * predict scripts' 6 its copied first frame comes out blotted. Measured per guidance in scripts/demo/README.md
 * ("Guidance per input"); text and video inputs keep 6, which the direction and the recolouring of v2v need. */
export const DEMO_DEFAULTS = { steps: 10, prompt: 'A cute cat is playing the guitar.', guidance: 6, guidanceWithImage: 1 };

/** What a run gets when the request names no steps or guidance (CLI, server and page alike). */
export interface SamplingDefaults {
  steps: number;
  guidance: number;
  /** with a start image (and end image) and no source video */
  guidanceWithImage: number;
}

/** The predict scripts' 50 steps and guidance 6; the demo model its own. */
export function samplingDefaults(demo: boolean): SamplingDefaults {
  const { steps, guidance, guidanceWithImage } = DEMO_DEFAULTS;
  return demo ? { steps, guidance, guidanceWithImage } : { steps: 50, guidance: 6, guidanceWithImage: 6 };
}

/** The guidance for a run's inputs (`image`: a start image; `video`: a source video). */
export function defaultGuidance(d: SamplingDefaults, inputs: { image?: string; video?: string }): number {
  return inputs.image !== undefined && inputs.video === undefined ? d.guidanceWithImage : d.guidance;
}

export const DEMO_NOTICE = [
  'No --model given: running the bundled DEMO model (tiny, random weights; the video is noise, not a picture).',
  'For real videos download a CogVideoX-Fun checkpoint, e.g. alibaba-pai/CogVideoX-Fun-V1.1-2b-InP from Hugging Face',
  '(huggingface.co/alibaba-pai) or ModelScope, and run: cogvideox-fun generate --model path/to/CogVideoX-Fun-V1.1-2b-InP --prompt "…"',
];

export const DEMO_INFO_FILE = 'demo.json';
export const DEMO_INFO_FORMAT = 1;

export interface HeldOutCombo {
  color: string;
  shape: string;
  direction: string;
  background: string;
  prompt: string;
}

/** demo.json: what a demo model folder knows (scripts/demo/bundle.ts writes it; src/data defines the world). */
export interface DemoInfo {
  format: number;
  /** false: random weights (the CLI keeps calling the output noise) */
  trained: boolean;
  prompt_template: string;
  example_prompt: string;
  colors: string[];
  shapes: string[];
  directions: string[];
  backgrounds: string[];
  /** combinations kept out of training (the model composes them from what it learned) */
  held_out: HeldOutCombo[];
  output: { frames: number; height: number; width: number; latent: number[]; video_tokens: number; text_tokens: number };
  /** how each component's weights are stored, e.g. { transformer: 'bf16', vae: 'bf16', text_encoder: 'f32' } */
  weights: Record<string, string>;
  /** the training summary (scripts/demo/bundle.ts --notes), free-form */
  training: Record<string, unknown> | null;
}

/** A folder's demo.json, checked; null when the folder has none. A malformed file is an error naming the field. */
export function readDemoInfo(dir: string): DemoInfo | null {
  const file = path.join(dir, DEMO_INFO_FILE);
  if (!fs.existsSync(file)) return null;
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const bad = (field: string, want: string, got: unknown) => new Error(`${file}: "${field}" must be ${want}, got ${JSON.stringify(got) ?? String(got)}`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('(top level)', 'an object', v);
  const o = v as Record<string, unknown>;
  if (o.format !== DEMO_INFO_FORMAT) throw bad('format', String(DEMO_INFO_FORMAT), o.format);
  if (typeof o.trained !== 'boolean') throw bad('trained', 'true or false', o.trained);
  for (const k of ['prompt_template', 'example_prompt'] as const) if (typeof o[k] !== 'string' || o[k] === '') throw bad(k, 'a non-empty string', o[k]);
  for (const k of ['colors', 'shapes', 'directions', 'backgrounds'] as const) {
    const a = o[k];
    if (!Array.isArray(a) || a.length === 0 || a.some((x) => typeof x !== 'string')) throw bad(k, 'a non-empty list of strings', a);
  }
  const held = o.held_out;
  if (!Array.isArray(held)) throw bad('held_out', 'a list', held);
  held.forEach((h: unknown, i) => {
    const r = h as Record<string, unknown> | null;
    for (const k of ['color', 'shape', 'direction', 'background', 'prompt']) {
      if (typeof r?.[k] !== 'string') throw bad(`held_out[${i}].${k}`, 'a string', r?.[k]);
    }
  });
  const out = o.output as Record<string, unknown> | undefined;
  for (const k of ['frames', 'height', 'width', 'video_tokens', 'text_tokens']) {
    if (!Number.isInteger(out?.[k]) || (out![k] as number) < 1) throw bad(`output.${k}`, 'a positive integer', out?.[k]);
  }
  if (typeof o.weights !== 'object' || o.weights === null) throw bad('weights', 'an object', o.weights);
  if (o.training !== null && (typeof o.training !== 'object' || Array.isArray(o.training))) throw bad('training', 'an object or null', o.training);
  return o as unknown as DemoInfo;
}

/** The bundled model's demo.json (null: none, the random-weights stand-in). */
export function bundledDemoInfo(): DemoInfo | null {
  return readDemoInfo(demoModelDir());
}

/** The lines `generate` prints before a run on the demo model. */
export function demoNotice(info: DemoInfo | null): string[] {
  if (!info?.trained) return DEMO_NOTICE;
  return [
    `No --model given: running the bundled demo model (tiny, trained on a toy world: one ${info.shapes.join('/')} moving on a plain background).`,
    `It follows prompts like "${info.example_prompt}" (colours ${info.colors.join(', ')}; directions ${info.directions.join(', ')}; backgrounds ${info.backgrounds.join(', ')}).`,
    'For other subjects pass a CogVideoX-Fun checkpoint with --model (e.g. alibaba-pai/CogVideoX-Fun-V1.1-2b-InP).',
  ];
}

/** What the demo model knows, for `generate --help` and `info` (indented by `pad`). */
export function demoKnowledge(info: DemoInfo, pad = '  '): string[] {
  const g = info.output;
  const wrap = (label: string, items: string[]) => `${pad}${label.padEnd(13)}${items.join(', ')}`;
  return [
    `${pad}${info.trained ? 'trained' : 'NOT trained (random weights: the output is noise-like)'}; ${g.frames} frames × ${g.width}×${g.height}`,
    `${pad}prompt       ${info.prompt_template}`,
    `${pad}example      ${info.example_prompt}`,
    wrap('colours', info.colors),
    wrap('shapes', info.shapes),
    wrap('directions', info.directions),
    wrap('backgrounds', info.backgrounds),
    `${pad}held out     never seen in training, composed from what it learned:`,
    ...info.held_out.map((h) => `${pad}               ${h.prompt}`),
  ];
}
