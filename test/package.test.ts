// The package as others get it: a lockfile `npm ci` accepts on any platform, and a tarball (`npm pack`) that another
// project installs, imports (JavaScript and TypeScript) and runs the CLI of.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readVideo } from '../src/media/video_read.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(path.join(ROOT, file), 'utf8')) as T;

/** Where Node (and npm) finds `name` from the package at lock key `from`: its own node_modules, then each parent's. */
function resolveInLock(packages: Record<string, LockEntry>, from: string, name: string): string | undefined {
  for (let dir = from; ; ) {
    const key = `${dir ? `${dir}/` : ''}node_modules/${name}`;
    if (packages[key]) return key;
    if (!dir) return undefined;
    const i = dir.lastIndexOf('/node_modules/');
    dir = i < 0 ? '' : dir.slice(0, i);
  }
}

describe('package-lock.json', () => {
  const pkg = readJson<LockEntry>('package.json');
  const lock = readJson<{ lockfileVersion: number; packages: Record<string, LockEntry> }>('package-lock.json');

  it('records exactly the dependency ranges of package.json (what `npm ci` compares first)', () => {
    const root = lock.packages['']!;
    for (const field of ['dependencies', 'devDependencies', 'optionalDependencies'] as const) {
      expect(root[field] ?? {}, `package-lock.json packages[""].${field}`).toEqual(pkg[field] ?? {});
    }
  });

  // `npm ci` needs every optional dependency in the lock, also those for other platforms (rollup's and esbuild's
  // per-platform binaries): a lock written by an install that dropped them fails with "Missing: … from lock file".
  it('holds every dependency of every locked package, optional platform binaries included', () => {
    expect(lock.lockfileVersion).toBeGreaterThanOrEqual(2);
    const missing: string[] = [];
    for (const [key, entry] of Object.entries(lock.packages)) {
      if ((entry as { link?: boolean }).link) continue;
      const wanted = { ...entry.dependencies, ...entry.optionalDependencies };
      for (const [name, peer] of Object.entries(entry.peerDependencies ?? {})) {
        if (!entry.peerDependenciesMeta?.[name]?.optional) wanted[name] = peer;
      }
      if (key === '') Object.assign(wanted, entry.devDependencies);
      for (const name of Object.keys(wanted)) {
        if (!resolveInLock(lock.packages, key, name)) missing.push(`${name} (needed by ${key || 'the package'})`);
      }
    }
    expect(missing, 'missing from package-lock.json (regenerate it with `npm install --package-lock-only`, then check `npm ci`)').toEqual([]);
  });
});

/** The environment of a child npm/node: without the npm_* variables of an enclosing `npm test` (its package and
 *  prefix would otherwise leak into the consumer project), keeping where the npm cache and config live. */
function childEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_registry']);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) || keep.has(k.toLowerCase())) env[k] = v;
  delete env.INIT_CWD;
  delete env.COGVIDEOX_BACKEND;
  return env;
}

function run(cmd: string, args: string[], cwd: string, timeout = 120_000): SpawnSyncReturns<string> {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd, env: childEnv(), encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  console.log(`${[cmd, ...args].join(' ')}: ${((Date.now() - t0) / 1000).toFixed(1)} s (load ${os.loadavg()[0]!.toFixed(1)})`);
  expect(r.error, `${cmd} ${args.join(' ')}`).toBeUndefined();
  expect(r.status, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

describe('the packed package, installed into an empty project', () => {
  const distExisted = fs.existsSync(path.join(ROOT, 'dist'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-pack-'));
  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
    // `npm pack` builds dist/ (prepare); leave the checkout as it was
    if (!distExisted) fs.rmSync(path.join(ROOT, 'dist'), { recursive: true, force: true });
  });

  it('imports the public API (JS and TS types) and runs `npx cogvideox-fun generate` → a valid MP4', { timeout: 300_000 }, async () => {
    // 1. npm pack: `prepare` builds dist/ from a clean slate (it also runs on `npm install` in a checkout and for a git
    //    dependency, which `prepack` would miss)
    run('npm', ['pack', '--silent', '--pack-destination', work], ROOT);
    const pkg = readJson<{ name: string; version: string; license: string; bin: unknown; engines: unknown } & LockEntry>('package.json');
    const tgz = `${pkg.name}-${pkg.version}.tgz`;
    expect(fs.readdirSync(work)).toEqual([tgz]);

    // 2. An empty project depending on the tarball. Offline: the dependencies come from the npm cache (`npm ci` has
    //    just filled it), pinned to this checkout's lockfile (without the dev-only packages). Optional packages are
    //    omitted: tfjs-node's install script would download libtensorflow.
    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.renameSync(path.join(work, tgz), path.join(app, tgz));
    const integrity = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(path.join(app, tgz))).digest('base64')}`;
    const lock = readJson<{ packages: Record<string, LockEntry & { dev?: boolean }> }>('package-lock.json');
    const dependencies = { [pkg.name]: `file:${tgz}` };
    const packages: Record<string, unknown> = {
      '': { name: 'consumer', dependencies },
      [`node_modules/${pkg.name}`]: {
        version: pkg.version,
        resolved: `file:${tgz}`,
        integrity,
        license: pkg.license,
        dependencies: pkg.dependencies,
        optionalDependencies: pkg.optionalDependencies,
        bin: pkg.bin,
        engines: pkg.engines,
      },
    };
    for (const [key, entry] of Object.entries(lock.packages)) if (key !== '' && !entry.dev) packages[key] = entry;
    const write = (name: string, value: unknown) => fs.writeFileSync(path.join(app, name), `${JSON.stringify(value, null, 2)}\n`);
    write('package.json', { name: 'consumer', private: true, type: 'module', dependencies });
    write('package-lock.json', { name: 'consumer', lockfileVersion: 3, requires: true, packages });
    run('npm', ['ci', '--offline', '--omit=optional', '--no-audit', '--no-fund', '--loglevel=error'], app);
    const installed = path.join(app, 'node_modules', pkg.name);
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js']) expect(fs.existsSync(path.join(installed, f)), `tarball ships ${f}`).toBe(true);

    // 3. Import the public API from JavaScript, and type-check a TypeScript user against the shipped declarations.
    fs.writeFileSync(
      path.join(app, 'use.mjs'),
      `import { CogVideoXFunPipeline, setBackend, shutdownBackend } from '${pkg.name}';
       const backend = await setBackend('wasm', { quiet: true });
       console.log(JSON.stringify({ backend, fromPretrained: typeof CogVideoXFunPipeline.fromPretrained }));
       shutdownBackend();\n`,
    );
    const used = run(process.execPath, ['use.mjs'], app);
    expect(JSON.parse(used.stdout.trim().split('\n').at(-1)!)).toEqual({ backend: 'wasm', fromPretrained: 'function' });
    fs.writeFileSync(
      path.join(app, 'use.ts'),
      `import { CogVideoXFunPipeline, setBackend, type BackendName } from '${pkg.name}';
       export const backend: BackendName = await setBackend('wasm', { quiet: true });
       export const load: (dir: string) => Promise<CogVideoXFunPipeline> = (dir) => CogVideoXFunPipeline.fromPretrained(dir);\n`,
    );
    write('tsconfig.json', {
      compilerOptions: { noEmit: true, strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', skipLibCheck: true, types: [] },
      files: ['use.ts'],
    });
    run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);

    // 4. The CLI's demo, as the README's quick start runs it (a tiny video: 5 frames, 2 steps)
    const cli = run('npx', ['--offline', '--no', 'cogvideox-fun', 'generate', '-q', '--frames', '5', '--steps', '2', '--out', 'tiny.mp4'], app);
    expect(cli.stderr).not.toMatch(/not built/);
    const video = await readVideo(path.join(app, 'tiny.mp4'));
    expect([video.frames.length, video.width, video.height, video.fps]).toEqual([5, 96, 64, 8]);
  });
});
