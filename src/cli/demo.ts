// The bundled demo checkpoint (assets/demo-model: a tiny Fun-2b-InP layout with random weights, < 3 MB) that
// `generate` runs when no --model is given, and what the user is told about it.
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

let found: string | undefined;

/** assets/demo-model, found from src/cli or dist/cli alike (both are two levels below the package root). */
export function demoModelDir(): string {
  if (found) return found; // once there, it stays (the server asks for every submission)
  const dir = fileURLToPath(new URL('../../assets/demo-model', import.meta.url));
  if (!fs.existsSync(dir)) throw new Error(`the bundled demo model is missing (${dir}); reinstall the package or pass --model DIR`);
  return (found = dir);
}

/** Demo defaults: the tiny model's own grid (64×96, 9 frames) and few steps, so a run takes seconds. */
export const DEMO_DEFAULTS = { steps: 10, prompt: 'A cute cat is playing the guitar.' };

export const DEMO_NOTICE = [
  'No --model given: running the bundled DEMO model (tiny, random weights; the video is noise, not a picture).',
  'For real videos download a CogVideoX-Fun checkpoint, e.g. alibaba-pai/CogVideoX-Fun-V1.1-2b-InP from Hugging Face',
  '(huggingface.co/alibaba-pai) or ModelScope, and run: cogvideox-fun generate --model path/to/CogVideoX-Fun-V1.1-2b-InP --prompt "…"',
];
