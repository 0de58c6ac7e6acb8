// The import graph of src/: no circle (type-only imports included, as `madge --circular` counts them), and imports
// flow one way between the layers: nn → models → pipelines → cli / server / training.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** file → the src files it imports (static, re-exports, type-only and dynamic imports of relative paths). */
function importGraph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sources(SRC)) {
    const text = fs.readFileSync(f, 'utf8');
    const specs = [
      ...[...text.matchAll(/^\s*(?:import|export)\b[^'";]*?\bfrom\s+'(\.[^']+)'/gm)].map((m) => m[1]!),
      ...[...text.matchAll(/^\s*import\s+'(\.[^']+)'/gm)].map((m) => m[1]!),
      ...[...text.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g)].map((m) => m[1]!),
    ];
    g.set(f, specs.map((s) => path.resolve(path.dirname(f), s.replace(/\.js$/, '.ts'))));
  }
  return g;
}

function cycles(g: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      if (!g.has(d)) continue;
      if (state.get(d) === 'open') found.push([...stack.slice(stack.indexOf(d)), d].map((f) => path.relative(SRC, f)));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const f of g.keys()) if (!state.has(f)) visit(f);
  return found;
}

describe('import graph of src/', () => {
  const g = importGraph();

  it('reads every module and resolves every relative import to a file', () => {
    expect(g.size).toBeGreaterThan(100);
    const missing = [...g].flatMap(([f, deps]) => deps.filter((d) => !g.has(d) && !fs.existsSync(d)).map((d) => `${path.relative(SRC, f)} → ${path.relative(SRC, d)}`));
    expect(missing).toEqual([]);
  });

  it('has no circle', () => {
    expect(cycles(g).map((c) => c.join(' → '))).toEqual([]);
  });

  it('finds a circle when there is one (the check can fail)', () => {
    const a = path.join(SRC, 'a.ts');
    const b = path.join(SRC, 'b.ts');
    expect(cycles(new Map([[a, [b]], [b, [a]]]))).toEqual([['a.ts', 'b.ts', 'a.ts']]);
  });

  it('imports flow nn → models → pipelines → cli / server / training', () => {
    const above: Record<string, string[]> = {
      nn: ['models', 'pipelines', 'cli', 'server', 'training'],
      models: ['pipelines', 'cli', 'server', 'training'],
      pipelines: ['cli', 'server', 'training'],
    };
    const layer = (f: string) => path.relative(SRC, f).split(path.sep)[0]!;
    const wrong = [...g].flatMap(([f, deps]) =>
      deps.filter((d) => (above[layer(f)] ?? []).includes(layer(d))).map((d) => `${path.relative(SRC, f)} → ${path.relative(SRC, d)}`),
    );
    expect(wrong).toEqual([]);
  });
});
