// Writes a demo world as CogVideoX-Fun training data: DIR/videos/*.mp4, DIR/metadata.json ({file_path, text, type}
// relative to DIR: pass DIR as the training data root), DIR/world.json (every clip's ground truth).
//   npx tsx scripts/demo/make-world.ts --out DIR --count N --seed S [--width 96] [--height 64] [--frames 25]
//                                      [--images K] [--canonical-share 0.5]
//                                      [--remap red:green,green:red [--remap-share 0.5]]
// --remap writes the LoRA dataset of the LoRA proof instead (src/data/remap.ts): captions naming a remapped colour
// over clips drawn in the colour it maps to, the rest ordinary clips of the colours the remap leaves alone; world.json
// records the remap and each clip's caption combination (`captionCombo`) beside what is drawn (`spec`).
// Deterministic: the same seed gives the same clips; clip i does not depend on N. Re-running the same command after
// an interruption keeps the clips already written.
import { DEFAULT_SIZE, HELD_OUT, canonicalCaption, formatColorRemap, parseColorRemap, remapEntries, writeEntries, writeWorld } from '../../src/data/index.js';

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') out.set('help', '1');
    else if (a.startsWith('--')) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new Error(`option ${a} needs a value`);
      out.set(a.slice(2), v);
      i++;
    } else throw new Error(`unexpected argument '${a}'`);
  }
  return out;
}

const KNOWN = ['out', 'count', 'seed', 'width', 'height', 'frames', 'images', 'canonical-share', 'remap', 'remap-share', 'help'];

function int(args: Map<string, string>, name: string, dflt?: number): number {
  const v = args.get(name);
  if (v === undefined) {
    if (dflt === undefined) throw new Error(`--${name} is required`);
    return dflt;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.has('help')) {
    console.log('npx tsx scripts/demo/make-world.ts --out DIR --count N --seed S [--width W] [--height H] [--frames F] [--images K] [--canonical-share P] [--remap FROM:TO,… [--remap-share P]]');
    console.log('held-out combinations (never written):');
    for (const c of HELD_OUT) console.log('  ' + canonicalCaption(c));
    return;
  }
  for (const k of args.keys()) if (!KNOWN.includes(k)) throw new Error(`unknown option --${k} (known: ${KNOWN.map((x) => '--' + x).join(' ')})`);
  const out = args.get('out');
  if (!out) throw new Error('--out is required');
  const share = Number(args.get('canonical-share') ?? '0.5');
  if (!(share >= 0 && share <= 1)) throw new Error(`--canonical-share must be in [0, 1], got '${args.get('canonical-share')}'`);
  const t0 = Date.now();
  let last = 0;
  const onProgress = (done: number, total: number) => {
    if (Date.now() - last > 2000 || done === total) {
      last = Date.now();
      process.stderr.write(`\r${done}/${total} files, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  };
  const size = { width: int(args, 'width', DEFAULT_SIZE.width), height: int(args, 'height', DEFAULT_SIZE.height), frames: int(args, 'frames', DEFAULT_SIZE.frames) };
  const count = int(args, 'count');
  const seed = int(args, 'seed');
  let entries: unknown[];
  if (args.has('remap')) {
    if (args.has('images')) throw new Error('--images is not supported with --remap');
    const remap = parseColorRemap(args.get('remap')!);
    const remapShare = Number(args.get('remap-share') ?? '0.5');
    if (!(remapShare >= 0 && remapShare <= 1)) throw new Error(`--remap-share must be in [0, 1], got '${args.get('remap-share')}'`);
    if (size.width < 16 || size.height < 16 || size.frames < 2) throw new Error(`size must be at least 16x16 and 2 frames, got ${size.width}x${size.height}x${size.frames}`);
    const list = remapEntries({ count, seed, remap, remapShare, size, canonicalShare: share });
    entries = await writeEntries(out, list, { seed, count, remap: formatColorRemap(remap), remapShare, heldOut: HELD_OUT }, { onProgress });
  } else {
    if (args.has('remap-share')) throw new Error('--remap-share needs --remap');
    entries = await writeWorld({ out, count, seed, images: int(args, 'images', 0), canonicalShare: share, size, onProgress });
  }
  process.stderr.write('\n');
  console.log(`wrote ${entries.length} entries to ${out}/metadata.json`);
}

main().catch((e: unknown) => {
  console.error(`make-world: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
