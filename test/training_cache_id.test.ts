// src/training/samples componentId: the cache identity of a model component (cached latents and text embeddings
// are keyed by it), which must change when the weights do, not only when their size does.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { componentId } from '../src/training/samples.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'component-id-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function folder(name: string, config: string, weights: Buffer): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), config);
  fs.writeFileSync(path.join(dir, 'diffusion_pytorch_model.safetensors'), weights);
  return dir;
}

describe('componentId', () => {
  const small = Buffer.alloc(100_000, 7);
  const changed = Buffer.from(small);
  changed[54_321] = 8; // same size, one byte different (a re-trained component exported with the same config)

  it('same config and bytes → same id; the same size with other bytes, or another config → another id', () => {
    const a = componentId(folder('a', '{"x":1}', small));
    expect(componentId(folder('a2', '{"x":1}', small))).toBe(a);
    expect(componentId(folder('b', '{"x":1}', changed))).not.toBe(a);
    expect(componentId(folder('c', '{"x":2}', small))).not.toBe(a);
  });

  it('files over 64 × 64 KiB: sampled chunks (the first, the last, evenly between) decide', () => {
    const big = Buffer.alloc(5 * 2 ** 20 + 123, 3);
    const base = componentId(folder('big', '{}', big));
    for (const at of [0, big.length - 1]) {
      const b = Buffer.from(big);
      b[at] = 4;
      expect(componentId(folder(`big-${at}`, '{}', b))).not.toBe(base);
    }
  });
});
