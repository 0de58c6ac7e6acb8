// scripts/demo/widen-vae.ts: a VAE widened (block_out_channels and norm_num_groups × 1.5) must encode and decode as
// the original — the latents a transformer was trained on stay the same while the wider decoder trains. The script
// checks one clip itself before writing; this checks the written folder independently: random latents through both
// decoders, another clip through both encoders, and the config and tensor shapes of the new folder.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clipRng, placeClip, renderClip } from '../src/data/index.js';
import { framesToChannelsFirst } from '../src/media/index.js';
import { AutoencoderKLCogVideoX } from '../src/models/vae.js';
import { PhiloxGenerator } from '../src/schedulers/index.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { BACKENDS, useBackend } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'assets', 'demo-model', 'vae');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'widen-vae-'));
  await useBackend(BACKENDS[0]!);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const maxAbs = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

describe('scripts/demo/widen-vae.ts', () => {
  it('widens the bundled VAE to 1.5× the channels and groups without changing what it computes', async () => {
    const out = path.join(dir, 'wide', 'vae');
    const r = spawnSync(TSX, ['scripts/demo/widen-vae.ts', '--vae', SRC, '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 110_000 });
    expect(r.status, r.stderr).toBe(0);
    const src = JSON.parse(fs.readFileSync(path.join(SRC, 'config.json'), 'utf8')) as { block_out_channels: number[]; norm_num_groups: number };
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { block_out_channels: number[]; norm_num_groups: number };
    expect(cfg.block_out_channels).toEqual(src.block_out_channels.map((c) => c * 1.5));
    expect(cfg.norm_num_groups).toBe(src.norm_num_groups * 1.5);
    const w = SafetensorsFile.open(path.join(out, 'diffusion_pytorch_model.safetensors'));
    expect(w.entry('decoder.up_blocks.0.resnets.0.conv1.conv.weight').shape).toEqual([96, 96, 3, 3, 3]);
    expect(w.entry('encoder.conv_out.conv.weight').shape).toEqual([10, 96, 3, 3, 3]);
    // a decoder conv: the new output channels are live (copies of old ones plus noise: training can move them) and
    // nothing flows from a new input channel yet; the encoder's new channels are all zero
    const dec = w.read('decoder.up_blocks.0.resnets.0.conv1.conv.weight').toFloat32();
    const at = (o: number, i: number) => (o * 96 + i) * 27;
    const block = (o0: number, o1: number, i0: number, i1: number) => {
      let m = 0;
      for (let o = o0; o < o1; o++) for (let i = i0; i < i1; i++) for (let k = 0; k < 27; k++) m = Math.max(m, Math.abs(dec[at(o, i) + k]!));
      return m;
    };
    expect(block(64, 96, 0, 64)).toBeGreaterThan(0);
    expect(block(0, 96, 64, 96)).toBe(0);
    const enc = w.read('encoder.down_blocks.2.resnets.0.conv2.conv.weight').toFloat32(); // [96, 96, 3, 3, 3]
    const encNew = enc.filter((_, j) => Math.floor(j / 27 / 96) >= 64 || Math.floor(j / 27) % 96 >= 64);
    expect(encNew.length).toBe((96 * 96 - 64 * 64) * 27);
    expect(encNew.every((v) => v === 0)).toBe(true);
    w.close();

    const [a, b] = [await AutoencoderKLCogVideoX.fromPretrained(SRC), await AutoencoderKLCogVideoX.fromPretrained(out)];
    // decoders: random latents [1, 5, 3 latent frames, 16, 24] (9 frames 64×96)
    const z = tf.tensor5d(new PhiloxGenerator(3).randnHost([1 * 5 * 3 * 16 * 24]), [1, 5, 3, 16, 24]);
    const [ya, yb] = [a.decode(z), b.decode(z)];
    expect(ya.shape).toEqual([1, 3, 9, 64, 96]);
    expect(maxAbs(ya, yb)).toBeLessThanOrEqual(1e-5);
    // encoders: a clip other than the script's own check
    const frames = renderClip(placeClip({ color: 'magenta', shape: 'triangle', direction: 'up', background: 'white' }, clipRng(11, 3), { width: 96, height: 64, frames: 9 }));
    const x = tf.tensor5d(framesToChannelsFirst(frames, 64, 96, 'signed'), [1, 3, 9, 64, 96]);
    const [pa, pb] = [a.encode(x), b.encode(x)];
    const [ma, mb] = [pa.mode(), pb.mode()];
    expect(maxAbs(ma, mb)).toBeLessThanOrEqual(1e-5);
    tf.dispose([z, ya, yb, x, ma, mb]);
    pa.dispose();
    pb.dispose();
    a.dispose();
    b.dispose();
  });

  it('refuses a factor that breaks the group size, before reading any weights', () => {
    const r = spawnSync(TSX, ['scripts/demo/widen-vae.ts', '--vae', SRC, '--out', path.join(dir, 'bad'), '--factor', '1.1'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--factor 1\.1: needs > 1 and integer results/);
    expect(fs.existsSync(path.join(dir, 'bad'))).toBe(false);
  });
});
