// Does a LoRA trained on the remapped demo data (make-world.ts --remap) change what the model generates the way the
// data says? Generates the same prompts with the same seeds without and with the LoRA — each generation the
// `cogvideox-fun generate` path (flags → resolveRun → runJob, `--lora FILE:W`) — reads every video back with the
// analyzer (src/data/analyze.ts) and prints, per prompt group, how often the object's colour is the caption's (what
// the base model learned from the world) and how often it is the data's mapping (red ↔ green by default):
//   remapped prompts  — captions naming a remapped colour: the LoRA should show the mapped colour;
//   unrelated prompts — colours the remap neither changes nor produces: the LoRA should leave them as the base
//                       model draws them (same seed → same colour as the base output).
//   npx tsx scripts/demo/lora-proof.ts --model DIR --lora FILE[:W] [--remap red:green,green:red] [--prompts 6]
//       [--seeds 2] [--steps 10] [--frames 17] [--height 64] [--width 96] [--min-shift 0.5] [--min-kept 0.8]
//       [--backend tensorflow|wasm] [--json FILE] [--keep DIR]
// Exit 0 when the remapped group moved the data's way (LoRA's mapped-colour rate − base's ≥ --min-shift and above
// its caption-colour rate) and the unrelated group kept the base colour in ≥ --min-kept of generations; 1 otherwise.
// W defaults to 1: training applies alpha/rank with multiplier 1 (the CLI's 0.55 is the predict scripts' default).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_DEFAULTS } from '../../src/cli/demo.js';
import { resolveRun } from '../../src/cli/generate.js';
import { runJob } from '../../src/cli/job.js';
import { parseGenerateArgs } from '../../src/cli/options.js';
import {
  DEFAULT_REMAP,
  allCombos,
  analyzeVideo,
  canonicalCaption,
  formatColorRemap,
  formatProofTable,
  isHeldOut,
  parseColorRemap,
  proofVerdict,
  remapGroups,
  summarizeProof,
  type Analysis,
  type Color,
  type Combo,
  type ProofGeneration,
  type ProofGroup,
} from '../../src/data/index.js';
import { readImage } from '../../src/media/image.js';
import { shutdownBackend } from '../../src/nn/backend.js';

const USAGE =
  'usage: npx tsx scripts/demo/lora-proof.ts --model DIR --lora FILE[:W] [--remap red:green,green:red] [--prompts 6] [--seeds 2] ' +
  '[--steps 10] [--frames 17] [--height 64] [--width 96] [--min-shift 0.5] [--min-kept 0.8] [--backend B] [--json FILE] [--keep DIR]';

function posInt(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, got "${v}"`);
  return n;
}

function fraction(flag: string, v: string): number {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new Error(`--${flag} must be in [0, 1], got "${v}"`);
  return n;
}

/** `n` non-held-out combinations whose colour is one of `colors`, spread evenly over the fixed order. */
function groupPrompts(colors: readonly Color[], n: number): Combo[] {
  const pool = allCombos().filter((c) => colors.includes(c.color) && !isHeldOut(c));
  if (pool.length === 0) throw new Error(`no prompt combination for colours ${colors.join(', ')}`);
  const stride = pool.length / n;
  return Array.from({ length: Math.min(n, pool.length) }, (_, i) => pool[Math.floor(i * stride)]!);
}

async function generate(model: string, prompt: string, seed: number, size: { frames: number; height: number; width: number }, steps: string, out: string, extra: string[]): Promise<Analysis> {
  const argv = ['--model', model, '--prompt', prompt, '--frames', String(size.frames), '--height', String(size.height), '--width', String(size.width)];
  argv.push('--steps', steps, '--seed', String(seed), '--out', out, '--quiet', ...extra);
  const run = resolveRun(parseGenerateArgs(argv));
  const warnings: string[] = [];
  await runJob(run.job, (e) => void (e.type === 'warning' && warnings.push(e.message)), () => false);
  fs.renameSync(run.job.outTmp, run.out);
  const names = fs.readdirSync(run.out).filter((n) => n.endsWith('.png')).sort();
  if (names.length === 0) throw new Error(`${run.out}: the run wrote no frames${warnings.length ? ` (warnings: ${warnings.join('; ')})` : ''}`);
  const frames = await Promise.all(names.map((n) => readImage(path.join(run.out, n))));
  const f0 = frames[0]!;
  return analyzeVideo({ frames: frames.map((f) => f.data), width: f0.width, height: f0.height });
}

async function main(): Promise<number> {
  const { values: v } = parseArgs({
    options: {
      model: { type: 'string' },
      lora: { type: 'string' },
      remap: { type: 'string', default: formatColorRemap(DEFAULT_REMAP) },
      prompts: { type: 'string', default: '6' },
      seeds: { type: 'string', default: '2' },
      steps: { type: 'string', default: String(DEMO_DEFAULTS.steps) },
      frames: { type: 'string', default: '17' },
      height: { type: 'string', default: '64' },
      width: { type: 'string', default: '96' },
      'min-shift': { type: 'string', default: '0.5' },
      'min-kept': { type: 'string', default: '0.8' },
      backend: { type: 'string' },
      json: { type: 'string' },
      keep: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  if (!v.model || !v.lora) throw new Error(`--model and --lora are required\n${USAGE}`);
  const model = path.resolve(v.model);
  if (!fs.existsSync(path.join(model, 'model_index.json'))) throw new Error(`--model ${v.model}: no model_index.json there`);
  const loraSpec = /:[+-]?[\d.]+(e[+-]?\d+)?$/i.test(v.lora) ? v.lora : `${v.lora}:1`;
  const loraFile = loraSpec.replace(/:[^:]*$/, '');
  if (!fs.existsSync(loraFile)) throw new Error(`--lora ${loraFile}: no such file`);
  const remap = parseColorRemap(v.remap!);
  const { remapped, unrelated } = remapGroups(remap);
  if (unrelated.length === 0) throw new Error(`--remap ${v.remap}: leaves no unrelated colour to check`);
  const nPrompts = posInt('prompts', v.prompts!);
  const seeds = Array.from({ length: posInt('seeds', v.seeds!) }, (_, i) => 1000 + i);
  const size = { frames: posInt('frames', v.frames!), height: posInt('height', v.height!), width: posInt('width', v.width!) };
  const steps = String(posInt('steps', v.steps!));
  const minShift = fraction('min-shift', v['min-shift']!);
  const minKept = fraction('min-kept', v['min-kept']!);
  const groups: [ProofGroup, Combo[]][] = [
    ['remapped', groupPrompts(remapped, nPrompts)],
    ['unrelated', groupPrompts(unrelated, nPrompts)],
  ];
  const work = v.keep ? path.resolve(v.keep) : fs.mkdtempSync(path.join(os.tmpdir(), 'lora-proof-'));
  fs.mkdirSync(work, { recursive: true });
  const extra = v.backend ? ['--backend', v.backend] : [];
  const total = 2 * groups.reduce((a, [, ps]) => a + ps.length, 0) * seeds.length;
  console.log(`model ${model}; LoRA ${loraSpec}; remap ${formatColorRemap(remap)}; ${total} generations (${size.frames}×${size.height}×${size.width}, ${steps} steps); ` +
    `${os.cpus()[0]?.model ?? '?'}; load ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
  const gens: ProofGeneration[] = [];
  const t0 = Date.now();
  try {
    for (const variant of ['base', 'lora'] as const) {
      for (const [group, combos] of groups) {
        for (const combo of combos) {
          const prompt = canonicalCaption(combo);
          for (const seed of seeds) {
            const out = path.join(work, variant, `${prompt.replaceAll(' ', '_')}_${seed}`);
            fs.rmSync(out, { recursive: true, force: true });
            fs.mkdirSync(path.dirname(out), { recursive: true });
            const lora = variant === 'lora' ? ['--lora', loraSpec] : [];
            const { color, shape, direction, background } = await generate(model, prompt, seed, size, steps, out, [...extra, ...lora]);
            gens.push({ group, variant, prompt, combo, seed, analysis: { color, shape, direction, background } });
            process.stderr.write(`\r${gens.length}/${total} generations, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
          }
        }
      }
    }
  } finally {
    process.stderr.write('\n');
    if (!v.keep) fs.rmSync(work, { recursive: true, force: true });
    await shutdownBackend();
  }
  const rows = summarizeProof(gens, remap);
  console.log(`${gens.length} generations in ${((Date.now() - t0) / 1000).toFixed(0)} s; load ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}\n`);
  console.log(formatProofTable(rows) + '\n');
  const verdict = proofVerdict(rows, minShift, minKept);
  for (const line of verdict.lines) console.log(line);
  if (v.json) fs.writeFileSync(v.json, JSON.stringify({ model, lora: loraSpec, remap: formatColorRemap(remap), size, steps: Number(steps), seeds, rows, generations: gens }, null, 1) + '\n');
  return verdict.pass ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`lora-proof: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(2);
  },
);
