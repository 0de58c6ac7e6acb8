// Compares the frames of two scripts/demo/reproduce.ts output folders case by case (e.g. the same model stored fp32
// and bf16): the draws must be identical (same seeds, same request), then % pixels equal, % values within 1, max abs
// diff and PSNR, as scripts/demo/reproduce_torch.py reports ours vs torch.
//   npx tsx scripts/demo/compare-repro.ts A_DIR B_DIR
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/weights/safetensors.js';

interface Case {
  name: string;
  frames_file: string;
  frames_key: string;
  draws: { key: string }[];
}

function load(dir: string): Map<string, Case> {
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { cases: Case[] };
  return new Map(m.cases.map((c) => [c.name, c]));
}

function bytes(dir: string, c: Case, key: string): Uint8Array {
  const f = SafetensorsFile.open(path.join(dir, c.frames_file));
  try {
    return f.readBytes(key);
  } finally {
    f.close();
  }
}

function main(): void {
  const [a, b] = process.argv.slice(2);
  if (!a || !b) throw new Error('usage: npx tsx scripts/demo/compare-repro.ts A_DIR B_DIR');
  const A = load(a);
  const B = load(b);
  console.log(`A ${a}\nB ${b}`);
  console.log('| mode | % pixels equal | % values within 1 | max abs diff | PSNR A vs B (dB) |');
  console.log('|---|---|---|---|---|');
  for (const [name, ca] of A) {
    const cb = B.get(name);
    if (!cb) throw new Error(`${b}: no case ${name}`);
    if (ca.draws.length !== cb.draws.length) throw new Error(`${name}: ${ca.draws.length} vs ${cb.draws.length} draws`);
    ca.draws.forEach((d, i) => {
      if (Buffer.compare(bytes(a, ca, d.key), bytes(b, cb, cb.draws[i]!.key)) !== 0) throw new Error(`${name}: draw ${d.key} differs; the runs are not comparable`);
    });
    const x = bytes(a, ca, ca.frames_key);
    const y = bytes(b, cb, cb.frames_key);
    if (x.length !== y.length) throw new Error(`${name}: ${x.length} vs ${y.length} frame bytes`);
    let eqPix = 0;
    let within1 = 0;
    let max = 0;
    let se = 0;
    for (let i = 0; i < x.length; i += 3) {
      let same = true;
      for (let c = 0; c < 3; c++) {
        const d = Math.abs(x[i + c]! - y[i + c]!);
        if (d !== 0) same = false;
        if (d <= 1) within1++;
        if (d > max) max = d;
        se += d * d;
      }
      if (same) eqPix++;
    }
    const mse = se / x.length;
    const psnr = mse === 0 ? 'inf' : (10 * Math.log10((255 * 255) / mse)).toFixed(2);
    console.log(`| ${name} | ${((100 * eqPix) / (x.length / 3)).toFixed(3)} | ${((100 * within1) / x.length).toFixed(3)} | ${max} | ${psnr} |`);
  }
}

try {
  main();
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
