#!/usr/bin/env node
// Make @tensorflow/tfjs-node usable where its own libtensorflow download is unreachable.
//
// Builds tfjs-node's N-API binding against the TF C library shipped inside the
// `tensorflow-cpu==2.21.0` wheel from pip's configured store (recipe A of the notes
// "tfjs-node from wheel"). Node builtins only.
//
//   npm run setup:tfjs-node [-- --strict] [-- --force]
//
//   --strict  exit 1 (instead of 0) when the wheel cannot be obtained
//   --force   skip the "already working" check; re-stage deps/ and rebuild the binding
//             (the extracted libraries are reused; delete the cache dir to re-extract)
//
// Env: COGVIDEOX_CACHE  cache dir (default ~/.cache/cogvideox-fun-tfjs); the extracted
//                       libraries live there so another checkout on the same machine reuses them.
//
// Exit codes: 0 ready (or wheel unobtainable without --strict), 1 failure.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TFJS_NODE_VERSION = '4.22.0';
const TF_WHEEL_SPEC = 'tensorflow-cpu==2.21.0';
const TF_WHEEL_GLOB = /^tensorflow_cpu-2\.21\.0-.*\.whl$/;
const LIB_DIR_NAME = 'libtensorflow-cpu-2.21.0';
const LIB_CC = 'libtensorflow_cc.so.2';
const LIB_FW = 'libtensorflow_framework.so.2';
// Members of the wheel we need: the two shared libraries and the minimal C-API headers.
const WHEEL_MEMBERS = [
  `tensorflow/${LIB_CC}`,
  `tensorflow/${LIB_FW}`,
  'tensorflow/include/tensorflow/c/*',
  'tensorflow/include/tensorflow/core/platform/ctstring*',
  'tensorflow/include/tsl/platform/ctstring*',
  'tensorflow/include/xla/tsl/c/*',
];
const REQUIRED_HEADERS = [
  'tensorflow/c/c_api.h',
  'tensorflow/c/eager/c_api.h',
  'tensorflow/core/platform/ctstring.h',
  'tsl/platform/ctstring.h',
];
const LOCAL_STORE = ['/opt/pypi/simple', '/opt/pypi-more/simple'];

const args = new Set(process.argv.slice(2));
if (args.has('--help') || args.has('-h')) {
  console.log('usage: node scripts/setup-tfjs-node.mjs [--strict] [--force]');
  process.exit(0);
}
const STRICT = args.has('--strict');
const FORCE = args.has('--force');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG_DIR = path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-node');
const CACHE_DIR = process.env.COGVIDEOX_CACHE
  ? path.resolve(process.env.COGVIDEOX_CACHE)
  : path.join(os.homedir(), '.cache', 'cogvideox-fun-tfjs');
const LIB_CACHE = path.join(CACHE_DIR, LIB_DIR_NAME);

const T0 = Date.now();
const secs = (t) => ((Date.now() - t) / 1000).toFixed(1) + ' s';
const log = (msg) => console.log(`[setup:tfjs-node] ${msg}`);

class SoftFail extends Error {}

function finish(code) {
  log(`total ${secs(T0)}`);
  process.exit(code);
}

function tail(text, n = 25) {
  const lines = String(text || '').trimEnd().split('\n');
  return lines.slice(-n).join('\n');
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    ...opts,
  });
  return {
    ok: !r.error && r.status === 0,
    status: r.status,
    error: r.error,
    stdout: r.stdout || '',
    stderr: r.stderr || '',
  };
}

// ---------------------------------------------------------------------------
// 1. Probe: does require('@tensorflow/tfjs-node') work, with the tensorflow backend?
// ---------------------------------------------------------------------------
const PROBE_MARK = '__SETUP_TFJS_NODE__';
const PROBE_CODE = `
const { createRequire } = require('module');
const req = createRequire(process.env.SETUP_TFJS_ROOT + '/package.json');
const t0 = Date.now();
const tf = req('@tensorflow/tfjs-node');
const loadMs = Date.now() - t0;
const out = { backend: tf.getBackend(), loadMs };
try { out.tfVersion = tf.backend().binding.TF_Version; } catch (e) { out.tfVersion = '?'; }
const m = 33, k = 17, n = 9;
const a = Float32Array.from({ length: m * k }, (_, i) => ((i * 7) % 13) / 13 - 0.5);
const b = Float32Array.from({ length: k * n }, (_, i) => ((i * 5) % 11) / 11 - 0.5);
const got = tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, [k, n])).dataSync();
let maxErr = 0;
for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
  let s = 0; for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
  maxErr = Math.max(maxErr, Math.abs(s - got[i * n + j]));
}
const small = Array.from(tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).dataSync());
out.matmulOk = maxErr < 1e-4 && JSON.stringify(small) === '[19,22,43,50]';
out.maxErr = maxErr;
out.small = small;
console.log('${PROBE_MARK}' + JSON.stringify(out));
process.exit(0);
`;

function probe() {
  const r = run(process.execPath, ['-e', PROBE_CODE], {
    cwd: ROOT,
    env: { ...process.env, SETUP_TFJS_ROOT: ROOT, TF_CPP_MIN_LOG_LEVEL: '2' },
    timeout: 180_000,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith(PROBE_MARK));
  if (!line) {
    const err = r.stderr.split('\n').find((l) => /Error|error:/.test(l)) || tail(r.stderr, 3) || `exit ${r.status}`;
    return { ok: false, reason: err.trim(), stderr: r.stderr };
  }
  const res = JSON.parse(line.slice(PROBE_MARK.length));
  res.ok = res.backend === 'tensorflow' && res.matmulOk;
  if (!res.ok) {
    res.reason = res.backend !== 'tensorflow'
      ? `backend is '${res.backend}', not 'tensorflow'`
      : `matMul check failed (max err ${res.maxErr}, 2x2 = ${JSON.stringify(res.small)})`;
  }
  return res;
}

// ---------------------------------------------------------------------------
// 2. Libraries: extracted once into the cache from the tensorflow-cpu wheel
// ---------------------------------------------------------------------------
function libCacheComplete() {
  const marker = path.join(LIB_CACHE, '.complete');
  if (!fs.existsSync(marker)) return false;
  return [path.join('lib', LIB_CC), path.join('lib', LIB_FW), ...REQUIRED_HEADERS.map((h) => path.join('include', h))]
    .every((f) => fs.existsSync(path.join(LIB_CACHE, f)));
}

function pythonVersion(py) {
  const r = run(py, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])']);
  return r.ok ? r.stdout.trim() : null;
}

function downloadWheel(destDir) {
  const reasons = [];
  const tried = new Set();
  const storeDirsExist = LOCAL_STORE.every((d) => fs.existsSync(d));
  for (const py of ['python3', '/usr/bin/python3']) {
    const ver = pythonVersion(py);
    if (!ver) { reasons.push(`${py}: not found`); continue; }
    const real = run(py, ['-c', 'import sys; print(sys.executable)']).stdout.trim();
    if (tried.has(real)) continue;
    tried.add(real);
    const pipv = run(py, ['-m', 'pip', '--version']);
    if (!pipv.ok) { reasons.push(`${py}: no pip`); continue; }
    const base = ['-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check', '-d', destDir];
    // The wheel is cp311; its C library does not care which Python fetches it.
    if (ver !== '3.11') base.push('--only-binary=:all:', '--python-version', '3.11');
    const attempts = [[]];
    if (storeDirsExist) {
      attempts.push(['--index-url', `file://${LOCAL_STORE[0]}`, '--extra-index-url', `file://${LOCAL_STORE[1]}`]);
    }
    for (const extra of attempts) {
      const argv = [...base, ...extra, TF_WHEEL_SPEC];
      log(`  ${py} ${argv.join(' ')}`);
      const t = Date.now();
      const r = run(py, argv, { timeout: 30 * 60_000 });
      const whl = fs.existsSync(destDir) && fs.readdirSync(destDir).find((f) => TF_WHEEL_GLOB.test(f));
      if (r.ok && whl) {
        log(`  got ${whl} (${(fs.statSync(path.join(destDir, whl)).size / 1e6).toFixed(0)} MB) in ${secs(t)}`);
        return { whl: path.join(destDir, whl), py };
      }
      const err = (r.stderr + r.stdout).split('\n').filter((l) => l.startsWith('ERROR:')).pop()
        || (r.error ? String(r.error.message) : tail(r.stderr, 1));
      reasons.push(err.trim());
      log(`  failed after ${secs(t)}: ${err.trim()}`);
    }
  }
  const uniq = [...new Set(reasons.map((r) => r.replace(/^ERROR:\s*/, '')))];
  throw new SoftFail(`could not obtain the ${TF_WHEEL_SPEC} wheel via pip: ${uniq.join('; ')}`);
}

function extractWheel(whl, tmpDir, py) {
  // Python's zipfile (the interpreter that ran pip, so it exists) is a little faster than unzip here;
  // unzip is the fallback.
  if (py) {
    log(`  ${py} zipfile: ${WHEEL_MEMBERS.length} member patterns from ${path.basename(whl)}`);
    const code = [
      'import sys, zipfile, fnmatch',
      'whl, dest, pats = sys.argv[1], sys.argv[2], sys.argv[3:]',
      'with zipfile.ZipFile(whl) as z:',
      '    for n in z.namelist():',
      '        if any(fnmatch.fnmatchcase(n, p) for p in pats): z.extract(n, dest)',
    ].join('\n');
    const r = run(py, ['-c', code, whl, tmpDir, ...WHEEL_MEMBERS]);
    if (r.ok) return;
    log(`  python zipfile extraction failed: ${tail(r.stderr || String(r.error), 1)}`);
  }
  if (!run('unzip', ['-v']).ok) throw new Error('cannot extract the wheel: python zipfile failed and unzip is not installed');
  log(`  unzip: ${WHEEL_MEMBERS.length} member patterns from ${path.basename(whl)}`);
  const r = run('unzip', ['-q', '-o', whl, '-d', tmpDir, ...WHEEL_MEMBERS]);
  // 11 = some pattern matched nothing; the required-file check in ensureLibs decides.
  if (!r.ok && r.status !== 11) throw new Error(`unzip failed (exit ${r.status}): ${tail(r.stderr, 5)}`);
}

function ensureLibs() {
  if (libCacheComplete()) {
    log(`TF 2.21 C library: cached at ${LIB_CACHE}`);
    return { cached: true };
  }
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  removeStaleWorkDirs();
  const free = freeBytes(CACHE_DIR);
  if (free !== null && free < 1.3e9) {
    throw new Error(`not enough disk space in ${CACHE_DIR}: ${(free / 1e9).toFixed(2)} GB free, ~1.2 GB needed (wheel + libs)`);
  }
  const work = fs.mkdtempSync(path.join(CACHE_DIR, `.work-${process.pid}-`));
  const times = {};
  try {
    log(`getting ${TF_WHEEL_SPEC} wheel via pip (cache ${CACHE_DIR})`);
    let t = Date.now();
    const { whl, py } = downloadWheel(path.join(work, 'wheel'));
    times.download = (Date.now() - t) / 1000;

    log('extracting libtensorflow_cc.so.2, libtensorflow_framework.so.2 and the C-API headers');
    t = Date.now();
    const x = path.join(work, 'x');
    fs.mkdirSync(x);
    extractWheel(whl, x, py);
    const stage = path.join(work, LIB_DIR_NAME);
    fs.mkdirSync(path.join(stage, 'lib'), { recursive: true });
    for (const so of [LIB_CC, LIB_FW]) {
      const src = path.join(x, 'tensorflow', so);
      if (!fs.existsSync(src)) throw new Error(`wheel has no tensorflow/${so}`);
      fs.renameSync(src, path.join(stage, 'lib', so));
    }
    fs.renameSync(path.join(x, 'tensorflow', 'include'), path.join(stage, 'include'));
    for (const h of REQUIRED_HEADERS) {
      if (!fs.existsSync(path.join(stage, 'include', h))) throw new Error(`wheel has no header ${h}`);
    }
    fs.writeFileSync(path.join(stage, '.complete'), JSON.stringify({
      from: path.basename(whl), extracted: new Date().toISOString(), members: WHEEL_MEMBERS,
    }, null, 2) + '\n');
    fs.rmSync(LIB_CACHE, { recursive: true, force: true });
    try {
      fs.renameSync(stage, LIB_CACHE);
    } catch (e) {
      // A concurrent run may have won the race; use its result if complete.
      if (!libCacheComplete()) throw e;
    }
    times.extract = (Date.now() - t) / 1000;
    log(`  extracted in ${times.extract.toFixed(1)} s -> ${LIB_CACHE} (${mb(duBytes(LIB_CACHE))}); wheel removed`);
    return { cached: false, times };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// 3. Package files: npm install --no-save --ignore-scripts, guarded
// ---------------------------------------------------------------------------
function readJson(f) {
  try { return JSON.parse(fs.readFileSync(f, 'utf8')); } catch { return null; }
}

function packageInstalled() {
  const pj = readJson(path.join(PKG_DIR, 'package.json'));
  if (!pj || pj.version !== TFJS_NODE_VERSION) return false;
  // All of its runtime dependencies must resolve from the package directory.
  for (const dep of Object.keys(pj.dependencies || {})) {
    if (!findPackageDir(dep, PKG_DIR)) return false;
  }
  return true;
}

function findPackageDir(name, fromDir) {
  for (let d = fromDir; ; d = path.dirname(d)) {
    const cand = path.join(d, 'node_modules', name, 'package.json');
    if (fs.existsSync(cand)) return path.dirname(cand);
    if (d === path.dirname(d)) return null;
  }
}

// name -> version of every top-level package in node_modules (scoped included).
function snapshotTopLevel() {
  const nm = path.join(ROOT, 'node_modules');
  const out = new Map();
  if (!fs.existsSync(nm)) return out;
  for (const e of fs.readdirSync(nm)) {
    if (e.startsWith('.')) continue;
    const names = e.startsWith('@')
      ? fs.readdirSync(path.join(nm, e)).map((s) => `${e}/${s}`)
      : [e];
    for (const n of names) {
      const pj = readJson(path.join(nm, n, 'package.json'));
      if (pj) out.set(n, pj.version);
    }
  }
  return out;
}

function npmCommand() {
  const ep = process.env.npm_execpath;
  if (ep && /npm-cli\.js$/.test(ep) && fs.existsSync(ep)) return [process.execPath, [ep]];
  return ['npm', []];
}

function installPackage() {
  const files = ['package.json', 'package-lock.json', 'npm-shrinkwrap.json'];
  const backup = new Map(files.map((f) => {
    const p = path.join(ROOT, f);
    return [f, fs.existsSync(p) ? fs.readFileSync(p) : null];
  }));
  const before = snapshotTopLevel();
  const [npm, pre] = npmCommand();
  const argv = [...pre, 'install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund',
    `@tensorflow/tfjs-node@${TFJS_NODE_VERSION}`];
  log(`npm ${argv.slice(pre.length).join(' ')}`);
  const t = Date.now();
  const r = run(npm, argv, { cwd: ROOT, env: { ...process.env, npm_config_loglevel: 'error' } });

  // Put back package.json / lockfiles if npm touched them despite --no-save.
  for (const [f, buf] of backup) {
    const p = path.join(ROOT, f);
    const now = fs.existsSync(p) ? fs.readFileSync(p) : null;
    if (buf === null && now !== null) { fs.rmSync(p); log(`  removed ${f} created by npm`); }
    else if (buf !== null && (now === null || !buf.equals(now))) { fs.writeFileSync(p, buf); log(`  restored ${f} (npm had changed it)`); }
  }
  if (!r.ok) {
    throw new Error(`npm install of @tensorflow/tfjs-node@${TFJS_NODE_VERSION} failed (exit ${r.status}):\n${tail(r.stderr || r.stdout, 15)}`);
  }
  const after = snapshotTopLevel();
  const removed = [...before.keys()].filter((n) => !after.has(n));
  const changed = [...before.keys()].filter((n) => after.has(n) && after.get(n) !== before.get(n) && n !== '@tensorflow/tfjs-node');
  const added = [...after.keys()].filter((n) => !before.has(n));
  if (removed.length || changed.length) {
    throw new Error('npm install changed other packages: '
      + [...removed.map((n) => `removed ${n}@${before.get(n)}`),
        ...changed.map((n) => `${n} ${before.get(n)} -> ${after.get(n)}`)].join(', ')
      + ' — run `npm install` to restore them');
  }
  if (!packageInstalled()) throw new Error('npm install finished but @tensorflow/tfjs-node or its dependencies are missing');
  log(`  done in ${secs(t)}: ${added.length} package${added.length === 1 ? '' : 's'} added, none removed or changed; package.json/package-lock.json unchanged`);
  return (Date.now() - t) / 1000;
}

// ---------------------------------------------------------------------------
// 4. Stage deps/ (libs hard-linked from the cache, symlinked if that fails) and build
// ---------------------------------------------------------------------------
function stageDeps() {
  const deps = path.join(PKG_DIR, 'deps');
  fs.rmSync(deps, { recursive: true, force: true });
  const lib = path.join(deps, 'lib');
  fs.mkdirSync(lib, { recursive: true });
  let how = 'hard-linked';
  for (const so of [LIB_CC, LIB_FW]) {
    const src = path.join(LIB_CACHE, 'lib', so);
    const dst = path.join(lib, so);
    try {
      fs.linkSync(src, dst);
    } catch {
      fs.symlinkSync(src, dst); // other filesystem: symlink into the cache (keep the cache then)
      how = 'symlinked';
    }
  }
  // The names binding.gyp links against and install.js checks for.
  fs.symlinkSync(LIB_CC, path.join(lib, 'libtensorflow.so'));
  fs.symlinkSync(LIB_CC, path.join(lib, 'libtensorflow.so.2.9.1'));
  fs.symlinkSync(LIB_FW, path.join(lib, 'libtensorflow_framework.so'));
  fs.cpSync(path.join(LIB_CACHE, 'include'), path.join(deps, 'include'), { recursive: true });
  fs.writeFileSync(path.join(deps, 'FROM_WHEEL.txt'),
    `TF C library from the ${TF_WHEEL_SPEC} wheel, staged by scripts/setup-tfjs-node.mjs\ncache: ${LIB_CACHE}\n`);
  log(`staged deps/lib (${how} from ${LIB_CACHE}) + deps/include`);
  if (how === 'symlinked') log('  note: the cache is on another filesystem, so deps/lib points into it; keep the cache');
  return how;
}

function nodeHeadersDir() {
  // node-gyp otherwise downloads headers from nodejs.org, which may be unreachable.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const h = path.join(prefix, 'include', 'node', 'node_version.h');
  try {
    const s = fs.readFileSync(h, 'utf8');
    const v = ['MAJOR', 'MINOR', 'PATCH'].map((k) => s.match(new RegExp(`#define NODE_${k}_VERSION (\\d+)`))[1]).join('.');
    if (v === process.versions.node && fs.existsSync(path.join(prefix, 'include', 'node', 'common.gypi'))) return prefix;
  } catch { /* no local headers */ }
  return null;
}

function checkToolchain() {
  const missing = ['make', 'g++', 'python3'].filter((t) => !run('sh', ['-c', `command -v ${t}`]).ok);
  if (missing.length) throw new Error(`cannot build the tfjs-node binding: missing ${missing.join(', ')} (install build-essential)`);
}

function buildBinding() {
  const preGyp = findPackageDir('@mapbox/node-pre-gyp', PKG_DIR);
  if (!preGyp) throw new Error('@mapbox/node-pre-gyp not found next to @tensorflow/tfjs-node');
  const bin = path.join(preGyp, 'bin', 'node-pre-gyp');
  const env = { ...process.env, JOBS: process.env.JOBS || 'max' };
  if (!env.npm_config_nodedir) {
    const nd = nodeHeadersDir();
    if (nd) env.npm_config_nodedir = nd;
  }
  // Same as the package's own "build-addon-from-source" script; never touches the network
  // for the addon (install.js would first try storage.googleapis.com).
  const argv = [bin, 'install', '--build-from-source'];
  log(`building the N-API binding: node-pre-gyp install --build-from-source`
    + (env.npm_config_nodedir ? ` (node headers from ${env.npm_config_nodedir}/include/node)` : ''));
  const t = Date.now();
  const r = run(process.execPath, argv, { cwd: PKG_DIR, env });
  if (!r.ok) {
    throw new Error(`binding build failed (exit ${r.status}${r.error ? ', ' + r.error.message : ''}):\n${tail(r.stdout + '\n' + r.stderr, 30)}`);
  }
  log(`  built in ${secs(t)}`);
  return (Date.now() - t) / 1000;
}

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------
// Leftovers of runs that were killed mid-download/extract (.work-<pid>-XXXXXX, pid gone).
function removeStaleWorkDirs() {
  for (const e of fs.readdirSync(CACHE_DIR)) {
    const m = /^\.work-(\d+)-/.exec(e);
    if (!m) continue;
    let alive = true;
    try { process.kill(Number(m[1]), 0); } catch (err) { alive = err.code === 'EPERM'; }
    if (!alive) fs.rmSync(path.join(CACHE_DIR, e), { recursive: true, force: true });
  }
}

function freeBytes(dir) {
  try { const s = fs.statfsSync(dir); return s.bavail * s.bsize; } catch { return null; }
}

function duBytes(p) {
  let total = 0;
  const seen = new Set();
  const walk = (q) => {
    const st = fs.lstatSync(q);
    if (st.isDirectory()) { for (const e of fs.readdirSync(q)) walk(path.join(q, e)); return; }
    if (!st.isFile()) return;
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    total += st.size;
  };
  if (fs.existsSync(p)) walk(p);
  return total;
}

function mb(b) { return `${(b / 1e6).toFixed(0)} MB`; }

function ready(res) {
  console.log(`tfjs-node ready: backend tensorflow, TF ${res.tfVersion}`);
}

// ---------------------------------------------------------------------------
async function main() {
  if (!FORCE) {
    log('checking whether @tensorflow/tfjs-node already works');
    const p = probe();
    if (p.ok) {
      log(`already set up (require took ${p.loadMs} ms); nothing to do`);
      ready(p);
      finish(0);
    }
    log(`not usable yet: ${p.reason}`);
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new SoftFail(`the tensorflow-cpu wheel route is for linux-x64 only (this is ${process.platform}-${process.arch})`);
  }
  checkToolchain();

  const lib = ensureLibs();
  let tInstall = 0;
  if (packageInstalled()) {
    log(`@tensorflow/tfjs-node@${TFJS_NODE_VERSION} package files present`);
  } else {
    tInstall = installPackage();
  }
  const how = stageDeps();

  const libDir = path.join(PKG_DIR, 'lib');
  const hasBinding = fs.existsSync(libDir)
    && fs.readdirSync(libDir).some((d) => fs.existsSync(path.join(libDir, d, 'tfjs_binding.node')));
  let tBuild = 0;
  let res = null;
  if (!FORCE && hasBinding) {
    log('binding already built; verifying it against the staged library');
    res = probe();
    if (!res.ok) log(`  not usable (${res.reason}); rebuilding`);
  }
  if (!res || !res.ok) {
    tBuild = buildBinding();
    log('verifying in a child process (require, backend, matMul)');
    res = probe();
  }
  if (!res.ok) {
    throw new Error(`verification failed: ${res.reason}${res.stderr ? '\n' + tail(res.stderr, 15) : ''}`);
  }
  const t = lib.times || {};
  log('times: '
    + (lib.cached ? 'libs from cache' : `wheel download ${t.download.toFixed(1)} s, extract ${t.extract.toFixed(1)} s`)
    + (tInstall ? `, npm install ${tInstall.toFixed(1)} s` : '')
    + (tBuild ? `, build ${tBuild.toFixed(1)} s` : '')
    + `, require ${res.loadMs} ms`);
  log(`disk: cache ${mb(duBytes(LIB_CACHE))} at ${LIB_CACHE}; package deps/: `
    + `${(duBytes(path.join(PKG_DIR, 'deps', 'include')) / 1e6).toFixed(1)} MB headers + the 2 libraries ${how} `
    + `(${how === 'hard-linked' ? 'no extra space' : 'no extra space, but the cache must stay'})`);
  ready(res);
  finish(0);
}

main().catch((e) => {
  if (e instanceof SoftFail) {
    console.log(`[setup:tfjs-node] tfjs-node not set up: ${e.message}. The wasm backend will be used.`);
    finish(STRICT ? 1 : 0);
  }
  console.error(`[setup:tfjs-node] FAILED: ${(e && e.message) || e}`);
  if (process.env.SETUP_TFJS_DEBUG && e && e.stack) console.error(e.stack);
  finish(1);
});
