// The trained demo model bundled in assets/demo-model (issue 15), end to end through the CLI as a user runs it:
// `cogvideox-fun generate --prompt …` with no --model. The other suites run the tiny random-weights fixture as their
// demo model (vitest.config.ts sets COGVIDEOX_DEMO_MODEL); this one removes that variable, so the bundled folder is
// what runs. The analyzer (src/data/analyze.ts) reads the generated frames back.
//
// The prompts below are the default seed's generations that the model gets right on colour, background and
// direction, the attributes bench/demo_quality.ts finds it meets its targets on; shape is not asserted (below its
// target: scripts/demo/README.md has the table of the bundled model); a change to the
// pipeline, the samplers, the weights loading or the bundle that breaks the picture fails them.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dirBytes, MAX_BYTES } from '../scripts/demo/bundle.js';
import { DEMO_DEFAULTS, DEMO_MODEL_ENV, readDemoInfo, type DemoInfo } from '../src/cli/demo.js';
import { analyzeVideo, canonicalCaption, clipRng, placeClip, psnr, renderClip, type Analysis, type Combo } from '../src/data/index.js';
import { readVideo, writePng } from '../src/media/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'cogvideox-fun.mjs');
const BUNDLED = path.join(ROOT, 'assets', 'demo-model');

let dir: string;
/** Image to video, frame 0 against the start image, the two cases below at the CLI's default seed: 28.3 and 31.3 dB
 * unguided (the demo's default with --image), 23.5 and 23.2 dB at the predict scripts' guidance 6 (measured on the
 * bundle of the twenty-ninth session, tensorflow backend; 28.0 / 31.5 and 24.4 / 24.0 on the twenty-eighth's). */
const MIN_FRAME0_DB = 24;
let info: DemoInfo;

/** The environment without COGVIDEOX_DEMO_MODEL: the CLI then finds assets/demo-model as an installed package does. */
function bundledEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env[DEMO_MODEL_ENV];
  return env;
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: bundledEnv(), timeout: 240_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `generate --prompt P [extra…]` with every other setting the CLI's default, into a folder of PNG frames (lossless). */
async function generate(prompt: string, extra: string[] = []) {
  const out = fs.mkdtempSync(path.join(dir, 'gen-'));
  const r = await cli(['generate', '--prompt', prompt, ...extra, '--out', path.join(out, 'frames')]);
  expect(r.code, r.stderr).toBe(0);
  const v = await readVideo(path.join(out, 'frames'));
  const analysis: Analysis = analyzeVideo(v);
  return { analysis, frames: v.frames.length, width: v.width, height: v.height, stderr: r.stderr, first: v.frames[0]! };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-model-'));
  const found = readDemoInfo(BUNDLED);
  if (!found) throw new Error(`${BUNDLED}/demo.json is missing: the bundled demo model must be the trained one`);
  info = found;
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('assets/demo-model: the trained demo model, in the released layout', () => {
  it('is trained, within 25 MB, and a CogVideoX-Fun InP folder (configs of the released classes)', () => {
    expect(info.trained).toBe(true);
    expect(info.output).toMatchObject({ frames: 17, height: 64, width: 96 });
    expect(dirBytes(BUNDLED)).toBeLessThanOrEqual(MAX_BYTES); // issue 15: "Folder ≤ 25 MB"
    const cfg = (c: string) => JSON.parse(fs.readFileSync(path.join(BUNDLED, c, 'config.json'), 'utf8')) as Record<string, unknown>;
    // the InP layout: latent + mask + masked-video latent in (CogVideoX-Fun's 16 + 1 + 16; the demo VAE's latent is 5)
    const latent = cfg('vae').latent_channels as number;
    expect(cfg('vae')._class_name).toBe('AutoencoderKLCogVideoX');
    expect(cfg('transformer')).toMatchObject({ _class_name: 'CogVideoXTransformer3DModel', in_channels: 2 * latent + 1, out_channels: latent, max_text_seq_length: 32 });
    expect(cfg('text_encoder').architectures).toEqual(['T5EncoderModel']);
    for (const f of ['spiece.model', 'tokenizer_config.json', 'special_tokens_map.json']) expect(fs.existsSync(path.join(BUNDLED, 'tokenizer', f)), f).toBe(true);
    const index = JSON.parse(fs.readFileSync(path.join(BUNDLED, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(index)).toEqual(expect.arrayContaining(['tokenizer', 'text_encoder', 'transformer', 'vae', 'scheduler']));
  });

  it('generate --help lists what it knows, and does not call it noise', async () => {
    const r = await cli(['generate', '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/noise-like|random weights/);
    for (const w of [info.example_prompt, ...info.colors, ...info.shapes, ...info.directions, ...info.backgrounds, ...info.held_out.map((h) => h.prompt)]) {
      expect(r.stdout).toContain(w);
    }
  });
});

describe('cogvideox-fun generate on the bundled demo model: the video shows what the prompt says', () => {
  it('"a red circle moving right on a black background" (the example prompt): a red object moving right on black, 17 frames 96×64', async () => {
    const g = await generate('a red circle moving right on a black background');
    expect(g.stderr).toMatch(/bundled demo model \(tiny, trained on a toy world/);
    expect(g.stderr).not.toMatch(/noise/);
    // the demo's own length (its config's sample_frames), not the Fun predict scripts' 49
    expect([g.frames, g.width, g.height]).toEqual([17, 96, 64]);
    expect(g.analysis.background).toBe('black');
    expect(g.analysis.color).toBe('red');
    expect(g.analysis.direction).toBe('right');
  });

  // other colours, backgrounds and directions, seen combinations and held-out ones (never in training)
  it.each([
    ['a yellow circle moving down on a gray background', 'yellow', 'down', 'gray'],
    ['a magenta circle moving down on a white background', 'magenta', 'down', 'white'],
    ['a green square moving right on a white background', 'green', 'right', 'white'],
    ['a cyan square moving left on a white background', 'cyan', 'left', 'white'], // held out
    ['a magenta triangle moving left on a black background', 'magenta', 'left', 'black'], // held out
    ['a green circle moving left on a gray background', 'green', 'left', 'gray'], // held out
  ])('%s: colour %s, direction %s, background %s', async (prompt, color, direction, background) => {
    const g = await generate(prompt);
    expect(g.analysis.background).toBe(background);
    expect(g.analysis.color).toBe(color);
    expect(g.analysis.direction).toBe(direction);
  });

  // image to video: a world clip's first frame (the bench's generator) as --image; the CLI's default guidance for it
  it.each([
    [{ color: 'blue', shape: 'square', direction: 'down', background: 'black' }, 1], // held out
    [{ color: 'yellow', shape: 'circle', direction: 'left', background: 'gray' }, 2],
  ] as [Combo, number][])('--image (a $color $shape on $background): frame 0 is the image, the object moves $direction', async (combo, seed) => {
    const size = { width: 96, height: 64, frames: 17 };
    const start = renderClip(placeClip(combo, clipRng(seed, 0), size))[0]!;
    const file = path.join(fs.mkdtempSync(path.join(dir, 'start-')), 'start.png');
    await writePng({ ...size, channels: 3, data: start }, file);
    const g = await generate(canonicalCaption(combo), ['--image', file]);
    expect(g.stderr).toContain(`image to video, 17 frames 96×64, ${DEMO_DEFAULTS.steps} steps DDIM_Origin, guidance ${DEMO_DEFAULTS.guidanceWithImage},`);
    expect(psnr(g.first, start)).toBeGreaterThan(MIN_FRAME0_DB);
    expect(g.analysis.color).toBe(combo.color);
    expect(g.analysis.direction).toBe(combo.direction);
  });
});
