// AutoencoderKLCogVideoX parity against CogVideoX-Fun's autoencoder_magvit.py and diffusers v0.32.2
// (fixtures from reference/gen_vae.py, documented in reference/vae_fixtures.md), on every backend.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoencoderKLCogVideoX, decodeCalls, encodeChunks } from '../src/models/vae.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { saveSafetensors, SafetensorsFile, type TensorToWrite } from '../src/weights/safetensors.js';
import { diff, expectClose, FIXTURES, loadFixture, TINY_MODEL, useBackend, type Fixture, describeEachBackend } from './helpers.js';

const VAE_DIR = path.join(FIXTURES, 'tiny-vae', 'vae');
// Tolerances from the worst rel-L2 measured on both backends (wasm, tensorflow; see the log lines), streaming and
// tensor-ops paths: per block 2.4e-6 (bar 4×); whole decodes (Fun, diffusers, tiled, batch) 1.0e-6 (8×); whole
// encodes (moments, tiled, batch) 2.6e-6 (4×: the encoder's norm_out eps 1e-6 → 1e-5 gives 0.85–1.8e-5).
const BLOCK_TOL = { relL2: 1e-5 };
const DECODE_TOL = { relL2: 8e-6 };
const ENCODE_TOL = { relL2: 1e-5 };

interface Case {
  kind: string;
  file: string;
  frames?: number;
  latent_frames?: number;
  height?: number;
  width?: number;
  detailed?: boolean | string[];
  tile_sample_min_height?: number;
  tile_sample_min_width?: number;
  tile_overlap_factor_height?: number;
  tile_overlap_factor_width?: number;
}
const CASES = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'vae', 'cases.json'), 'utf8')) as Case[];
const byKind = (k: string) => CASES.filter((c) => c.kind === k);
const fixture = (c: Case) => loadFixture(path.join('vae', c.file));
const tensor5d = (fx: Fixture, name: string) => tf.tensor5d(fx.f32(name), fx.shape(name) as [number, number, number, number, number]);

afterAll(() => shutdownBackend());

describe('temporal chunking plans', () => {
  it('encodes frames in batches of 8, the first taking the remainder', () => {
    expect(encodeChunks(49)).toEqual([[0, 9], [9, 17], [17, 25], [25, 33], [33, 41], [41, 49]]);
    expect(encodeChunks(1)).toEqual([[0, 1]]);
    expect(encodeChunks(13)).toEqual([[0, 13]]);
    expect(encodeChunks(21)).toEqual([[0, 13], [13, 21]]);
  });

  it('decodes latent frame 0 alone then pairs (Fun), or (0,1,2),(3,4),… (diffusers)', () => {
    expect(decodeCalls(13, 'fun').map(([s, e]) => [s, e])).toEqual([[0, 1], [1, 3], [3, 5], [5, 7], [7, 9], [9, 11], [11, 13]]);
    expect(decodeCalls(4, 'fun').map(([s, e, m]) => [s, e, m])).toEqual([[0, 1, 'fun-first'], [1, 3, 'fun'], [3, 4, 'fun']]);
    expect(decodeCalls(13, 'diffusers').map(([s, e]) => [s, e])).toEqual([[0, 3], [3, 5], [5, 7], [7, 9], [9, 11], [11, 13]]);
    expect(decodeCalls(4, 'diffusers').map(([s, e]) => [s, e])).toEqual([[0, 2], [2, 4]]);
    expect(decodeCalls(1, 'diffusers').map(([s, e]) => [s, e])).toEqual([[0, 1]]);
  });
});

describeEachBackend('AutoencoderKLCogVideoX on %s', (backend) => {
  let vae: AutoencoderKLCogVideoX;
  beforeAll(async () => {
    await useBackend(backend);
    vae = await AutoencoderKLCogVideoX.fromPretrained(VAE_DIR);
    vae.load();
  });
  afterAll(() => vae?.dispose());

  it('matches the encoder per block and per chunk, the moments and the posterior (F = 17: chunks 9, 8)', () => {
    const c = byKind('encode').find((k) => k.detailed)!;
    const fx = fixture(c);
    const x = tensor5d(fx, 'x');
    const seen: string[] = [];
    const post = vae.encode(x, {
      onOutput: (name, call, t) => {
        const key = `chunk${call}.${name}`;
        expectClose(`${backend} encode ${key}`, t, fx.f32(key), fx.shape(key), BLOCK_TOL);
        seen.push(key);
      },
    });
    expect(seen.filter((k) => k.startsWith('chunk1.')).length).toBe(7);
    expect(seen.length).toBe(fx.names().filter((n) => n.startsWith('chunk')).length);
    expectClose(`${backend} encode moments`, post.moments, fx.f32('moments'), fx.shape('moments'), ENCODE_TOL);
    const noise = tensor5d(fx, 'noise');
    const sample = post.sample({ noise });
    expectClose(`${backend} encode sample`, sample, fx.f32('sample'), fx.shape('sample'), ENCODE_TOL);
    const mode = post.mode();
    expect(Array.from(mode.dataSync())).toEqual(Array.from(post.mean.dataSync()));
    // randn callback: receives the latent shape
    let asked: number[] = [];
    const s2 = post.sample({ randn: (shape) => ((asked = shape), tf.clone(noise)) });
    expect(asked).toEqual(fx.shape('noise'));
    expect(diff(s2.dataSync(), sample.dataSync()).maxAbs).toBe(0);
    [x, noise, sample, mode, s2].forEach((t) => t.dispose());
    post.dispose();
  });

  it.each(byKind('encode').filter((c) => !c.detailed).map((c) => [`${c.frames}f ${c.height}x${c.width}`, c] as const))(
    'matches encode %s',
    (_, c) => {
      const fx = fixture(c);
      const x = tensor5d(fx, 'x');
      const post = vae.encode(x);
      expectClose(`${backend} encode ${c.file}`, post.moments, fx.f32('moments'), fx.shape('moments'), ENCODE_TOL);
      x.dispose();
      post.dispose();
    },
  );

  it('matches the decoder per block and per call, Fun chunking (T = 4: frame 0, pair, trailing single)', () => {
    const c = byKind('decode').find((k) => (k.detailed as string[]).includes('fun'))!;
    const fx = fixture(c);
    const z = tensor5d(fx, 'z');
    let n = 0;
    const out = vae.decode(z, {
      onOutput: (name, call, t) => {
        const key = `fun.call${call}.${name}`;
        if (!fx.names().includes(key)) return; // conv_out: the output itself
        expectClose(`${backend} decode ${key}`, t, fx.f32(key), fx.shape(key), BLOCK_TOL);
        n++;
      },
    });
    expect(n).toBe(fx.names().filter((k) => k.startsWith('fun.call')).length);
    expectClose(`${backend} decode fun T=4`, out, fx.f32('fun'), fx.shape('fun'), DECODE_TOL);
    z.dispose();
    out.dispose();
  });

  it('matches diffusers per call (T = 5: calls (0,1,2) with the odd first-frame split, then (3,4))', () => {
    const c = byKind('decode').find((k) => (k.detailed as string[]).includes('diffusers'))!;
    const fx = fixture(c);
    const z = tensor5d(fx, 'z');
    let n = 0;
    const out = vae.decode(z, {
      chunking: 'diffusers',
      onOutput: (name, call, t) => {
        const key = `diffusers.call${call}.${name}`;
        if (!fx.names().includes(key)) return;
        expectClose(`${backend} decode ${key}`, t, fx.f32(key), fx.shape(key), BLOCK_TOL);
        n++;
      },
    });
    expect(n).toBe(fx.names().filter((k) => k.startsWith('diffusers.call')).length);
    expectClose(`${backend} decode diffusers T=5`, out, fx.f32('diffusers'), fx.shape('diffusers'), DECODE_TOL);
    z.dispose();
    out.dispose();
  });

  it.each(byKind('decode').map((c) => [`${c.latent_frames}t ${c.height}x${c.width}`, c] as const))('matches decode %s, Fun and diffusers chunking', (_, c) => {
    const fx = fixture(c);
    const z = tensor5d(fx, 'z');
    for (const chunking of ['fun', 'diffusers'] as const) {
      const out = vae.decode(z, { chunking });
      expectClose(`${backend} decode ${chunking} ${c.file}`, out, fx.f32(chunking), fx.shape(chunking), DECODE_TOL);
      out.dispose();
    }
    z.dispose();
  });

  it('matches tiled decode (Fun and diffusers) and tiled encode', () => {
    const d = byKind('decode_tiled')[0]!;
    const fx = fixture(d);
    const z = tensor5d(fx, 'z');
    try {
      vae.enableTiling({ tileSampleMinHeight: d.tile_sample_min_height, tileSampleMinWidth: d.tile_sample_min_width });
      expect([vae.tileLatentMinHeight, vae.tileLatentMinWidth]).toEqual([6, 5]);
      for (const chunking of ['fun', 'diffusers'] as const) {
        const out = vae.decode(z, { chunking });
        expectClose(`${backend} tiled decode ${chunking}`, out, fx.f32(chunking), fx.shape(chunking), DECODE_TOL);
        out.dispose();
      }
      const e = byKind('encode_tiled')[0]!;
      const ex = fixture(e);
      const x = tensor5d(ex, 'x');
      vae.enableTiling({
        tileSampleMinHeight: e.tile_sample_min_height,
        tileSampleMinWidth: e.tile_sample_min_width,
        tileOverlapFactorHeight: e.tile_overlap_factor_height,
        tileOverlapFactorWidth: e.tile_overlap_factor_width,
      });
      const post = vae.encode(x);
      expectClose(`${backend} tiled encode`, post.moments, ex.f32('moments'), ex.shape('moments'), ENCODE_TOL);
      post.dispose();
      vae.disableTiling();
      const plain = vae.encode(x);
      expectClose(`${backend} untiled encode`, plain.moments, ex.f32('moments_untiled'), ex.shape('moments_untiled'), ENCODE_TOL);
      plain.dispose();
      x.dispose();
    } finally {
      vae.disableTiling();
      vae.tileOverlapFactorHeight = 1 / 6;
      vae.tileOverlapFactorWidth = 1 / 5;
      z.dispose();
    }
  });

  it('matches a batch of 2 (slicing on or off: the same numbers)', () => {
    const fx = fixture(byKind('batch')[0]!);
    const x = tensor5d(fx, 'x');
    const z = tensor5d(fx, 'z');
    const post = vae.encode(x);
    expectClose(`${backend} batch encode`, post.moments, fx.f32('moments'), fx.shape('moments'), ENCODE_TOL);
    vae.enableSlicing();
    const out = vae.decode(z);
    vae.disableSlicing();
    expectClose(`${backend} batch decode`, out, fx.f32('fun'), fx.shape('fun'), DECODE_TOL);
    // the tensor-ops path runs the batch as one tensor (GroupNorm statistics per element)
    const postOps = vae.encode(x, { differentiable: true });
    expectClose(`${backend} ops batch encode`, postOps.moments, fx.f32('moments'), fx.shape('moments'), ENCODE_TOL);
    const outOps = vae.decode(z, { differentiable: true });
    expectClose(`${backend} ops batch decode`, outOps, fx.f32('fun'), fx.shape('fun'), DECODE_TOL);
    [x, z, out, outOps].forEach((t) => t.dispose());
    post.dispose();
    postOps.dispose();
  });

  it('streams frame by frame with the numbers of whole-call tensor ops, frames in host memory, and leaks nothing', async () => {
    // 16×24 pixels, 17 frames (chunks 9 + 8) / 5 latent frames
    const values = (n: number, seed: number) => {
      const out = new Float32Array(n);
      let s = seed >>> 0;
      for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        out[i] = (s / 2 ** 32) * 2 - 1;
      }
      return out;
    };
    const x = tf.tensor5d(values(3 * 17 * 16 * 24, 7), [1, 3, 17, 16, 24]);
    const z = tf.tensor5d(values(16 * 5 * 2 * 3, 8), [1, 16, 5, 2, 3]);
    const before = tf.memory().numTensors;
    const runs = (['ops', 'frame'] as const).map((path) => {
      // streaming: every kept frame goes to host memory; ops: whole calls as differentiable tensor ops
      const run = path === 'frame' ? { deviceFrameBudget: 0 } : { differentiable: true };
      const post = vae.encode(x, run);
      const m = post.moments.dataSync().slice();
      post.dispose();
      const d = vae.decode(z, run);
      const dd = d.dataSync().slice();
      d.dispose();
      if (path === 'frame') {
        expect(vae.lastRunStats.peakDeviceFrameBytes).toBe(0);
        expect(vae.lastRunStats.peakHostFrameBytes).toBeGreaterThan(0);
      }
      return { m, dd };
    });
    const dm = diff(runs[1]!.m, runs[0]!.m);
    const dd = diff(runs[1]!.dd, runs[0]!.dd);
    console.log(`${backend} frame vs tensor ops: encode max-abs ${dm.maxAbs.toExponential(2)} rel-L2 ${dm.relL2.toExponential(2)}; decode max-abs ${dd.maxAbs.toExponential(2)} rel-L2 ${dd.relL2.toExponential(2)}`);
    expect(dm.relL2).toBeLessThanOrEqual(1e-5);
    expect(dd.relL2).toBeLessThanOrEqual(1e-5);
    expect(tf.memory().numTensors).toBe(before);
    // weights uploaded per block (the default) or resident: the same numbers
    const other = await AutoencoderKLCogVideoX.fromPretrained(VAE_DIR, { weights: vae.weightResidency === 'block' ? 'resident' : 'block' });
    const d2 = other.decode(z);
    expect(diff(d2.dataSync(), runs[1]!.dd).maxAbs).toBe(0);
    d2.dispose();
    other.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    z.dispose();
  });

  it('runs the tensor-ops (differentiable) path with the reference numbers per block: encode, Fun and diffusers decode', () => {
    const e = fixture(byKind('encode').find((k) => k.detailed)!);
    const x = tensor5d(e, 'x');
    let n = 0;
    const post = vae.encode(x, {
      differentiable: true,
      onOutput: (name, call, t) => {
        const key = `chunk${call}.${name}`;
        expectClose(`${backend} ops encode ${key}`, t, e.f32(key), e.shape(key), BLOCK_TOL);
        n++;
      },
    });
    expect(n).toBe(e.names().filter((k) => k.startsWith('chunk')).length);
    expectClose(`${backend} ops encode moments`, post.moments, e.f32('moments'), e.shape('moments'), ENCODE_TOL);
    post.dispose();
    x.dispose();
    for (const chunking of ['fun', 'diffusers'] as const) {
      const d = fixture(byKind('decode').find((k) => (k.detailed as string[]).includes(chunking))!);
      const z = tensor5d(d, 'z');
      let m = 0;
      const out = vae.decode(z, {
        chunking,
        differentiable: true,
        onOutput: (name, call, t) => {
          const key = `${chunking}.call${call}.${name}`;
          if (!d.names().includes(key)) return;
          expectClose(`${backend} ops decode ${key}`, t, d.f32(key), d.shape(key), BLOCK_TOL);
          m++;
        },
      });
      expect(m).toBe(d.names().filter((k) => k.startsWith(`${chunking}.call`)).length);
      expectClose(`${backend} ops decode ${chunking}`, out, d.f32(chunking), d.shape(chunking), DECODE_TOL);
      [z, out].forEach((t) => t.dispose());
    }
  });

  it('decodeAsync / encodeAsync give the same numbers; an abort from a timer stops between blocks and leaks nothing', async () => {
    const d = fixture(byKind('decode').find((k) => k.latent_frames === 5 && k.height === 24)!);
    const e = fixture(byKind('encode').find((k) => k.detailed)!);
    const z = tensor5d(d, 'z');
    const x = tensor5d(e, 'x');
    const before = tf.memory().numTensors;
    const out = await vae.decodeAsync(z, { chunking: 'diffusers' });
    expectClose(`${backend} decodeAsync`, out, d.f32('diffusers'), d.shape('diffusers'), DECODE_TOL);
    out.dispose();
    const post = await vae.encodeAsync(x);
    expectClose(`${backend} encodeAsync`, post.moments, e.f32('moments'), e.shape('moments'), ENCODE_TOL);
    post.dispose();
    const blocksPerCall = { decode: 6, encode: 7 }; // onOutput points of one call
    for (const what of ['decode', 'encode'] as const) {
      const ac = new AbortController();
      const reason = new Error(`stopped ${what}`);
      let seen = 0;
      const onOutput = () => void seen++;
      const timer = setTimeout(() => ac.abort(reason), 1); // fires while the run is under way
      const run = what === 'decode' ? vae.decodeAsync(z, { signal: ac.signal, onOutput }) : vae.encodeAsync(x, { signal: ac.signal, onOutput });
      await expect(run).rejects.toBe(reason);
      clearTimeout(timer);
      console.log(`${backend} ${what}Async aborted after ${seen} of ${2 * blocksPerCall[what]} block outputs`);
      expect(seen).toBeGreaterThan(0); // it had started
      expect(seen).toBeLessThan(2 * blocksPerCall[what]); // and stopped before the end
      expect(tf.memory().numTensors).toBe(before);
    }
    // a signal aborted before the call: nothing runs
    const ac = new AbortController();
    ac.abort(new Error('already'));
    await expect(vae.decodeAsync(z, { signal: ac.signal })).rejects.toThrow('already');
    expect(tf.memory().numTensors).toBe(before);
    [z, x].forEach((t) => t.dispose());
  });

  it('rejects bad input before computing', async () => {
    const bad = (shape: [number, number, number, number, number], fill = 0) => tf.fill(shape, fill) as tf.Tensor5D;
    const nanAt = (shape: [number, number, number, number, number], at: number, v: number) => {
      const d = new Float32Array(shape.reduce((a, b) => a * b, 1));
      d[at] = v;
      return tf.tensor5d(d, shape);
    };
    const inputs = {
      channels: bad([1, 4, 1, 16, 16]),
      size: bad([1, 3, 1, 12, 16]),
      width: bad([1, 3, 1, 16, 20]),
      emptyFrame: bad([1, 3, 1, 0, 16]),
      noFrames: bad([1, 3, 0, 16, 16]),
      nan: bad([1, 3, 1, 16, 16], NaN),
      negInfLate: nanAt([1, 3, 9, 16, 16], 3 * 9 * 16 * 16 - 1, -Infinity),
      rank4: tf.zeros([3, 1, 16, 16]) as unknown as tf.Tensor5D,
      zChannels: bad([1, 4, 1, 2, 2]),
      zNoFrames: bad([1, 16, 0, 2, 2]),
      zEmpty: bad([1, 16, 1, 0, 2]),
      zInf: bad([1, 16, 2, 2, 2], Infinity),
      zNanLate: nanAt([2, 16, 3, 2, 2], 2 * 16 * 3 * 2 * 2 - 1, NaN),
      zRank6: tf.zeros([1, 16, 1, 1, 2, 2]) as unknown as tf.Tensor5D,
      z: bad([1, 16, 1, 2, 2]),
    };
    // a freshly opened VAE: nothing may be read or uploaded, and no block may run (profile stays empty)
    const fresh = await AutoencoderKLCogVideoX.fromPretrained(VAE_DIR, { weights: 'resident' });
    const profile: Record<string, number> = {};
    const before = tf.memory().numTensors;
    const cases: [(v: AutoencoderKLCogVideoX) => unknown, RegExp][] = [
      [(v) => v.encode(inputs.channels, { profile }), /encode: x has 4 channels, the VAE takes 3/],
      [(v) => v.encode(inputs.size, { profile }), /H and W must be multiples of 8, got 12×16/],
      [(v) => v.encode(inputs.width, { profile }), /H and W must be multiples of 8, got 16×20/],
      [(v) => v.encode(inputs.emptyFrame, { profile }), /encode: x has an empty 0×16 frame/],
      [(v) => v.encode(inputs.noFrames, { profile }), /encode: x has 0 frames/],
      [(v) => v.encode(inputs.nan, { profile }), /encode: x holds a non-finite value \(NaN\) at flat index 0/],
      [(v) => v.encode(inputs.negInfLate, { profile }), /non-finite value \(-Infinity\) at flat index 6911/],
      [(v) => v.encode(inputs.rank4, { profile }), /encode: x must be rank 5 \[B, C, T, H, W\], got shape \[3, 1, 16, 16\]/],
      [(v) => v.decode(inputs.zChannels, { profile }), /decode: z has 4 channels, the VAE's latents have 16/],
      [(v) => v.decode(inputs.zNoFrames, { profile }), /decode: z has 0 latent frames/],
      [(v) => v.decode(inputs.zEmpty, { profile }), /decode: z has an empty 0×2 latent frame/],
      [(v) => v.decode(inputs.zInf, { profile }), /decode: z holds a non-finite value \(Infinity\)/],
      [(v) => v.decode(inputs.zNanLate, { profile }), /non-finite value \(NaN\) at flat index 383/],
      [(v) => v.decode(inputs.zRank6, { profile }), /decode: z must be rank 5/],
      [(v) => v.decode(inputs.z, { chunking: 'x' as 'fun', profile }), /unknown chunking "x" \(fun \| diffusers\)/],
    ];
    for (const v of [fresh, vae]) {
      for (const [fn, msg] of cases) expect(() => fn(v)).toThrow(msg);
    }
    expect(profile).toEqual({}); // no conv, norm or resample ran
    expect(tf.memory().numTensors).toBe(before); // nothing computed, uploaded or left behind
    // a posterior sample with noise of the wrong shape
    const post = vae.encode(bad([1, 3, 1, 16, 16]));
    const noise = tf.zeros([1, 16, 2, 2, 2]);
    expect(() => post.sample({ noise })).toThrow(/noise shape \[1, 16, 2, 2, 2\] differs from the latents' \[1, 16, 1, 2, 2\]/);
    noise.dispose();
    post.dispose();
    fresh.dispose();
    Object.values(inputs).forEach((t) => t.dispose());
    await expect(AutoencoderKLCogVideoX.fromPretrained(VAE_DIR, { weights: 'gpu' as 'block' })).rejects.toThrow(/unknown weights residency "gpu"/);
  });
});

describe('checkpoint validation', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-ckpt-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A copy of the tiny checkpoint with some tensors dropped and/or the config edited. */
  const copyWith = (name: string, drop: string[], config?: (c: Record<string, unknown>) => void) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(VAE_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
    config?.(cfg);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    const src = SafetensorsFile.open(path.join(VAE_DIR, 'diffusion_pytorch_model.safetensors'));
    const tensors: Record<string, TensorToWrite> = {};
    for (const k of src.keys()) {
      if (drop.includes(k)) continue;
      const t = src.read(k);
      tensors[k] = { dtype: 'BF16', shape: t.shape, data: t.data as Uint16Array };
    }
    src.close();
    saveSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), tensors);
    return dir;
  };

  it('names a missing conv before loading anything', async () => {
    const dir = copyWith('missing', ['decoder.up_blocks.2.resnets.1.conv2.conv.weight']);
    await expect(AutoencoderKLCogVideoX.fromPretrained(dir)).rejects.toThrow(/missing tensors: decoder\.up_blocks\.2\.resnets\.1\.conv2\.conv\.weight/);
    // an encoder bias and a SpatialNorm3D 1×1×1 conv: every missing name is listed, with the folder
    const dir2 = copyWith('missing2', ['encoder.down_blocks.0.resnets.0.conv1.conv.bias', 'decoder.norm_out.conv_y.conv.weight']);
    const err = await AutoencoderKLCogVideoX.fromPretrained(dir2).then(
      () => null,
      (e: Error) => e.message,
    );
    expect(err).toContain(dir2);
    expect(err).toMatch(/encoder\.down_blocks\.0\.resnets\.0\.conv1\.conv\.bias/);
    expect(err).toMatch(/decoder\.norm_out\.conv_y\.conv\.weight/);
    await expect(AutoencoderKLCogVideoX.fromPretrained(path.join(tmp, 'nowhere'))).rejects.toThrow(/no config\.json/);
  });

  it('reports a shape that disagrees with the config', async () => {
    const dir = copyWith('shape', [], (c) => {
      c.latent_channels = 8;
    });
    await expect(AutoencoderKLCogVideoX.fromPretrained(dir)).rejects.toThrow(/encoder\.conv_out\.conv\.weight\].*shape \[32, 32, 3, 3, 3\] but the config implies \[16, 32, 3, 3, 3\]/);
  });

  it('rejects unsupported configs', async () => {
    const dir = copyWith('quant', [], (c) => {
      c.use_quant_conv = true;
    });
    await expect(AutoencoderKLCogVideoX.fromPretrained(dir)).rejects.toThrow(/use_quant_conv/);
    const dir2 = copyWith('groups', [], (c) => {
      c.norm_num_groups = 3;
    });
    await expect(AutoencoderKLCogVideoX.fromPretrained(dir2)).rejects.toThrow(/not divisible by norm_num_groups 3/);
  });

  it('is the vae of the tiny pipeline checkpoint', () => {
    const idx = JSON.parse(fs.readFileSync(path.join(TINY_MODEL, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    expect(idx.vae).toEqual(['diffusers', 'AutoencoderKLCogVideoX']);
    for (const f of ['config.json', 'diffusion_pytorch_model.safetensors']) {
      expect(fs.readFileSync(path.join(TINY_MODEL, 'vae', f)).equals(fs.readFileSync(path.join(VAE_DIR, f)))).toBe(true);
    }
  });
});
