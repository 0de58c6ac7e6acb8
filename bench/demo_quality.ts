// Quality of a model trained on the demo world (src/data): generates videos for world prompts, measures each with
// the analyzer (colour, shape, direction, background; PSNR of conditioned frames) and prints pass rates per mode,
// seen and held-out combinations apart, beside the targets.
//   npx tsx bench/demo_quality.ts [--model assets/demo-model] [--modes t2v,i2v,start-end,v2v] [--seeds 2]
//       [--seen 24] [--steps 10] [--guidance G] [--frames 17] [--height 64] [--width 96] [--backend tensorflow|wasm]
//       [--negative-prompt TEXT] [--sampler NAME] [--clip-frames N] [--seen-order cycle|even] [--strip DIR] [--json FILE]
// Prompts: the 12 held-out combinations plus --seen trainable ones (cycling through the attributes: prompts()), each with
// --seeds seeds per mode, canonical captions. I2V starts from the world's own frame 0 (prompt naming the motion);
// start + end adds the world's last frame; V2V (strength 0.7) re-prompts a world clip with another colour.
// The negative prompt is the CLI's default for a Fun folder (the predict scripts'), so the table measures what
// `generate` does; --negative-prompt '' gives what the captions drop to in training (text_drop_ratio). Before
// 2026-12-03 (fifth session) the bench always used ''. The sampler is also the CLI's default (DDIM_Origin for a Fun
// folder, as the predict scripts); before 2026-12-03 (sixth session) the bench used the folder's scheduler class,
// CogVideoXDDIMScheduler, whose snr_shift_scale 3 samples at noise levels Fun's training (DDPMScheduler) never
// used, so its tables understate the model. Guidance is also the CLI's for the demo model, per mode (DEMO_DEFAULTS:
// i2v and start + end unguided, t2v and v2v 6); before 2026-12-06 (seventeenth session) 6 in every mode.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_DEFAULTS, defaultGuidance, samplingDefaults } from '../src/cli/demo.js';
import { FUN_NEGATIVE_PROMPT } from '../src/cli/generate.js';
import { cliDefaultSampler, inspectModelFolder } from '../src/cli/model_folder.js';
import {
  COLORS,
  DIRECTIONS,
  benchCases,
  benchCombos,
  canonicalCaption,
  formatTable,
  isHeldOut,
  median,
  renderClip,
  scoreI2V,
  scoreStartEnd,
  scoreT2V,
  scoreV2V,
  summarize,
  type Direction,
  type Mode,
  type Scored,
  type SeenOrder,
} from '../src/data/index.js';
import { writePng } from '../src/media/index.js';
import { describeBackend, setBackend, shutdownBackend } from '../src/nn/backend.js';
import { CogVideoXFunPipeline, type Video } from '../src/pipelines/index.js';
import { PhiloxGenerator } from '../src/schedulers/index.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'assets/demo-model' },
    modes: { type: 'string', default: 't2v,i2v,start-end,v2v' },
    seeds: { type: 'string', default: '2' },
    seen: { type: 'string', default: '24' },
    steps: { type: 'string', default: String(DEMO_DEFAULTS.steps) },
    guidance: { type: 'string' },
    'negative-prompt': { type: 'string' },
    sampler: { type: 'string' },
    frames: { type: 'string', default: '17' },
    'clip-frames': { type: 'string' },
    'seen-order': { type: 'string', default: 'cycle' },
    height: { type: 'string', default: '64' },
    width: { type: 'string', default: '96' },
    backend: { type: 'string' },
    strip: { type: 'string' },
    json: { type: 'string' },
  },
});

function posInt(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${v}'`);
  return n;
}

const MODES: Mode[] = ['t2v', 'i2v', 'start-end', 'v2v'];
const modes = args.modes!.split(',') as Mode[];
for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: unknown mode '${m}' (known: ${MODES.join(', ')})`);
const seeds = posInt('seeds', args.seeds);
const nSeen = Number(args.seen);
const steps = posInt('steps', args.steps);
// the CLI's defaults for the demo model per mode (DEMO_DEFAULTS: unguided with start images), unless --guidance
const demoSampling = samplingDefaults(true);
function guidanceFor(mode: Mode): number {
  if (args.guidance !== undefined) return Number(args.guidance);
  return defaultGuidance(demoSampling, { image: mode === 'i2v' || mode === 'start-end' ? 'start' : undefined, video: mode === 'v2v' ? 'source' : undefined });
}
const negativePrompt = args['negative-prompt'] ?? FUN_NEGATIVE_PROMPT;
const size = { width: posInt('width', args.width), height: posInt('height', args.height), frames: posInt('frames', args.frames) };
// The world clip a conditioned mode starts from is rendered `--clip-frames` long and its first `--frames` frames used.
// The generator's speed is a share of the frame per clip, so a clip rendered 17 frames long moves 24/16 = 1.5× faster
// than the 25-frame clips the model trained on (17 consecutive frames of them): --clip-frames 25 gives the training
// speed. Default: the video length, as before 2026-12-06 (eighteenth session).
const clipFrames = args['clip-frames'] === undefined ? size.frames : posInt('clip-frames', args['clip-frames']);
if (args['seen-order'] !== 'cycle' && args['seen-order'] !== 'even') throw new Error(`--seen-order must be cycle or even, got '${args['seen-order']}'`);
if (clipFrames < size.frames) throw new Error(`--clip-frames ${clipFrames} must be at least --frames ${size.frames}`);
if (!fs.existsSync(path.join(args.model!, 'model_index.json'))) throw new Error(`--model ${args.model}: no model_index.json there`);
const sampler = args.sampler ?? cliDefaultSampler(inspectModelFolder(args.model!).kind);

function strip(video: Video, every = 2): { width: number; height: number; channels: 3; data: Uint8Array } {
  const picked = video.frames.filter((_, i) => i % every === 0);
  const W = video.width * picked.length;
  const data = new Uint8Array(W * video.height * 3);
  picked.forEach((f, k) => {
    for (let y = 0; y < video.height; y++) data.set(f.subarray(y * video.width * 3, (y + 1) * video.width * 3), (y * W + k * video.width) * 3);
  });
  return { width: W, height: video.height, channels: 3, data };
}

/**
 * Which direction the analyzer read for each prompted one, per mode (both splits), and the median speed of the
 * object's centroid in px per frame beside that of the bench's own clips for the same prompts and seeds (those i2v and
 * start + end start from; rendered at --frames, so at 17 frames 1.5× the speed of the training clips, whose travel
 * spreads over 25) — a model that has not learned motion draws objects that stay (slow, any way).
 */
/** A bench result with what it was asked (--json keeps it, so a file can be broken down by prompt). */
type Result = Scored & { prompt: string; seed: number; direction: Direction; worldSpeed: number };

function directionTable(results: readonly Result[]): string {
  const read = [...DIRECTIONS, 'none', 'no object'] as const;
  const lines = ['', `| mode | prompted | ${read.join(' | ')} | median speed (px/frame) | bench clips' |`, `|---|---|${read.map(() => '---|').join('')}---|---|`];
  for (const mode of MODES) {
    const rs = results.filter((r) => r.mode === mode);
    if (!rs.length || mode === 'v2v') continue; // v2v keeps the source's path; its direction is not asked
    for (const d of DIRECTIONS) {
      const ds = rs.filter((r) => r.direction === d);
      if (!ds.length) continue;
      const counts = read.map((x) => ds.filter((r) => (r.analysis.direction ?? 'no object') === x).length);
      const speeds = ds.flatMap((r) => (r.analysis.velocity ? [Math.hypot(...r.analysis.velocity)] : []));
      const med = speeds.length ? median(speeds).toFixed(2) : '–';
      lines.push(`| ${mode} | ${d} (${ds.length}) | ${counts.join(' | ')} | ${med} | ${median(ds.map((r) => r.worldSpeed)).toFixed(2)} |`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const backend = await setBackend(args.backend);
  console.log(`backend: ${describeBackend()}; model ${args.model}; ${os.cpus()[0]?.model ?? '?'}; load ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
  const pipe = await CogVideoXFunPipeline.fromPretrained(args.model!, { sampler });
  const results: Result[] = [];
  const t0 = Date.now();
  const common = { height: size.height, width: size.width, numFrames: size.frames, numInferenceSteps: steps, negativePrompt, onWarning: () => {} };
  for (const { combo, seed, clip } of benchCases(benchCombos(nSeen, args['seen-order'] as SeenOrder), seeds, { ...size, frames: clipFrames })) {
    const held = isHeldOut(combo);
    const frames = renderClip(clip).slice(0, size.frames);
    const img = (f: Uint8Array) => ({ width: size.width, height: size.height, data: f });
    for (const mode of modes) {
      const base = { ...common, guidanceScale: guidanceFor(mode) };
      let video: Video;
      let scored: Scored;
      if (mode === 't2v') {
        video = (await pipe.call({ ...base, prompt: canonicalCaption(combo), generator: new PhiloxGenerator(seed) })).videos![0]!;
        scored = scoreT2V(video, combo, held);
      } else if (mode === 'i2v') {
        video = (await pipe.call({ ...base, prompt: canonicalCaption(combo), image: img(frames[0]!), generator: new PhiloxGenerator(seed) })).videos![0]!;
        scored = scoreI2V(video, frames[0]!, combo, held);
      } else if (mode === 'start-end') {
        const last = frames[frames.length - 1]!;
        video = (await pipe.call({ ...base, prompt: canonicalCaption(combo), image: img(frames[0]!), endImage: img(last), generator: new PhiloxGenerator(seed) }))
          .videos![0]!;
        scored = scoreStartEnd(video, frames[0]!, last, combo, held);
      } else {
        // The source shows another colour; the prompt asks for `combo`'s.
        const other = COLORS[(COLORS.indexOf(combo.color) + 3) % COLORS.length]!;
        const src = renderClip({ ...clip, color: other }).slice(0, size.frames);
        video = (await pipe.call({ ...base, prompt: canonicalCaption(combo), sourceVideo: src.map(img), strength: 0.7, generator: new PhiloxGenerator(seed) }))
          .videos![0]!;
        scored = scoreV2V(video, { frames: src, width: size.width, height: size.height }, combo, held);
      }
      results.push({ ...scored, prompt: canonicalCaption(combo), seed, direction: combo.direction, worldSpeed: clip.speed });
      if (args.strip && seed === 1000 && results.length <= 8 * modes.length) {
        fs.mkdirSync(args.strip, { recursive: true });
        await writePng(strip(video), path.join(args.strip, `${mode}_${canonicalCaption(combo).replaceAll(' ', '_')}.png`));
      }
      process.stderr.write(`\r${results.length} generations, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  process.stderr.write('\n');
  const rows = summarize(results);
  const neg = negativePrompt === FUN_NEGATIVE_PROMPT ? "the predict scripts' negative prompt" : `negative prompt ${JSON.stringify(negativePrompt)}`;
  console.log(`\n${results.length} generations, ${steps} steps of ${sampler}, guidance ${modes.map((m) => `${guidanceFor(m)} (${m})`).join(', ')}, ${neg}, ${size.frames}×${size.height}×${size.width} (clips ${clipFrames} frames long), ` +
    `${((Date.now() - t0) / 1000 / results.length).toFixed(1)} s each on ${backend}; load ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}\n`);
  console.log(formatTable(rows));
  console.log(directionTable(results));
  if (args.json) fs.writeFileSync(args.json, JSON.stringify({ args, rows, results: results.map(({ analysis, ...r }) => ({ ...r, analysis: { ...analysis, objects: undefined } })) }, null, 1));
  pipe.dispose();
  shutdownBackend();
}

main().catch((e: unknown) => {
  console.error(`demo_quality: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
