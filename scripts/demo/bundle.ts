// Writes the bundled demo folder (the layout of assets/demo-model) from a trained model folder:
//   model_index.json, scheduler/, tokenizer/, text_encoder/ (copied as they are), transformer/ and vae/ (config as is,
//   weights re-stored in BF16 or F32, as one safetensors file or, past --max-shard-bytes, diffusers' shards with their
//   .safetensors.index.json), demo.json (what the model knows: src/cli/demo.ts
//   DemoInfo) and README.md. Prints every component's size; refuses if the folder would exceed 25 MB (issue 15).
//
//   npx tsx scripts/demo/bundle.ts SRC DEST (--bf16 [--vae-fp32] | --fp32) (--trained | --untrained) [--notes FILE|JSON] [--size HxW] [--force]
//
// --size: the frame size demo.json gives as the model's output (the CLI's default), when it is not the transformer's
// sample size × the VAE's compression: a transformer whose patch scripts/demo/repatch-dit.ts divided keeps its RoPE
// positions by dividing sample_height/width too, so it makes frames k times the size its config names.
//
// --vae-fp32 keeps the VAE in F32 beside a BF16 transformer (on the untrained folder the VAE's bf16 rounding changed
// more output pixels than the transformer's: scripts/demo/README.md).
//
// DEST must not exist or be empty (--force replaces it). The folder is built next to DEST and renamed into place only
// when complete and within the limit, so a refused or failed run leaves DEST as it was.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEMO_INFO_FILE, DEMO_INFO_FORMAT, type DemoInfo } from '../../src/cli/demo.js';
import { BACKGROUNDS, COLORS, DIRECTIONS, HELD_OUT, SHAPES, canonicalCaption, isHeldOut, type Combo } from '../../src/data/index.js';
import { saveShardedSafetensors } from '../../src/weights/checkpoint.js';
import { HostTensor } from '../../src/weights/host_tensor.js';
import { SafetensorsFile, type TensorToWrite } from '../../src/weights/safetensors.js';

/** Issue 15: "Folder ≤ 25 MB" (decimal megabytes, every file counted). */
export const MAX_BYTES = 25_000_000;
const WEIGHTS = 'diffusion_pytorch_model.safetensors';
const EXAMPLE: Combo = { color: 'red', shape: 'circle', direction: 'right', background: 'black' };

/** Shard size: the repository keeps every tracked file under 5 MiB, so a weight file is split below that. */
export const MAX_SHARD_BYTES = 4_000_000;

const USAGE = 'usage: npx tsx scripts/demo/bundle.ts SRC DEST (--bf16 [--vae-fp32] | --fp32) (--trained | --untrained) [--notes FILE|JSON] [--size HxW] [--max-shard-bytes N] [--force]';

function readJson(file: string): Record<string, unknown> {
  if (!fs.existsSync(file)) throw new Error(`${file}: missing`);
  const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/** The safetensors files of a diffusers component: the single file, or the shards its index names. */
function weightFiles(dir: string): string[] {
  const single = path.join(dir, WEIGHTS);
  if (fs.existsSync(single)) return [single];
  const index = path.join(dir, `${WEIGHTS}.index.json`);
  if (!fs.existsSync(index)) throw new Error(`${dir}: neither ${WEIGHTS} nor its .index.json`);
  const map = readJson(index).weight_map as Record<string, string> | undefined;
  if (!map) throw new Error(`${index}: no weight_map`);
  return [...new Set(Object.values(map))].sort().map((f) => path.join(dir, f));
}

/** Float tensors → `dtype` (BF16: round to nearest even, as torch's .to(bfloat16); BF16 sources keep their bits). */
function restore(dir: string, dtype: 'BF16' | 'F32'): { tensors: Record<string, TensorToWrite>; params: number; metadata: Record<string, string> } {
  const tensors: Record<string, TensorToWrite> = {};
  let params = 0;
  let metadata: Record<string, string> = {};
  for (const file of weightFiles(dir)) {
    const f = SafetensorsFile.open(file);
    try {
      metadata = { ...metadata, ...f.metadata };
      for (const name of f.keys()) {
        if (name in tensors) throw new Error(`${file}: tensor ${name} also in another shard`);
        const e = f.entry(name);
        params += e.shape.reduce((a, b) => a * b, 1);
        if (e.dtype !== 'F32' && e.dtype !== 'BF16' && e.dtype !== 'F16') throw new Error(`${file}: ${name} is ${e.dtype}; only float weights are expected in a diffusers model`);
        const t = f.read(name);
        const data = dtype === 'BF16' && t.storage === 'bf16' ? (t.data as Uint16Array) : dtype === 'BF16' ? HostTensor.float32ToBf16(t.toFloat32()) : t.toFloat32();
        tensors[name] = { dtype, shape: e.shape, data };
      }
    } finally {
      f.close();
    }
  }
  return { tensors, params, metadata };
}

function copyDir(src: string, dst: string): void {
  if (!fs.statSync(src, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${src}: missing (a model folder has scheduler/, tokenizer/, text_encoder/, transformer/, vae/)`);
  fs.cpSync(src, dst, { recursive: true, dereference: true });
}

/** Bytes of a file, or of every file under a folder. */
export function dirBytes(p: string): number {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.size;
  return fs.readdirSync(p).reduce((a, n) => a + dirBytes(path.join(p, n)), 0);
}

const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;

function parseNotes(v: string | undefined): Record<string, unknown> | null {
  if (v === undefined) return null;
  const text = fs.existsSync(v) ? fs.readFileSync(v, 'utf8') : v;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`--notes: neither a file nor valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('--notes: expected a JSON object (the training summary)');
  return parsed as Record<string, unknown>;
}

function readme(info: DemoInfo, sizes: [string, number][], params: Record<string, number>, tConfig: Record<string, unknown>, vConfig: Record<string, unknown>): string {
  const g = info.output;
  const lines = [
    '# Demo model (bundled with `cogvideox-fun`)',
    '',
    `A tiny CogVideoX-Fun InP checkpoint in the diffusers layout of CogVideoX-Fun-V1.1-2b-InP (tokenizer, text_encoder,`,
    `transformer, vae, scheduler), ${mb(sizes.reduce((a, [, b]) => a + b, 0))}. \`cogvideox-fun generate\` uses it when no \`--model\` is given.`,
    '',
    info.trained
      ? 'It was trained by this project on a procedural world (src/data; scripts/demo/README.md): one flat-coloured shape per clip on a solid background, moving in a straight line.'
      : 'Its weights are NOT trained (random initialisation): the videos it makes are noise-like patterns.',
    '',
    info.trained ? 'What it knows:' : 'The world it is meant to learn (src/data):',
    '',
    `- Prompts: \`${info.prompt_template}\`, e.g. \`${info.example_prompt}\`.`,
    `- Colours: ${info.colors.join(', ')}; shapes: ${info.shapes.join(', ')}; directions: ${info.directions.join(', ')}; backgrounds: ${info.backgrounds.join(', ')}.`,
    `- Held out of training (${info.held_out.length} combinations, to test that it composes what it learned): ${info.held_out.map((h) => h.prompt).join('; ')}.`,
    `- Output: ${g.frames} frames × ${g.height} × ${g.width} (latent ${g.latent.join(' × ')}, ${g.video_tokens} video tokens + ${g.text_tokens} text tokens).`,
    '',
    '| component | parameters | stored | bytes |',
    '|---|---|---|---|',
    ...sizes.map(([c, b]) => `| ${c} | ${params[c] !== undefined ? params[c]!.toLocaleString('en-US') : '—'} | ${info.weights[c] ?? '—'} | ${b.toLocaleString('en-US')} |`),
    '',
    `Transformer: ${tConfig.num_layers} layers × ${tConfig.num_attention_heads} heads × ${tConfig.attention_head_dim}, patch ${tConfig.patch_size}, in ${tConfig.in_channels} / out ${tConfig.out_channels}, max_text_seq_length ${tConfig.max_text_seq_length}. ` +
      `VAE: block_out_channels ${JSON.stringify(vConfig.block_out_channels)}, latent ${vConfig.latent_channels}, scaling_factor ${vConfig.scaling_factor}.`,
  ];
  if (info.training) lines.push('', 'Training summary (demo.json `training`):', '', '```json', JSON.stringify(info.training, null, 2), '```');
  lines.push('', 'Made by `scripts/demo/bundle.ts`. Whether CogVideoX-Fun\'s own pipeline reproduces its frames: `scripts/demo/reproduce.ts` then `scripts/demo/reproduce_torch.py` (scripts/demo/README.md).', '');
  return lines.join('\n');
}

export interface BundleOptions {
  dtype: 'BF16' | 'F32';
  /** the VAE's dtype when it differs from `dtype` (--vae-fp32) */
  vaeDtype?: 'BF16' | 'F32';
  trained: boolean;
  notes: Record<string, unknown> | null;
  force: boolean;
  /** the output frame size in pixels (default: the transformer's sample size × the VAE's spatial compression) */
  size?: { height: number; width: number };
  /** default MAX_BYTES (issue 15's 25 MB) */
  maxBytes?: number;
  /** tensor bytes per weight file before it is sharded (default MAX_SHARD_BYTES) */
  maxShardBytes?: number;
  log?: (line: string) => void;
}

export function bundle(src: string, dest: string, o: BundleOptions): { bytes: number } {
  const log = o.log ?? ((l: string) => console.log(l));
  const maxBytes = o.maxBytes ?? MAX_BYTES;
  src = path.resolve(src);
  dest = path.resolve(dest);
  if (src === dest) throw new Error('SRC and DEST are the same folder');
  if (fs.existsSync(dest) && (!fs.statSync(dest).isDirectory() || fs.readdirSync(dest).length > 0) && !o.force) throw new Error(`DEST ${dest}: exists and is not an empty folder (--force replaces it)`);
  const index = readJson(path.join(src, 'model_index.json'));
  const tConfig = readJson(path.join(src, 'transformer', 'config.json'));
  const vConfig = readJson(path.join(src, 'vae', 'config.json'));
  const blocks = vConfig.block_out_channels as number[];
  const spatial = 2 ** (blocks.length - 1);
  const temporal = vConfig.temporal_compression_ratio as number;
  const frames = tConfig.sample_frames as number;
  const p = tConfig.patch_size as number;
  const H = o.size?.height ?? (tConfig.sample_height as number) * spatial;
  const W = o.size?.width ?? (tConfig.sample_width as number) * spatial;
  if (!(H > 0 && W > 0) || H % (spatial * p) !== 0 || W % (spatial * p) !== 0) throw new Error(`--size ${H}x${W}: height and width must be multiples of ${spatial * p} (the VAE's ${spatial}× × the patch ${p})`);
  const [h, w] = [H / spatial, W / spatial];
  const T = Math.floor((frames - 1) / temporal) + 1;
  if (tConfig.in_channels !== 2 * (vConfig.latent_channels as number) + 1) throw new Error(`transformer/config.json: in_channels ${tConfig.in_channels}, expected ${2 * (vConfig.latent_channels as number) + 1} (an InP model)`);
  if (isHeldOut(EXAMPLE)) throw new Error('internal: the example prompt is a held-out combination');

  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}-${process.pid}-partial`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    fs.writeFileSync(path.join(tmp, 'model_index.json'), JSON.stringify(index, null, 2) + '\n');
    for (const c of ['scheduler', 'tokenizer', 'text_encoder']) copyDir(path.join(src, c), path.join(tmp, c));
    const params: Record<string, number> = {};
    const dtypes = { transformer: o.dtype, vae: o.vaeDtype ?? o.dtype };
    const stored = (c: 'transformer' | 'vae') => (dtypes[c] === 'BF16' ? 'bf16' : 'fp32');
    for (const c of ['transformer', 'vae'] as const) {
      fs.mkdirSync(path.join(tmp, c));
      fs.copyFileSync(path.join(src, c, 'config.json'), path.join(tmp, c, 'config.json'));
      const r = restore(path.join(src, c), dtypes[c]);
      params[c] = r.params;
      saveShardedSafetensors(path.join(tmp, c), WEIGHTS, Object.entries(r.tensors), o.maxShardBytes ?? MAX_SHARD_BYTES, r.metadata);
    }
    const te = fs.readdirSync(path.join(tmp, 'text_encoder')).filter((n) => n.endsWith('.safetensors'));
    const teDtypes = new Set<string>();
    params.text_encoder = 0;
    for (const n of te) {
      const f = SafetensorsFile.open(path.join(tmp, 'text_encoder', n));
      for (const k of f.keys()) {
        const e = f.entry(k);
        teDtypes.add(e.dtype.toLowerCase());
        params.text_encoder += e.shape.reduce((a, b) => a * b, 1);
      }
      f.close();
    }
    const info: DemoInfo = {
      format: DEMO_INFO_FORMAT,
      trained: o.trained,
      prompt_template: 'a {color} {shape} moving {direction} on a {background} background',
      example_prompt: canonicalCaption(EXAMPLE),
      colors: [...COLORS],
      shapes: [...SHAPES],
      directions: [...DIRECTIONS],
      backgrounds: [...BACKGROUNDS],
      held_out: HELD_OUT.map((c) => ({ ...c, prompt: canonicalCaption(c) })),
      output: { frames, height: H, width: W, latent: [T, h, w], video_tokens: T * (h / p) * (w / p), text_tokens: tConfig.max_text_seq_length as number },
      weights: { transformer: stored('transformer'), vae: stored('vae'), text_encoder: [...teDtypes].join('+') },
      training: o.notes,
    };
    fs.writeFileSync(path.join(tmp, DEMO_INFO_FILE), JSON.stringify(info, null, 2) + '\n');
    const parts = ['model_index.json', 'scheduler', 'tokenizer', 'text_encoder', 'transformer', 'vae', DEMO_INFO_FILE];
    const sizes: [string, number][] = parts.map((c) => [c, dirBytes(path.join(tmp, c))]);
    const text = readme(info, sizes, params, tConfig, vConfig);
    fs.writeFileSync(path.join(tmp, 'README.md'), text);
    sizes.push(['README.md', Buffer.byteLength(text)]);
    const total = sizes.reduce((a, [, b]) => a + b, 0);
    for (const [c, b] of sizes) log(`${c.padEnd(17)} ${b.toLocaleString('en-US').padStart(12)} bytes${params[c] !== undefined ? `  ${params[c]!.toLocaleString('en-US')} parameters, ${info.weights[c]}` : ''}`);
    log(`${'total'.padEnd(17)} ${total.toLocaleString('en-US').padStart(12)} bytes (${mb(total)}; limit ${mb(maxBytes)})`);
    if (total > maxBytes) throw new Error(`the bundle is ${mb(total)} (${total} bytes), over the ${mb(maxBytes)} limit${dtypes.transformer === 'F32' || dtypes.vae === 'F32' ? '; try --bf16 (without --vae-fp32)' : ''}; nothing written to ${dest}`);
    if (fs.existsSync(dest)) fs.rmSync(dest, { recursive: true });
    fs.renameSync(tmp, dest);
    log(`wrote ${dest}`);
    return { bytes: total };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function main(): void {
  const { values, positionals } = parseArgs({
    options: { bf16: { type: 'boolean' }, fp32: { type: 'boolean' }, 'vae-fp32': { type: 'boolean' }, trained: { type: 'boolean' }, untrained: { type: 'boolean' }, notes: { type: 'string' }, size: { type: 'string' }, 'max-shard-bytes': { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return void console.log(USAGE);
  if (positionals.length !== 2) throw new Error(`expected SRC and DEST, got ${positionals.length} argument(s)\n${USAGE}`);
  if (!!values.bf16 === !!values.fp32) throw new Error(`give exactly one of --bf16 / --fp32 (how the transformer and VAE weights are stored)\n${USAGE}`);
  if (values['vae-fp32'] && !values.bf16) throw new Error(`--vae-fp32 goes with --bf16 (with --fp32 everything is F32 already)\n${USAGE}`);
  if (!!values.trained === !!values.untrained) throw new Error(`give exactly one of --trained / --untrained (demo.json "trained": the CLI stops calling the demo noise only when true)\n${USAGE}`);
  const shard = values['max-shard-bytes'];
  if (shard !== undefined && !(Number.isInteger(Number(shard)) && Number(shard) > 0)) throw new Error(`--max-shard-bytes must be a positive integer, got '${shard}'`);
  const size = values.size === undefined ? undefined : /^(\d+)x(\d+)$/.exec(values.size);
  if (size === null) throw new Error(`--size must be HEIGHTxWIDTH in pixels, e.g. 64x96, got '${values.size}'`);
  bundle(positionals[0]!, positionals[1]!, {
    dtype: values.bf16 ? 'BF16' : 'F32',
    vaeDtype: values['vae-fp32'] ? 'F32' : undefined,
    trained: !!values.trained,
    notes: parseNotes(values.notes),
    force: !!values.force,
    size: size ? { height: Number(size[1]), width: Number(size[2]) } : undefined,
    maxShardBytes: shard === undefined ? undefined : Number(shard),
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    main();
  } catch (e) {
    console.error(`bundle: ${(e as Error).message}`);
    process.exit(1);
  }
}
