#!/usr/bin/env node
// Builds the optional native addon (src/nn/native/addon.cc and its headers → build/native/cogvideox_native.node:
// fused attention, linear-layer GEMM) with the system C++ compiler and Node's own headers. Node builtins only;
// nothing is downloaded.
//
//   node scripts/build-native.mjs [--force]
//
// Exit 0 when built, already up to date, or impossible here (no compiler / no Node headers: the library then uses
// TensorFlow ops, as before); exit 1 only when a present compiler fails on the source.
// Env: CXX (default g++), COGVIDEOX_NATIVE_CFLAGS (default "-O3 -march=native": built for this machine's CPU).
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC_DIR = path.join(ROOT, 'src', 'nn', 'native');
const SRC = path.join(SRC_DIR, 'addon.cc');
const SOURCES = fs.readdirSync(SRC_DIR).filter((f) => /\.(cc|h)$/.test(f)).sort();
const OUT_DIR = path.join(ROOT, 'build', 'native');
const OUT = path.join(OUT_DIR, 'cogvideox_native.node');
const STAMP = `${OUT}.stamp`;
const log = (m) => console.log(`[build-native] ${m}`);

const cxx = process.env.CXX || 'g++';
const cflags = (process.env.COGVIDEOX_NATIVE_CFLAGS || '-O3 -march=native').split(/\s+/).filter(Boolean);
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
const args = [...cflags, '-std=c++17', '-shared', '-fPIC', '-pthread', '-DNODE_GYP_MODULE_NAME=cogvideox_native', `-I${headers}`, SRC];
const stamp = crypto
  .createHash('sha256')
  .update(SOURCES.map((f) => f + '\0' + fs.readFileSync(path.join(SRC_DIR, f), 'utf8')).join('\0'))
  .update(JSON.stringify([cxx, probe.stdout.split('\n')[0], args, process.versions.node]))
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
// Load it in a fresh process before installing it: a kernel that cannot load must not replace a working one.
const check = spawnSync(
  process.execPath,
  ['-e', `const m = require(${JSON.stringify(tmp)}); console.log([m.simd, 'attention', m.linear ? 'linear' : ''].filter(Boolean).join(' '))`],
  { encoding: 'utf8' },
);
if (check.status !== 0) {
  fs.rmSync(tmp, { force: true });
  console.error(`[build-native] built but does not load:\n${check.stderr}`);
  process.exit(1);
}
fs.renameSync(tmp, OUT);
fs.writeFileSync(STAMP, stamp);
// The addon used to be build/native/flash_attention.node: drop a stale copy.
fs.rmSync(path.join(OUT_DIR, 'flash_attention.node'), { force: true });
fs.rmSync(path.join(OUT_DIR, 'flash_attention.node.stamp'), { force: true });
log(`built ${path.relative(ROOT, OUT)} (${check.stdout.trim()}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
