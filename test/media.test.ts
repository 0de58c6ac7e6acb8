// src/media: Pillow/OpenCV parity (fixtures from reference/gen_media.py), image decoding, video reading against
// cv2 and CogVideoX-Fun's own V2V loader, write/read round trips, errors, atomic output.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MediaError,
  readImage,
  readImageForFun,
  readMask,
  readMaskForFun,
  readVideo,
  readVideoForFun,
  resizeImage,
  resizeLinearCv2,
  writePng,
  writeVideo,
  type RasterImage,
  type ResampleFilter,
} from '../src/media/index.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { expectTools, FIXTURES, skipWithout } from './helpers.js';

const MEDIA = path.join(FIXTURES, 'media');
const cases = JSON.parse(fs.readFileSync(path.join(MEDIA, 'cases.json'), 'utf8')) as {
  resize: { source: string; filter: ResampleFilter; width: number; height: number; key: string }[];
  decode: { file: string; pil_mode: string; rgb: string; l: string }[];
  cv2_resize: { source: string; src_width: number; src_height: number; width: number; height: number; key: string }[];
  video: {
    name: string;
    file: string;
    cv2_fps: number;
    cv2_frame_count: number;
    frame_skip: number;
    kept: string;
    v2v: { video_length: number; sample_size: [number, number]; key: string }[];
  }[];
  tagged_video: { file: string; cv2_fps: number; frames: string }[];
};
const fixture = SafetensorsFile.open(path.join(MEDIA, 'media.safetensors'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-media-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A U8 fixture array as stored (SafetensorsFile.read widens integers to int32). */
function u8(key: string, file: SafetensorsFile = fixture): { shape: number[]; data: Uint8Array } {
  return { shape: file.entry(key).shape.slice(), data: file.readBytes(key) };
}

function raster(key: string): RasterImage {
  const t = u8(key);
  return { width: t.shape[1]!, height: t.shape[0]!, channels: t.shape.length === 3 ? 3 : 1, data: t.data };
}

/** Count of differing bytes, max and mean absolute difference. */
function compare(a: Uint8Array, b: Uint8Array): { ndiff: number; max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let ndiff = 0;
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d) ndiff++;
    if (d > max) max = d;
    sum += d;
  }
  return { ndiff, max, mean: sum / a.length };
}

const concat = (frames: Uint8Array[]) => {
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  frames.reduce((o, f) => (out.set(f, o), o + f.length), 0);
  return out;
};

/** Smooth moving gradients (what generated videos look like at their size), RGB HWC. */
function smoothFrames(n: number, width: number, height: number): Uint8Array[] {
  return Array.from({ length: n }, (_, f) => {
    const d = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const o = (y * width + x) * 3;
        d[o] = 128 + 90 * Math.sin((x + 2 * f) / 20);
        d[o + 1] = 128 + 90 * Math.cos((y - f) / 16);
        d[o + 2] = 60 + x + y;
      }
    }
    return d;
  });
}

async function expectMediaError(p: Promise<unknown>, file: string, message: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MediaError);
  expect((err as MediaError).file).toBe(file);
  expect((err as MediaError).message).toMatch(message);
}

describe('Pillow parity', () => {
  it(`resizeImage equals Image.resize byte for byte (${cases.resize.length} cases: L and RGB, 6 filters, up/down/odd/1x1)`, () => {
    const failures: string[] = [];
    for (const c of cases.resize) {
      const out = resizeImage(raster(c.source), c.width, c.height, c.filter);
      const { ndiff } = compare(out.data, u8(c.key).data);
      if (ndiff) failures.push(`${c.key}: ${ndiff} bytes differ`);
    }
    expect(failures).toEqual([]);
  });

  it('start_45x70.png resized to 48x32 (bicubic) is frame 0 of the reference pipeline input (fun_i2v input.video)', async () => {
    const ref = u8('input.video', SafetensorsFile.open(path.join(FIXTURES, 'pipelines', 'fun_i2v.safetensors')));
    const [, c, , h, w] = ref.shape as number[];
    expect([c, h, w]).toEqual([3, 32, 48]);
    const f = ref.shape[2]!;
    const img = await readImageForFun(path.join(FIXTURES, 'pipelines', 'inputs', 'start_45x70.png'), { width: 48, height: 32 });
    const frame0 = new Uint8Array(h! * w! * 3); // [1, 3, F, H, W] -> HWC of frame 0
    for (let ch = 0; ch < 3; ch++) for (let i = 0; i < h! * w!; i++) frame0[i * 3 + ch] = ref.data[ch * f * h! * w! + i]!;
    expect(compare(img.data, frame0).ndiff).toBe(0);
  });

  it('readImage / readMask equal convert("RGB") / convert("L") for PNG (all modes), JPEG, WebP, GIF', async () => {
    const failures: string[] = [];
    for (const c of cases.decode) {
      const file = path.join(MEDIA, c.file);
      const rgb = await readImage(file);
      const l = await readMask(file);
      const dr = compare(rgb.data, u8(c.rgb).data);
      const dl = compare(l.data, u8(c.l).data);
      if (dr.ndiff || dl.ndiff) failures.push(`${c.file} (${c.pil_mode}): rgb ${dr.ndiff}, L ${dl.ndiff} bytes differ`);
      expect([rgb.channels, l.channels]).toEqual([3, 1]);
    }
    expect(failures).toEqual([]);
  });

  it('readMaskForFun is convert("L").resize((w, h)) (bicubic)', async () => {
    const c = cases.decode.find((d) => d.file.endsWith('rgb420.jpg'))!;
    const l = raster(c.l);
    const viaFun = await readMaskForFun(path.join(MEDIA, c.file), { width: 20, height: 15 });
    expect(viaFun.data).toEqual(resizeImage(l, 20, 15, 'bicubic').data);
  });
});

describe('OpenCV parity', () => {
  it(`resizeLinearCv2 equals cv2.resize INTER_LINEAR byte for byte (${cases.cv2_resize.length} cases, incl. 2x INTER_AREA path)`, () => {
    const failures: string[] = [];
    for (const c of cases.cv2_resize) {
      let src: RasterImage;
      if (c.source === 'formula') {
        const data = new Uint8Array(c.src_height * c.src_width * 3);
        for (let y = 0; y < c.src_height; y++) {
          for (let x = 0; x < c.src_width; x++) {
            for (let ch = 0; ch < 3; ch++) data[(y * c.src_width + x) * 3 + ch] = (x * 7 + y * 13 + ch * 50 + ((x * y) % 31)) % 256;
          }
        }
        src = { width: c.src_width, height: c.src_height, channels: 3, data };
      } else {
        src = raster(c.source);
      }
      const { ndiff } = compare(resizeLinearCv2(src, c.width, c.height).data, u8(c.key).data);
      if (ndiff) failures.push(`${c.key}: ${ndiff} bytes differ`);
    }
    expect(failures).toEqual([]);
  });

  for (const v of cases.video) {
    it(`readVideo(${v.file}) gives cv2.VideoCapture's fps and frames (sampled as Fun: every ${v.frame_skip})`, async () => {
      const video = await readVideo(path.join(MEDIA, v.file), { sampleFps: 8 });
      const kept = u8(v.kept);
      expect(video.fps).toBeCloseTo(v.cv2_fps, 10);
      expect([video.frames.length, video.height, video.width]).toEqual(kept.shape.slice(0, 3));
      const d = compare(concat(video.frames), kept.data);
      console.log(`${v.file}: ${video.frames.length} frames vs cv2: ${d.ndiff} bytes differ (max ${d.max})`);
      expect(d.ndiff).toBe(0);
      const all = await readVideo(path.join(MEDIA, v.file));
      expect(all.frames.length).toBe(v.cv2_frame_count);
    });

    for (const c of v.v2v) {
      it(`readVideoForFun(${v.file}, length ${c.video_length}, ${c.sample_size.join('x')}) equals get_video_to_video_latent`, async () => {
        const [height, width] = c.sample_size;
        const out = await readVideoForFun(path.join(MEDIA, v.file), { videoLength: c.video_length, width, height, fps: 8 });
        const ref = u8(c.key);
        expect([out.frames.length, height, width]).toEqual(ref.shape.slice(0, 3));
        expect(out.frameSkip).toBe(v.frame_skip);
        expect(compare(concat(out.frames), ref.data).ndiff).toBe(0);
      });
    }
  }

  it('colour-tagged H.264 (BT.709 matrix; full range) converts as cv2 does, not always as BT.601', async () => {
    for (const v of cases.tagged_video) {
      const video = await readVideo(path.join(MEDIA, v.file));
      const ref = u8(v.frames);
      expect([video.frames.length, video.height, video.width, video.fps]).toEqual([...ref.shape.slice(0, 3), v.cv2_fps]);
      expect(compare(concat(video.frames), ref.data).ndiff, v.file).toBe(0);
    }
  });
});

describe('write / read round trips', () => {
  const W = 64;
  const H = 48;
  const frames = smoothFrames(9, W, H);

  it('MP4 (wasm H.264): same frame count, size and fps; mean abs error < 3 on smooth content', async () => {
    const file = path.join(tmp, 'rt.mp4');
    await writeVideo({ frames, width: W, height: H }, file);
    const back = await readVideo(file);
    expect([back.frames.length, back.width, back.height, back.fps]).toEqual([9, W, H, 8]);
    const d = compare(concat(back.frames), concat(frames));
    console.log(`MP4 round trip (quality 8): mean abs ${d.mean.toFixed(3)}, max ${d.max}, ${fs.statSync(file).size} bytes`);
    expect(d.mean).toBeLessThan(3);
    expect(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it.skipIf(skipWithout('ffprobe'))('ffprobe accepts the MP4 (h264, 9 frames, 8 fps)', async () => {
    expectTools('ffprobe');
    const file = path.join(tmp, 'probe.mp4');
    await writeVideo({ frames, width: W, height: H }, file);
    const r = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', file], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const s = (JSON.parse(r.stdout) as { streams: Record<string, string>[] }).streams[0]!;
    expect([s.codec_name, s.nb_read_frames, s.avg_frame_rate, s.width]).toEqual(['h264', '9', '8/1', W]);
  });

  it.skipIf(skipWithout('ffmpeg', 'ffprobe'))('optional system ffmpeg: writes MP4 (libx264) and reads clip.mp4 like cv2', async () => {
    expectTools('ffmpeg', 'ffprobe');
    const file = path.join(tmp, 'sys.mp4');
    await writeVideo({ frames, width: W, height: H }, file, { ffmpeg: 'ffmpeg' });
    const back = await readVideo(file); // bundled decoder
    expect([back.frames.length, back.width, back.height, back.fps]).toEqual([9, W, H, 8]);
    expect(compare(concat(back.frames), concat(frames)).mean).toBeLessThan(3);
    const v = cases.video.find((c) => c.name === 'mp4')!;
    const viaSystem = await readVideo(path.join(MEDIA, v.file), { sampleFps: 8, ffmpeg: 'ffmpeg' });
    expect(compare(concat(viaSystem.frames), u8(v.kept).data).ndiff).toBe(0);
  });

  it('GIF: same frame count and size, fps 100/12, mean abs error < 4 (one 256-colour palette)', async () => {
    const file = path.join(tmp, 'rt.gif');
    await writeVideo({ frames, width: W, height: H }, file);
    const back = await readVideo(file);
    expect([back.frames.length, back.width, back.height]).toEqual([9, W, H]);
    expect(back.fps).toBeCloseTo(100 / 12, 10);
    const d = compare(concat(back.frames), concat(frames));
    console.log(`GIF round trip: mean abs ${d.mean.toFixed(3)}, max ${d.max}`);
    expect(d.mean).toBeLessThan(4); // measured 3.10: three independent gradients need more than 256 colours
  });

  it('PNG folder and single PNG: exact; folder frames read in natural order with step / maxFrames', async () => {
    const dir = path.join(tmp, 'frames');
    await writeVideo({ frames, width: W, height: H }, dir);
    expect(fs.readdirSync(dir).sort()).toEqual(frames.map((_, i) => `frame_000${i}.png`));
    const back = await readVideo(dir);
    expect([back.frames.length, back.fps]).toEqual([9, 8]);
    expect(compare(concat(back.frames), concat(frames)).ndiff).toBe(0);
    const single = path.join(tmp, 'one.png');
    await writeVideo({ frames: [frames[3]!], width: W, height: H }, single);
    expect((await readImage(single)).data).toEqual(frames[3]);
    // natural order: 2 before 10
    const nat = path.join(tmp, 'natural');
    fs.mkdirSync(nat);
    for (const i of [0, 1, 2, 10]) await writePng({ width: W, height: H, channels: 3, data: frames[i % 9]! }, path.join(nat, `f${i}.png`));
    const sel = await readVideo(nat, { step: 2, maxFrames: 2 });
    expect(sel.frames).toEqual([frames[0], frames[2]]);
  });
});

describe('errors and atomic output', () => {
  const W = 16;
  const H = 8;
  const frames = smoothFrames(3, W, H);

  it('missing and undecodable files name the file', async () => {
    const missing = path.join(tmp, 'nope.png');
    await expectMediaError(readImage(missing), missing, /does not exist/);
    await expectMediaError(readVideo(path.join(tmp, 'nope.mp4')), path.join(tmp, 'nope.mp4'), /does not exist/);
    const text = path.join(tmp, 'text.png');
    fs.writeFileSync(text, 'not an image at all');
    await expectMediaError(readImage(text), text, /not a PNG, JPEG, WebP or GIF/);
    const truncated = path.join(tmp, 'truncated.png');
    fs.writeFileSync(truncated, fs.readFileSync(path.join(MEDIA, 'images', 'rgb.png')).subarray(0, 60));
    await expectMediaError(readImage(truncated), truncated, /cannot decode PNG/);
    const badJpeg = path.join(tmp, 'bad.jpg');
    fs.writeFileSync(badJpeg, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(100, 7)]));
    await expectMediaError(readImage(badJpeg), badJpeg, /cannot decode JPEG/);
    const badMp4 = path.join(tmp, 'garbage.mp4');
    fs.writeFileSync(badMp4, Buffer.alloc(2000, 0x42));
    await expectMediaError(readVideo(badMp4), badMp4, /cannot read as a video/);
    const empty = path.join(tmp, 'empty-dir');
    fs.mkdirSync(empty);
    await expectMediaError(readVideo(empty), empty, /no frame images/);
  });

  it('bad frames, odd MP4 sizes and unknown extensions fail before writing anything', async () => {
    const out = path.join(tmp, 'bad.mp4');
    await expectMediaError(writeVideo({ frames: [frames[0]!, new Uint8Array(5)], width: W, height: H }, out), out, /frame 1 has 5 bytes/);
    const odd = smoothFrames(2, 15, 9);
    await expectMediaError(writeVideo({ frames: odd, width: 15, height: 9 }, out), out, /even width and height/);
    const avi = path.join(tmp, 'x.avi');
    await expectMediaError(writeVideo({ frames, width: W, height: H }, avi), avi, /unsupported output extension/);
    expect(fs.existsSync(out) || fs.existsSync(avi)).toBe(false);
  });

  it('an aborted write leaves nothing behind; a non-empty folder is never replaced', async () => {
    const outDir = path.join(tmp, 'aborted');
    fs.mkdirSync(outDir);
    const before = new Set(fs.readdirSync(outDir));
    for (const name of ['a.mp4', 'b.gif', 'frames']) {
      const ctl = new AbortController();
      const target = path.join(outDir, name);
      const many = Array.from({ length: 40 }, (_, i) => frames[i % 3]!);
      const p = writeVideo({ frames: many, width: W, height: H }, target, { signal: ctl.signal });
      setImmediate(() => ctl.abort(new Error('stop')));
      await expect(p).rejects.toThrow(/stop/);
      expect(new Set(fs.readdirSync(outDir))).toEqual(before);
    }
    const full = path.join(tmp, 'full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'keep.txt'), 'user data');
    await expectMediaError(writeVideo({ frames, width: W, height: H }, full), full, /not empty/);
    expect(fs.readdirSync(full)).toEqual(['keep.txt']);
  });
});
