// safetensors reader/writer: dtypes against a file written by the original library, malformed files, shards,
// lazy reads, atomic writes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HostTensor } from '../src/weights/host_tensor.js';
import { SafetensorsError, SafetensorsFile, saveSafetensors, type SafetensorsDtype } from '../src/weights/safetensors.js';
import { WeightStore } from '../src/weights/checkpoint.js';
import { FIXTURES, TINY_MODEL } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogvideox-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A raw file: 8-byte length + header text + data bytes. */
function rawFile(name: string, header: string, data: Uint8Array = new Uint8Array(0), lenOverride?: bigint): string {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

function expectError(fn: () => unknown, kind: string, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    expect((e as SafetensorsError).kind).toBe(kind);
    expect((e as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected an error');
}

describe('reading what the original safetensors library wrote', () => {
  const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'safetensors/dtypes.json'), 'utf8')) as Record<
    string,
    { shape: number[]; values: (number | string)[] }
  >;
  const f = SafetensorsFile.open(path.join(FIXTURES, 'safetensors/dtypes.safetensors'));
  afterAll(() => f.close());

  it.each(Object.keys(expected))('%s', (name) => {
    const t = f.read(name);
    expect(t.shape).toEqual(expected[name]!.shape);
    const want = expected[name]!.values.map((v) => (typeof v === 'string' ? Number(v.replace('inf', 'Infinity')) : name === 'f64' ? Math.fround(v) : v));
    const got = t.storage === 'i32' ? Array.from(t.data) : Array.from(t.toFloat32());
    expect(got).toEqual(want);
  });

  it('keeps 16-bit floats 16-bit until used, widens F64 to float32, integers to int32', () => {
    expect(f.read('bf16').storage).toBe('bf16');
    expect(f.read('f16').data).toBeInstanceOf(Uint16Array);
    expect(f.read('f64').storage).toBe('f32');
    for (const n of ['i64', 'i32', 'i16', 'i8', 'u8', 'bool']) expect(f.read(n).storage).toBe('i32');
    expect(f.metadata).toEqual({ format: 'pt' });
  });
});

describe('writer round trip', () => {
  const values = [0, 1, -2.5, 3.140625, 1024, -0.0078125];
  it.each(['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8'] as SafetensorsDtype[])('%s', (dtype) => {
    const vals = dtype === 'I8' ? [0, 1, -2, 3, 127, -128] : dtype.startsWith('I') ? values.map(Math.trunc) : values;
    const file = path.join(tmp, `rt-${dtype}.safetensors`);
    saveSafetensors(file, { x: { dtype, shape: [2, 3], data: vals } });
    const f = SafetensorsFile.open(file);
    expect(f.entry('x').dtype).toBe(dtype);
    expect(Array.from(f.read('x').toFloat32())).toEqual(vals.map((v) => v + 0));
    f.close();
  });

  it('U8 and BOOL', () => {
    const file = path.join(tmp, 'rt-u8.safetensors');
    saveSafetensors(file, { u: { dtype: 'U8', shape: [3], data: [0, 200, 255] }, b: { dtype: 'BOOL', shape: [2], data: [1, 0] } });
    const f = SafetensorsFile.open(file);
    expect(Array.from(f.read('u').data)).toEqual([0, 200, 255]);
    expect(Array.from(f.read('b').data)).toEqual([1, 0]);
    f.close();
  });

  it('rounds to bf16 / fp16 to nearest even, as torch does', () => {
    const x = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, 2 ** -25, 3 * 2 ** -26]);
    expect(Array.from(HostTensor.float32ToBf16(x.slice(0, 2)))).toEqual([0x3f80, 0x3f82]);
    const h = new HostTensor([7], 'f16', HostTensor.float32ToF16(x)).toFloat32();
    expect(Array.from(h)).toEqual([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1, 1 + 2 ** -9, Infinity, 0, 2 ** -24]);
  });

  it('never leaves a half-written file', () => {
    const file = path.join(tmp, 'bad.safetensors');
    expect(() => saveSafetensors(file, { x: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3] } })).toThrow(/3 values for shape \[2, 2\]/);
    expect(fs.readdirSync(tmp).filter((n) => n.includes('bad'))).toEqual([]);
    expect(() => saveSafetensors(path.join(tmp, 'no/such/dir/x.safetensors'), {})).toThrow();
  });
});

describe('malformed files fail with a typed error naming file and tensor', () => {
  const good = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  it('shorter than the length field', () => {
    const file = path.join(tmp, 'tiny.safetensors');
    fs.writeFileSync(file, Buffer.alloc(5));
    expectError(() => SafetensorsFile.open(file), 'truncated', /tiny\.safetensors: file is 5 bytes/);
  });
  it('header longer than the file', () => {
    expectError(() => SafetensorsFile.open(rawFile('h.safetensors', good, new Uint8Array(8), 4000n)), 'truncated', /header claims 4000 bytes/);
  });
  it('header too large', () => {
    expectError(() => SafetensorsFile.open(rawFile('big.safetensors', good, new Uint8Array(8), 1n << 40n)), 'header-too-large', /exceeds/);
  });
  it('header not JSON', () => {
    expectError(() => SafetensorsFile.open(rawFile('j.safetensors', '{"a": [', new Uint8Array(8))), 'header-json', /not valid JSON/);
    expectError(() => SafetensorsFile.open(rawFile('j2.safetensors', '[1,2]')), 'header-json', /not an object/);
  });
  it('data truncated', () => {
    expectError(() => SafetensorsFile.open(rawFile('t.safetensors', good, new Uint8Array(5))), 'truncated', /\[a\]: data ends at byte/);
  });
  it('offsets inconsistent with dtype and shape', () => {
    const h = '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}';
    expectError(() => SafetensorsFile.open(rawFile('o.safetensors', h, new Uint8Array(8))), 'offsets', /\[a\]: data_offsets span 8 bytes but F32\[3\] needs 12/);
    const h2 = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}';
    expectError(() => SafetensorsFile.open(rawFile('o2.safetensors', h2, new Uint8Array(8))), 'offsets', /invalid data_offsets/);
  });
  it('overlapping tensors', () => {
    const h = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
    expectError(() => SafetensorsFile.open(rawFile('ov.safetensors', h, new Uint8Array(12))), 'overlap', /\[b\]: data overlaps tensor "a"/);
  });
  it('unknown dtype', () => {
    const h = '{"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}';
    expectError(() => SafetensorsFile.open(rawFile('d.safetensors', h, new Uint8Array(2))), 'dtype', /\[a\]: unsupported dtype "F8_E4M3"/);
  });
  it('missing tensor', () => {
    const f = SafetensorsFile.open(rawFile('m.safetensors', good, new Uint8Array(8)));
    expectError(() => f.read('nope'), 'missing', /m\.safetensors \[nope\]: tensor not found/);
    f.close();
  });
  it('I64 values outside int32', () => {
    const file = path.join(tmp, 'i64.safetensors');
    saveSafetensors(file, { x: { dtype: 'I64', shape: [1], data: [2 ** 40] } });
    const f = SafetensorsFile.open(file);
    expectError(() => f.read('x'), 'dtype', /does not fit in int32/);
    f.close();
  });
});

describe('checkpoints', () => {
  it('reads a sharded checkpoint through its index', () => {
    const store = WeightStore.open(path.join(TINY_MODEL, 'text_encoder'));
    expect(store.files.length).toBe(2);
    expect(store.has('shared.weight')).toBe(true);
    expect(store.read('encoder.final_layer_norm.weight').shape).toEqual([48]);
    store.close();
  });

  it('reports a shard listed in the index but absent, and a tensor in the wrong shard', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'shards-'));
    saveSafetensors(path.join(dir, 'a.safetensors'), { x: { dtype: 'F32', shape: [1], data: [1] } });
    fs.writeFileSync(path.join(dir, 'm.safetensors.index.json'), JSON.stringify({ weight_map: { x: 'a.safetensors', y: 'b.safetensors' } }));
    expect(() => WeightStore.open(dir)).toThrow(/b\.safetensors: shard listed by .*m\.safetensors\.index\.json is missing/);
    saveSafetensors(path.join(dir, 'b.safetensors'), { z: { dtype: 'F32', shape: [1], data: [1] } });
    expect(() => WeightStore.open(dir)).toThrow(/\[y\]: listed in m\.safetensors\.index\.json but not stored in its shard/);
  });

  it('checks names and shapes against what the config implies', () => {
    const store = WeightStore.open(path.join(TINY_MODEL, 'text_encoder'));
    expect(() => store.expect(new Map([['encoder.final_layer_norm.weight', [64]]]))).toThrow(
      /model-0000\d-of-00002\.safetensors \[encoder\.final_layer_norm\.weight\]: shape \[48\] but the config implies \[64\]/,
    );
    expect(() => store.expect(new Map([['encoder.block.9.layer.0.layer_norm.weight', [48]]]))).toThrow(/missing tensors: encoder\.block\.9/);
    store.close();
  });

  it('reads one tensor of a multi-GB file without reading the rest', () => {
    // 3 GiB sparse data section: opening and reading the small tensor must not touch the big one.
    const big = 3 * 2 ** 30;
    const header = JSON.stringify({
      small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      huge: { dtype: 'U8', shape: [big], data_offsets: [8, 8 + big] },
    });
    const file = rawFile('sparse.safetensors', header, new Uint8Array(new Float32Array([1.5, -2]).buffer));
    fs.truncateSync(file, 8 + Buffer.byteLength(header) + 8 + big);
    const t0 = performance.now();
    const f = SafetensorsFile.open(file);
    expect(Array.from(f.read('small').toFloat32())).toEqual([1.5, -2]);
    expect(f.entry('huge').shape).toEqual([big]);
    f.close();
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
