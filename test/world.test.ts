// src/data: the procedural demo world (determinism, held-out combinations, captions, Fun metadata) and the analyzer
// (right on every world clip after an MP4 round trip; wrong clips are caught).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BACKGROUND_RGB,
  COLORS,
  COLOR_RGB,
  HELD_OUT,
  allCombos,
  analyzeVideo,
  canonicalCaption,
  clipRng,
  comboKey,
  isHeldOut,
  placeClip,
  psnr,
  renderClip,
  renderFrame,
  sampleClip,
  worldEntries,
  writeWorld,
  type WorldEntry,
} from '../src/data/index.js';
import { framesToChannelsFirst, readVideo } from '../src/media/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'world-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('world', () => {
  it('is deterministic from the seed, and clip i does not depend on the count', () => {
    const a = worldEntries({ count: 30, seed: 5 });
    const b = worldEntries({ count: 10, seed: 5 });
    expect(b).toEqual(a.slice(0, 10));
    expect(worldEntries({ count: 10, seed: 6 })).not.toEqual(b);
    const s = sampleClip(5, 3);
    expect(Buffer.from(renderFrame(s, 4)).equals(Buffer.from(renderFrame(sampleClip(5, 3), 4)))).toBe(true);
  });

  it('never trains on a held-out combination, and covers every other one', () => {
    const seen = new Set(worldEntries({ count: 3000, seed: 1 }).map((e) => comboKey(e.spec)));
    for (const c of HELD_OUT) expect(seen.has(comboKey(c))).toBe(false);
    const trainable = allCombos().filter((c) => !isHeldOut(c));
    expect(trainable.length).toBe(216 - HELD_OUT.length);
    for (const c of trainable) expect(seen.has(comboKey(c)), comboKey(c)).toBe(true);
  });

  it('held-out combinations use every value, each of which is also seen in training', () => {
    for (const k of ['color', 'shape', 'direction', 'background'] as const) {
      const values = new Set(HELD_OUT.map((c) => c[k]));
      const all = new Set(allCombos().map((c) => c[k]));
      expect(values).toEqual(all);
    }
  });

  it('moves the object the stated way, ending in frame', () => {
    for (let i = 0; i < 200; i++) {
      const s = sampleClip(9, i);
      const last = renderFrame(s, s.frames - 1);
      const bg = BACKGROUND_RGB[s.background];
      let objectPixels = 0;
      for (let p = 0; p < last.length; p += 3) if (last[p] !== bg[0] || last[p + 1] !== bg[1] || last[p + 2] !== bg[2]) objectPixels++;
      expect(objectPixels, `clip ${i}`).toBeGreaterThan(20);
    }
  });

  it('framesToChannelsFirst: [3, F, H, W], f32(u8 / 255) or its ·2 − 1, at an offset of a batch; rejects a wrong frame size', () => {
    const s = sampleClip(9, 3);
    const frames = renderClip(s);
    const [F, H, W] = [frames.length, s.height, s.width];
    const unit = framesToChannelsFirst(frames, H, W, 'unit');
    const signed = framesToChannelsFirst(frames, H, W, 'signed');
    expect(unit.length).toBe(3 * F * H * W);
    const batch = framesToChannelsFirst(frames, H, W, 'signed', new Float32Array(2 * signed.length), signed.length);
    expect(batch.subarray(0, signed.length).every((v) => v === 0)).toBe(true);
    expect(Buffer.from(batch.buffer, signed.length * 4).equals(Buffer.from(signed.buffer))).toBe(true);
    for (const [t, y, x, ch] of [[0, 0, 0, 0], [F - 1, H - 1, W - 1, 2], [5, 10, 20, 1]] as const) {
      const i = ((ch * F + t) * H + y) * W + x;
      const u8 = frames[t]![(y * W + x) * 3 + ch]!;
      expect(unit[i]).toBe(Math.fround(u8 / 255));
      expect(signed[i]).toBe(Math.fround(Math.fround(u8 / 255) * 2 - 1));
    }
    // every byte value: f32 ops as torch's / 255 then ·2 − 1 (×2 is exact in f32, the subtraction rounds once)
    const all = [Uint8Array.from({ length: 256 * 3 }, (_, i) => Math.floor(i / 3))];
    const [u, sg] = [framesToChannelsFirst(all, 16, 16, 'unit'), framesToChannelsFirst(all, 16, 16, 'signed')];
    for (let v = 0; v < 256; v++) {
      expect(u[v]).toBe(Math.fround(v / 255));
      expect(sg[v]).toBe(Math.fround(Math.fround(v / 255) * 2 - 1));
    }
    expect([sg[0], sg[255]]).toEqual([-1, 1]);
    expect(() => framesToChannelsFirst(frames, H, W + 1, 'unit')).toThrow(/frame 0: expected .* got/);
  });

  it('captions: half canonical, the rest paraphrases naming the colour', () => {
    const entries = worldEntries({ count: 400, seed: 2 });
    const canonical = entries.filter((e) => e.text === canonicalCaption(e.spec)).length;
    expect(canonical).toBeGreaterThan(150);
    expect(canonical).toBeLessThan(250);
    for (const e of entries) expect(e.text).toContain(e.spec.color);
    expect(canonicalCaption({ color: 'red', shape: 'circle', direction: 'right', background: 'black' })).toBe(
      'a red circle moving right on a black background',
    );
  });
});

describe('writeWorld + analyzer on MP4 clips', () => {
  let entries: WorldEntry[];
  const dir = path.join(tmp, 'world');
  beforeAll(async () => {
    entries = await writeWorld({ out: dir, count: 100, seed: 11, images: 2 });
  });

  it('writes Fun metadata naming existing files', () => {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8')) as Record<string, unknown>[];
    expect(meta.length).toBe(102);
    for (const m of meta) {
      expect(Object.keys(m).sort()).toEqual(['file_path', 'height', 'text', 'type', 'width']);
      expect(fs.existsSync(path.join(dir, m.file_path as string))).toBe(true);
    }
    expect(meta.filter((m) => m.type === 'image').length).toBe(2);
    const world = JSON.parse(fs.readFileSync(path.join(dir, 'world.json'), 'utf8')) as { clips: unknown[] };
    expect(world.clips.length).toBe(102);
  });

  it('the analyzer gets colour, shape, direction and background right on all 100 decoded clips', async () => {
    let right = 0;
    const wrong: string[] = [];
    for (const e of entries.filter((x) => x.type === 'video')) {
      const v = await readVideo(path.join(dir, e.file_path));
      expect(v.frames.length).toBe(e.spec.frames);
      const a = analyzeVideo(v);
      const got = { color: a.color, shape: a.shape, direction: a.direction, background: a.background };
      const want = { color: e.spec.color, shape: e.spec.shape, direction: e.spec.direction, background: e.spec.background };
      if (JSON.stringify(got) === JSON.stringify(want)) right++;
      else wrong.push(`${e.file_path}: ${JSON.stringify(got)} vs ${JSON.stringify(want)} fill ${a.fillRatio}`);
    }
    expect(wrong).toEqual([]);
    expect(right).toBe(100);
  });

  it('catches a recoloured clip, a reversed clip, a still clip and a different background', async () => {
    const e = entries.find((x) => x.type === 'video' && x.spec.color === 'red' && x.spec.background !== 'white')!;
    const v = await readVideo(path.join(dir, e.file_path));
    // red -> blue by rotating channels (R,G,B) -> (G,B,R)... for red (255,0,0) that gives (0,0,255)
    const rotated = v.frames.map((f) => {
      const g = new Uint8Array(f.length);
      for (let p = 0; p < f.length; p += 3) {
        g[p] = f[p + 1]!;
        g[p + 1] = f[p + 2]!;
        g[p + 2] = f[p]!;
      }
      return g;
    });
    expect(analyzeVideo({ ...v, frames: rotated }).color).toBe('blue');
    const reversed = analyzeVideo({ ...v, frames: [...v.frames].reverse() }).direction;
    const opposite = { left: 'right', right: 'left', up: 'down', down: 'up' }[e.spec.direction];
    expect(reversed).toBe(opposite);
    expect(analyzeVideo({ ...v, frames: v.frames.map(() => v.frames[v.frames.length - 1]!) }).direction).toBe('none');
    const onWhite = placeClip({ ...e.spec, background: 'white' }, clipRng(1, 1), { width: 96, height: 64, frames: 9 });
    expect(analyzeVideo({ frames: renderClip(onWhite), width: 96, height: 64 }).background).toBe('white');
  });

  it('finds no object in a blank clip, and every colour on every background', () => {
    const blank = new Uint8Array(96 * 64 * 3).fill(128);
    const a = analyzeVideo({ frames: [blank, blank], width: 96, height: 64 });
    expect(a.color).toBeNull();
    expect(a.background).toBe('gray');
    for (const color of COLORS) {
      for (const background of ['black', 'white', 'gray'] as const) {
        const s = placeClip({ color, shape: 'square', direction: 'down', background }, clipRng(3, 0));
        const got = analyzeVideo({ frames: renderClip(s), width: s.width, height: s.height });
        expect([got.color, got.shape, got.direction, got.background]).toEqual([color, 'square', 'down', background]);
        expect(COLOR_RGB[color]).toBeDefined();
      }
    }
  });

  it('psnr: Infinity on equal frames, ~48 dB for an off-by-one everywhere, rejects size mismatch', () => {
    const a = renderFrame(sampleClip(1, 0), 0);
    expect(psnr(a, a)).toBe(Infinity);
    const b = a.map((x) => (x === 255 ? 254 : x + 1));
    expect(psnr(a, b)).toBeCloseTo(48.13, 1);
    expect(() => psnr(a, a.subarray(3))).toThrow(/sizes differ/);
  });

  it('rejects bad input with a clear error', async () => {
    expect(() => analyzeVideo({ frames: [], width: 4, height: 4 })).toThrow(/no frames/);
    expect(() => analyzeVideo({ frames: [new Uint8Array(10)], width: 4, height: 4 })).toThrow(/frame 0 has 10 bytes/);
    await expect(writeWorld({ out: path.join(tmp, 'bad'), count: -1, seed: 0 })).rejects.toThrow(/count/);
  });
});

describe('scripts/demo/make-world.ts', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'scripts/demo/make-world.ts', ...args], { encoding: 'utf8' });

  it('writes the world the options describe', () => {
    const out = path.join(tmp, 'cli');
    const r = run('--out', out, '--count', '3', '--seed', '4', '--frames', '9', '--width', '64', '--height', '48');
    expect(r.status, r.stderr).toBe(0);
    const meta = JSON.parse(fs.readFileSync(path.join(out, 'metadata.json'), 'utf8')) as { file_path: string; width: number; height: number }[];
    expect(meta.map((m) => [m.file_path, m.width, m.height])).toEqual([
      ['videos/000000.mp4', 64, 48],
      ['videos/000001.mp4', 64, 48],
      ['videos/000002.mp4', 64, 48],
    ]);
  });

  it('names a bad option', () => {
    const bad = run('--out', path.join(tmp, 'cli-bad'), '--count', '-2', '--seed', '1');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--count must be a non-negative integer');
    const missing = run('--count', '2', '--seed', '1');
    expect(missing.stderr).toContain('--out is required');
    const unknown = run('--out', 'x', '--count', '1', '--seed', '1', '--colour', 'red');
    expect(unknown.stderr).toContain('unknown option --colour');
  });
});
