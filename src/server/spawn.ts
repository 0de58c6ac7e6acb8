// Starts one of the server's worker threads, from the compiled JavaScript or, in a checkout without dist/, from the
// TypeScript sources through tsx (as the CLI's own worker).
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { SHARE_ENV, Worker } from 'node:worker_threads';

/** The ESM entry of tsx/esm/api (its "import" export), found through require.resolve of its package.json. */
function tsxEsmApi(): string {
  const pkgJson = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(fs.readFileSync(pkgJson, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  return pathToFileURL(path.join(path.dirname(pkgJson), pkg.exports['./esm/api']!.import.default)).href;
}

export function spawnWorker(name: string, workerData: unknown): Worker {
  if (import.meta.url.endsWith('.ts')) {
    const entry = new URL(`./${name}.ts`, import.meta.url).href;
    // import.meta.resolve is missing under some loaders (vitest's); require.resolve finds the same package
    const tsx = typeof import.meta.resolve === 'function' ? import.meta.resolve('tsx/esm/api') : tsxEsmApi();
    const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
    return new Worker(boot, { eval: true, workerData, env: SHARE_ENV });
  }
  return new Worker(new URL(`./${name}.js`, import.meta.url), { workerData, env: SHARE_ENV });
}
