#!/usr/bin/env node
// Builds the optional native addon (src/nn/native/addon.cc and its headers → build/native/cogvideox_native.node:
// fused attention, linear-layer GEMM) with the system C++ compiler and Node's own headers. Node builtins only;
// nothing is downloaded. The build is portable: no -march; the AVX2 and AVX-512 kernels carry per-function target
// attributes and the addon picks the best the CPU has when it loads (src/nn/native/cpu.h), so a copy built on
// another machine cannot execute an instruction this CPU lacks. The stamp still records this machine's CPU
// features, so a build made elsewhere is rebuilt here and its kernels run once before it is installed.
//
//   node scripts/build-native.mjs [--force]
//
// Exit 0 when built, already up to date, or impossible here (no compiler / no Node headers: the library then uses
// TensorFlow ops, as before); exit 1 only when a present compiler fails on the source.
// Env: CXX (default g++), COGVIDEOX_NATIVE_CFLAGS (default "-O3"; -march / -mcpu / -mavx… are refused: they would
// let the compiler use those instructions outside the dispatched kernels).
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC_DIR = path.join(ROOT, 'src', 'nn', 'native');
const SRC = path.join(SRC_DIR, 'addon.cc');
const SOURCES = fs.readdirSync(SRC_DIR).filter((f) => /\.(cc|h|inc)$/.test(f)).sort();
const OUT_DIR = path.join(ROOT, 'build', 'native');
const OUT = path.join(OUT_DIR, 'cogvideox_native.node');
const STAMP = `${OUT}.stamp`;
const log = (m) => console.log(`[build-native] ${m}`);

const cxx = process.env.CXX || 'g++';
const cflags = (process.env.COGVIDEOX_NATIVE_CFLAGS || '-O3').split(/\s+/).filter(Boolean);
const machineFlags = cflags.filter((f) => /^-m(arch|cpu)=|^-m(avx|fma|sse4|f16c|bmi)/.test(f));
if (machineFlags.length) {
  console.error(`[build-native] COGVIDEOX_NATIVE_CFLAGS: ${machineFlags.join(' ')} refused: the addon must run on any CPU of its architecture (its kernels choose AVX2 / AVX-512 at load)`);
  process.exit(1);
}
if (process.arch !== 'x64') log(`${process.platform}/${process.arch}: portable kernels only (fused attention; the GEMM and LayerNorm kernels are x86-64 AVX2 / AVX-512)`);

/** The CPU features that decide which kernels run (Linux /proc/cpuinfo, else the CPU model): part of the stamp. */
function cpuFeatures() {
  try {
    const flags = /^flags\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? [];
    return flags.filter((f) => ['avx2', 'fma', 'avx512f'].includes(f)).sort().join(' ') || 'none';
  } catch {
    return `${process.arch} ${os.cpus()[0]?.model ?? '?'}`;
  }
}
const headers = [path.join(path.dirname(process.execPath), '..', 'include', 'node'), process.env.NODE_INCLUDE_DIR]
  .filter(Boolean)
  .find((d) => fs.existsSync(path.join(d, 'node_api.h')));
if (!headers) {
  log(`Node headers (node_api.h) not found next to ${process.execPath}; skipped (TensorFlow ops are used instead)`);
  process.exit(0);
}
const probe = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
if (probe.status !== 0) {
  log(`no C++ compiler (${cxx}); skipped (TensorFlow ops are used instead)`);
  process.exit(0);
}
// macOS: N-API symbols resolve against the node binary at load.
const platformArgs = process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : [];
const args = [...cflags, ...platformArgs, '-std=c++17', '-shared', '-fPIC', '-pthread', '-DNODE_GYP_MODULE_NAME=cogvideox_native', `-I${headers}`, SRC];
const stamp = crypto
  .createHash('sha256')
  .update(SOURCES.map((f) => f + '\0' + fs.readFileSync(path.join(SRC_DIR, f), 'utf8')).join('\0'))
  .update(JSON.stringify([cxx, probe.stdout.split('\n')[0], args, process.versions.node, process.arch, cpuFeatures()]))
  .digest('hex');
if (!process.argv.includes('--force') && fs.existsSync(OUT) && fs.existsSync(STAMP) && fs.readFileSync(STAMP, 'utf8') === stamp) {
  log(`up to date: ${path.relative(ROOT, OUT)}`);
  process.exit(0);
}
fs.mkdirSync(OUT_DIR, { recursive: true });
const tmp = path.join(OUT_DIR, `cogvideox_native.${process.pid}.tmp.node`);
const t0 = Date.now();
const r = spawnSync(cxx, [...args, '-o', tmp], { encoding: 'utf8' });
if (r.status !== 0) {
  fs.rmSync(tmp, { force: true });
  console.error(`[build-native] ${cxx} failed:\n${r.stderr}`);
  process.exit(1);
}
// Load it in a fresh process and run every kernel of every ISA this CPU has on a tiny input before installing it: a
// kernel that cannot load or run must not replace a working one (nor take down the process that loads it).
const smoke = `
const m = require(${JSON.stringify(tmp)});
const f = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i));
const ran = [];
for (const isa of m.isas) {
  m.setIsa(isa);
  const o = new Float32Array(2 * 5 * 64);
  m.attention(f(640), f(640), f(640), 2, 5, 5, 64, 0.125, o, 2);
  if (!o.every(Number.isFinite)) throw new Error(isa + ' attention gave non-finite values');
  if (m.info().kernels.linear !== 'none') {
    const y = new Float32Array(7 * 20);
    m.linear(f(7 * 33), 7, 33, f(20 * 33), 33, 20, f(20), y, 2, true);
    m.adaLayerNorm(f(2 * 3 * 9), 2, 3, 9, 1e-5, null, null, f(18), f(18), new Float32Array(54), 3, 0, 2);
    if (!y.every(Number.isFinite)) throw new Error(isa + ' linear gave non-finite values');
    ran.push(isa + ' (attention, GEMM, LayerNorm)');
  } else ran.push(isa + ' (attention)');
}
console.log(ran.join(', ') + '; CPU: ' + (m.cpuFeatures || 'no avx2/avx512f'));
`;
const check = spawnSync(process.execPath, ['-e', smoke], { encoding: 'utf8' });
if (check.status !== 0) {
  fs.rmSync(tmp, { force: true });
  console.error(`[build-native] built but does not load or run (${check.signal ?? `exit ${check.status}`}):\n${check.stderr}`);
  process.exit(1);
}
fs.renameSync(tmp, OUT);
fs.writeFileSync(STAMP, stamp);
// The addon used to be build/native/flash_attention.node: drop a stale copy.
fs.rmSync(path.join(OUT_DIR, 'flash_attention.node'), { force: true });
fs.rmSync(path.join(OUT_DIR, 'flash_attention.node.stamp'), { force: true });
log(`built ${path.relative(ROOT, OUT)} (${check.stdout.trim()}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
