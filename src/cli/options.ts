// `generate` flags: parsed with node:util parseArgs, checked one by one (a bad value is a usage error naming the
// flag, what it takes and what it got), before any model file is opened.
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SCHEDULER_NAMES } from '../schedulers/index.js';
import { UsageError } from './errors.js';

export const REFERENCE_BASES = [512, 768, 960, 1024] as const;
export type ReferenceBase = (typeof REFERENCE_BASES)[number];
export type OutputKind = 'mp4' | 'gif' | 'png' | 'dir';

/** The flags as given (undefined = not given: the model decides the default). */
export interface GenerateFlags {
  model?: string;
  prompt?: string;
  negativePrompt?: string;
  image?: string;
  endImage?: string;
  video?: string;
  mask?: string;
  strength?: number;
  frames?: number;
  height?: number;
  width?: number;
  resizeToReference?: ReferenceBase;
  steps?: number;
  guidance?: number;
  sampler?: string;
  seed?: string;
  /** videos from one prompt (each its own noise draw); outputs numbered NAME_0.EXT, NAME_1.EXT, … when > 1 */
  numVideos: number;
  fps: number;
  loras: { path: string; weight: number }[];
  longVideo?: { segment: number; overlap: number };
  tiling: boolean;
  backend?: 'tensorflow' | 'wasm';
  residency?: 'auto' | 'resident' | 'host' | 'disk';
  out?: string;
  quiet: boolean;
  json: boolean;
  debug: boolean;
  help: boolean;
}

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  prompt: { type: 'string', short: 'p' },
  'negative-prompt': { type: 'string', short: 'n' },
  image: { type: 'string' },
  'end-image': { type: 'string' },
  video: { type: 'string' },
  mask: { type: 'string' },
  strength: { type: 'string' },
  frames: { type: 'string' },
  height: { type: 'string' },
  width: { type: 'string' },
  'resize-to-reference': { type: 'string' },
  steps: { type: 'string' },
  guidance: { type: 'string' },
  sampler: { type: 'string' },
  seed: { type: 'string' },
  'num-videos': { type: 'string' },
  fps: { type: 'string' },
  lora: { type: 'string', multiple: true },
  'long-video': { type: 'boolean' },
  segment: { type: 'string' },
  overlap: { type: 'string' },
  tiling: { type: 'boolean' },
  backend: { type: 'string' },
  residency: { type: 'string' },
  out: { type: 'string', short: 'o' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** Long-video defaults of the UI (segment 25, overlap 4). */
export const LONG_VIDEO_DEFAULTS = { segment: 25, overlap: 4 };
/** predict scripts' LoRA strength (`lora_weight = 0.55`). */
export const DEFAULT_LORA_WEIGHT = 0.55;

/**
 * Makes argv parseable: a negative number after a value flag is its value (`--guidance -1`, which parseArgs
 * would call ambiguous), and `--resize-to-reference` without a value means base 512 (the UI's default).
 */
function normalize(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const spec = a.startsWith('--') && !a.includes('=') ? (OPTIONS as Record<string, { type: string }>)[a.slice(2)] : undefined;
    if (a === '--resize-to-reference' && (next === undefined || next.startsWith('-'))) {
      out.push('--resize-to-reference=512');
    } else if (spec?.type === 'string' && next !== undefined && /^-(\d|\.\d|inf)/i.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

function int(flag: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[+]?\d+$/.test(v.trim())) throw new UsageError(`--${flag} must be an integer, got "${v}"`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`--${flag} must be ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `between ${min} and ${max}`}, got ${n}`);
  return n;
}

function num(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got "${v}"`);
  return n;
}

/** `FILE[:weight]`; the suffix counts as a weight only when it is a number (so `C:\x.safetensors` stays a path). */
export function parseLora(spec: string): { path: string; weight: number } {
  const m = /^(.*):([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$/i.exec(spec);
  const file = m ? m[1]! : spec;
  const weight = m ? Number(m[2]) : DEFAULT_LORA_WEIGHT;
  if (!file) throw new UsageError(`--lora needs a file: FILE[:weight], got "${spec}"`);
  if (!Number.isFinite(weight)) throw new UsageError(`--lora weight must be a number, got "${spec}"`);
  return { path: file, weight };
}

/** A sampler name as typed (any case; '-', '_' and spaces ignored) → its canonical CogVideoX-Fun name. */
export function canonicalSampler(name: string): string {
  const key = (s: string) => s.toLowerCase().replace(/[\s_-]+/g, '');
  const hit = SCHEDULER_NAMES.find((n) => key(n) === key(name));
  if (!hit) throw new UsageError(`--sampler "${name}" is not a sampler; choose one of: ${SCHEDULER_NAMES.map((n) => JSON.stringify(n)).join(', ')}`);
  return hit;
}

/** What kind of output a path asks for: .mp4, .gif, .png, or a folder of PNG frames (trailing slash or no extension). */
export function outputKind(out: string): OutputKind {
  if (/[\\/]$/.test(out)) return 'dir';
  const ext = path.extname(out).toLowerCase();
  if (ext === '.mp4') return 'mp4';
  if (ext === '.gif') return 'gif';
  if (ext === '.png') return 'png';
  if (ext === '') return 'dir';
  throw new UsageError(`--out ${out}: unsupported extension ${ext}; use .mp4, .gif, .png (one frame) or a folder for PNG frames`);
}

export function parseGenerateArgs(argv: readonly string[]): GenerateFlags {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({ args: normalize(argv), options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!;
    throw new UsageError(msg.replace(/^Unexpected argument '(.*)'.*$/, "unexpected argument '$1' (quote the prompt: --prompt \"…\")"));
  }
  const s = (k: keyof typeof OPTIONS) => values[k] as string | undefined;
  const b = (k: keyof typeof OPTIONS) => values[k] === true;
  if (b('help')) return { fps: 8, numVideos: 1, loras: [], tiling: false, quiet: false, json: false, debug: false, help: true };

  const frames = int('frames', s('frames'), 1);
  if (frames !== undefined && frames !== 1 && (frames - 1) % 4 !== 0) {
    const lo = Math.floor((frames - 1) / 4) * 4 + 1;
    throw new UsageError(`--frames must be 1 or 4k+1 (the VAE compresses time 4×), got ${frames}; nearest: ${lo} or ${lo + 4}`);
  }
  const size = (flag: 'height' | 'width') => {
    const v = int(flag, s(flag), 1);
    if (v !== undefined && v % 16 !== 0) throw new UsageError(`--${flag} must be a multiple of 16 (VAE 8× × patch 2), got ${v}`);
    return v;
  };
  const height = size('height');
  const width = size('width');
  let resizeToReference: ReferenceBase | undefined;
  if (s('resize-to-reference') !== undefined) {
    const base = int('resize-to-reference', s('resize-to-reference'), 1);
    if (!REFERENCE_BASES.includes(base as ReferenceBase)) {
      throw new UsageError(`--resize-to-reference takes a base of ${REFERENCE_BASES.join(', ')}, got ${base}`);
    }
    resizeToReference = base as ReferenceBase;
    if (height !== undefined || width !== undefined) throw new UsageError('--resize-to-reference picks the size itself: give it or --height/--width, not both');
  }
  const steps = int('steps', s('steps'), 1, 1000);
  const guidance = num('guidance', s('guidance'));
  if (guidance !== undefined && guidance < 0) throw new UsageError(`--guidance must be ≥ 0 (≤ 1 turns classifier-free guidance off), got ${guidance}`);
  const strength = num('strength', s('strength'));
  if (strength !== undefined && !(strength > 0 && strength <= 1)) throw new UsageError(`--strength must be in (0, 1], got ${strength}`);
  const fps = num('fps', s('fps')) ?? 8;
  if (!(fps > 0 && fps <= 240)) throw new UsageError(`--fps must be a number in (0, 240], got ${fps}`);
  let seed = s('seed');
  if (seed !== undefined) {
    seed = seed.trim();
    if (!/^\d+$/.test(seed) || BigInt(seed) >= 1n << 64n) throw new UsageError(`--seed must be an integer in [0, 2^64), got "${seed}"`);
    seed = BigInt(seed).toString();
  }
  const sampler = s('sampler') === undefined ? undefined : canonicalSampler(s('sampler')!);
  const backend = s('backend');
  if (backend !== undefined && backend !== 'tensorflow' && backend !== 'wasm') throw new UsageError(`--backend must be tensorflow or wasm, got "${backend}"`);
  const residency = s('residency');
  if (residency !== undefined && !['auto', 'resident', 'host', 'disk'].includes(residency)) {
    throw new UsageError(`--residency must be auto, resident, host or disk, got "${residency}"`);
  }

  const image = s('image');
  const endImage = s('end-image');
  const video = s('video');
  const mask = s('mask');
  if (endImage !== undefined && image === undefined) throw new UsageError('--end-image needs a start image (--image)');
  if (video !== undefined && image !== undefined) throw new UsageError('--video (video-to-video) and --image (image-to-video) cannot be combined');
  if (mask !== undefined && video === undefined) throw new UsageError('--mask applies to --video (video-to-video inpainting)');
  if (strength !== undefined && strength < 1 && video === undefined) throw new UsageError(`--strength ${strength} needs a source --video to start from`);
  if (resizeToReference !== undefined && image === undefined && video === undefined) {
    throw new UsageError('--resize-to-reference needs a reference: --image or --video');
  }

  const numVideos = int('num-videos', s('num-videos'), 1, 64) ?? 1;
  if (numVideos > 1 && b('long-video')) throw new UsageError('--num-videos and --long-video cannot be combined (run --long-video once per video)');

  let longVideo: GenerateFlags['longVideo'];
  const segment = int('segment', s('segment'), 5, 85);
  const overlap = int('overlap', s('overlap'), 1, 4);
  if (b('long-video')) {
    if (video !== undefined) throw new UsageError('--long-video continues from images; it cannot be combined with --video');
    longVideo = { segment: segment ?? LONG_VIDEO_DEFAULTS.segment, overlap: overlap ?? LONG_VIDEO_DEFAULTS.overlap };
    if ((longVideo.segment - 1) % 4 !== 0) throw new UsageError(`--segment must be 4k+1 frames (5, 9, …, 85), got ${longVideo.segment}`);
    if (longVideo.overlap >= longVideo.segment) throw new UsageError(`--overlap (${longVideo.overlap}) must be smaller than --segment (${longVideo.segment})`);
  } else if (segment !== undefined || overlap !== undefined) {
    throw new UsageError('--segment and --overlap apply to --long-video');
  }

  const out = s('out');
  if (out !== undefined) {
    const kind = outputKind(out);
    if (kind === 'png' && frames !== undefined && frames > 1) throw new UsageError(`--out ${out}: a .png holds one frame; use a folder for ${frames} PNG frames, or .mp4 / .gif`);
  }
  const prompt = s('prompt');
  if (prompt !== undefined && prompt.trim() === '') throw new UsageError('--prompt is empty');

  return {
    model: s('model'),
    prompt,
    negativePrompt: s('negative-prompt'),
    image,
    endImage,
    video,
    mask,
    strength,
    frames,
    height,
    width,
    resizeToReference,
    steps,
    guidance,
    sampler,
    seed,
    numVideos,
    fps,
    loras: ((values.lora as string[] | undefined) ?? []).map(parseLora),
    longVideo,
    tiling: b('tiling'),
    backend: backend as GenerateFlags['backend'],
    residency: residency as GenerateFlags['residency'],
    out,
    quiet: b('quiet'),
    json: b('json'),
    debug: b('debug'),
    help: false,
  };
}
