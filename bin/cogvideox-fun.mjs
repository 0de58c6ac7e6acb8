#!/usr/bin/env node
// The `cogvideox-fun` command. In a checkout (src/ present, tsx installed as a dev dependency) it runs the TypeScript
// sources, so a fresh clone works right after `npm install`; an installed package runs the compiled dist/.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
let main;
let tsx = null;
if (existsSync(source)) {
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    // no tsx: fall back to dist/
  }
}
if (tsx) {
  tsx.register();
  ({ main } = await import(source.href));
} else {
  const dist = new URL('../dist/cli/main.js', import.meta.url);
  if (!existsSync(dist)) {
    process.stderr.write('error: cogvideox-fun is not built: run `npm install` (for tsx) or `npm run build`\n');
    process.exit(1);
  }
  ({ main } = await import(dist.href));
}
process.exit(await main(process.argv.slice(2)));
