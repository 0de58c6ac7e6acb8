// Data geometry against CogVideoX-Fun's dataset / collate code (fixture: reference/gen_training.py →
// test/fixtures/training/geometry.json): frame indices, buckets, resize + crop, the 4k+1 rule, length_to_frame_num;
// metadata errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bucketGeometry, frameCountRule, lengthToFrameNum, parseCsv, readMetadata, tokenTiling, videoFrameIndices } from '../src/training/data.js';
import { InjectedRandom } from '../src/training/random.js';
import { FIXTURES } from './helpers.js';

const geo = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'training', 'geometry.json'), 'utf8'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'train-data-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('training data geometry', () => {
  it('video frame indices (ds.py) with the logged random.randint', () => {
    for (const c of geo.frames) {
      const rng = new InjectedRandom(c.draws);
      expect(videoFrameIndices(c.n, c.N, c.stride, rng), JSON.stringify([c.n, c.N, c.stride])).toEqual(c.indices);
      expect(rng.remaining).toBe(0);
    }
    expect(() => videoFrameIndices(2, 49, 3, new InjectedRandom([]))).toThrow(/2 frames: too short/);
  });

  it('bucket size, resize and center crop (collate_fn)', () => {
    for (const c of geo.buckets) {
      const g = bucketGeometry(c.h, c.w, c.S, c.r);
      expect([Number(g.key), g.size, g.resize, g.crop], JSON.stringify(c)).toEqual([c.ratio, c.size, c.resize, c.crop]);
    }
  });

  it('4k+1 and patch_size_t frame rule', () => {
    for (const c of geo.rule) expect(frameCountRule(c.frames, 4, c.patch_size_t), JSON.stringify(c)).toBe(c.out);
  });

  it('length_to_frame_num', () => {
    for (const c of geo.length_to_frame_num) {
      const t = lengthToFrameNum({ videoSampleSize: c.Sv, imageSampleSize: c.Si, nFrames: c.N, tokenSampleSize: c.tok, temporalCompression: 4 });
      expect([...t], JSON.stringify(c)).toEqual(c.table);
    }
  });

  it('token tiling thresholds', () => {
    expect(tokenTiling(49, 512, 1024 * 1024)).toBe(2);
    expect(tokenTiling(49, 512, 512 * 512)).toBe(4);
    expect(tokenTiling(49, 512, 49 * 192 * 336)).toBe(2);
    expect(tokenTiling(49, 512, 49 * 384 * 672)).toBe(1);
  });
});

describe('metadata', () => {
  const video = path.join(tmp, 'a.mp4');
  fs.writeFileSync(video, 'x');
  it('JSON and CSV (quoted fields), relative paths, default type image', () => {
    fs.writeFileSync(path.join(tmp, 'm.json'), JSON.stringify([{ file_path: 'a.mp4', text: 'a cat', type: 'video' }, { file_path: video, text: '' }]));
    const s = readMetadata(path.join(tmp, 'm.json'));
    expect(s.map((x) => [x.filePath, x.text, x.type])).toEqual([[video, 'a cat', 'video'], [video, '', 'image']]);
    fs.writeFileSync(path.join(tmp, 'm.csv'), 'file_path,text,type\r\na.mp4,"a cat, ""quoted""",video\n');
    expect(readMetadata(path.join(tmp, 'm.csv'))[0]!.text).toBe('a cat, "quoted"');
    expect(parseCsv('a,b\n1,2\n')).toEqual([{ a: '1', b: '2' }]);
  });
  it('bad files are named with the entry', () => {
    const w = (name: string, body: string) => (fs.writeFileSync(path.join(tmp, name), body), path.join(tmp, name));
    expect(() => readMetadata(path.join(tmp, 'nope.json'))).toThrow(/nope.json: file not found/);
    expect(() => readMetadata(w('e.json', '[]'))).toThrow(/no samples/);
    expect(() => readMetadata(w('b.json', '{'))).toThrow(/not valid JSON/);
    expect(() => readMetadata(w('c.json', '[{"file_path":"missing.mp4","text":"x"}]'))).toThrow(/entry 0: .*missing.mp4 not found/);
    expect(() => readMetadata(w('d.json', '[{"file_path":"a.mp4"}]'))).toThrow(/entry 0: missing "text"/);
    expect(() => readMetadata(w('f.json', '[{"file_path":"a.mp4","text":"x","type":"gif"}]'))).toThrow(/"type" must be/);
  });
});
