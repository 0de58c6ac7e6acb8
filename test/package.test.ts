// The package as others get it: a lockfile `npm ci` accepts on any platform.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

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
