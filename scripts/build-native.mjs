#!/usr/bin/env node
// Builds the optional native attention kernel (src/nn/native/flash_attention.cc → build/native/flash_attention.node)
// with the system C++ compiler and Node's own headers. Node builtins only; nothing is downloaded.
//
//   node scripts/build-native.mjs [--force]
//
// Exit 0 when built, already up to date, or impossible here (no compiler / no Node headers: the library then uses
// TensorFlow ops for attention, as before); exit 1 only when a present compiler fails on the source.
// Env: CXX (default g++), COGVIDEOX_NATIVE_CFLAGS (default "-O3 -march=native": built for this machine's CPU).
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'src', 'nn', 'native', 'flash_attention.cc');
const OUT_DIR = path.join(ROOT, 'build', 'native');
const OUT = path.join(OUT_DIR, 'flash_attention.node');
const STAMP = `${OUT}.stamp`;
const log = (m) => console.log(`[build-native] ${m}`);

const cxx = process.env.CXX || 'g++';
const cflags = (process.env.COGVIDEOX_NATIVE_CFLAGS || '-O3 -march=native').split(/\s+/).filter(Boolean);
const headers = [path.join(path.dirname(process.execPath), '..', 'include', 'node'), process.env.NODE_INCLUDE_DIR]
  .filter(Boolean)
  .find((d) => fs.existsSync(path.join(d, 'node_api.h')));
if (!headers) {
  log(`Node headers (node_api.h) not found next to ${process.execPath}; skipped (attention stays on TensorFlow ops)`);
  process.exit(0);
}
const probe = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
if (probe.status !== 0) {
  log(`no C++ compiler (${cxx}); skipped (attention stays on TensorFlow ops)`);
  process.exit(0);
}
const args = [...cflags, '-std=c++17', '-shared', '-fPIC', '-pthread', '-DNODE_GYP_MODULE_NAME=flash_attention', `-I${headers}`, SRC];
const stamp = crypto
  .createHash('sha256')
  .update(fs.readFileSync(SRC))
  .update(JSON.stringify([cxx, probe.stdout.split('\n')[0], args, process.versions.node]))
  .digest('hex');
if (!process.argv.includes('--force') && fs.existsSync(OUT) && fs.existsSync(STAMP) && fs.readFileSync(STAMP, 'utf8') === stamp) {
  log(`up to date: ${path.relative(ROOT, OUT)}`);
  process.exit(0);
}
fs.mkdirSync(OUT_DIR, { recursive: true });
const tmp = path.join(OUT_DIR, `flash_attention.${process.pid}.tmp.node`);
const t0 = Date.now();
const r = spawnSync(cxx, [...args, '-o', tmp], { encoding: 'utf8' });
if (r.status !== 0) {
  fs.rmSync(tmp, { force: true });
  console.error(`[build-native] ${cxx} failed:\n${r.stderr}`);
  process.exit(1);
}
// Load it in a fresh process before installing it: a kernel that cannot load must not replace a working one.
const check = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(tmp)}).simd)`], { encoding: 'utf8' });
if (check.status !== 0) {
  fs.rmSync(tmp, { force: true });
  console.error(`[build-native] built but does not load:\n${check.stderr}`);
  process.exit(1);
}
fs.renameSync(tmp, OUT);
fs.writeFileSync(STAMP, stamp);
log(`built ${path.relative(ROOT, OUT)} (${check.stdout.trim()} kernels) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
