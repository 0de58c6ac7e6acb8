// safetensors reader (header parsed once, tensors read lazily by name with positioned reads) and writer.
// Format: u64le header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?},
// then the data section; offsets are relative to the data section.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostTensor, type HostStorage } from './host_tensor.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype. */
export const ITEM_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};
const MAX_HEADER_BYTES = 100 * 1024 * 1024; // the format's own limit
const MAX_READ = 1 << 30; // fs.readSync takes at most 2 GiB per call

export type SafetensorsErrorKind =
  | 'truncated'
  | 'header-json'
  | 'header-too-large'
  | 'offsets'
  | 'overlap'
  | 'dtype'
  | 'missing'
  | 'shape';

/** A malformed or mismatched checkpoint file; `file` and (where known) `tensor` name the culprit. */
export class SafetensorsError extends Error {
  constructor(
    readonly kind: SafetensorsErrorKind,
    readonly file: string,
    message: string,
    readonly tensor?: string,
  ) {
    super(`${file}${tensor ? ` [${tensor}]` : ''}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute byte offsets in the file. */
  readonly begin: number;
  readonly end: number;
}

export class SafetensorsFile {
  readonly entries: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number | null;

  private constructor(readonly path: string, fd: number, entries: Map<string, TensorEntry>, metadata: Record<string, string>) {
    this.fd = fd;
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Opens a file and validates its header; no tensor data is read. */
  static open(file: string): SafetensorsFile {
    if (os.endianness() !== 'LE') throw new Error('safetensors reading needs a little-endian host');
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError('truncated', file, `file is ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      readFully(fd, lenBuf, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER_BYTES) {
        throw new SafetensorsError('header-too-large', file, `header length ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
      }
      if (8 + headerLen > size) {
        throw new SafetensorsError('truncated', file, `header claims ${headerLen} bytes but the file has only ${size - 8} after the length field`);
      }
      const headerBuf = Buffer.alloc(headerLen);
      readFully(fd, headerBuf, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch (e) {
        throw new SafetensorsError('header-json', file, `header is not valid JSON (${(e as Error).message})`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw new SafetensorsError('header-json', file, 'header JSON is not an object');
      }
      const { entries, metadata } = parseHeader(file, header as Record<string, unknown>, 8 + headerLen, size);
      return new SafetensorsFile(file, fd, entries, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError('missing', this.path, 'tensor not found in file', name);
    return e;
  }

  /** The tensor's raw little-endian bytes (a positioned read of just its range). */
  readBytes(name: string): Uint8Array {
    const e = this.entry(name);
    const bytes = new Uint8Array(e.end - e.begin);
    readFully(this.requireFd(), bytes, e.begin);
    return bytes;
  }

  /**
   * Reads one tensor into host memory: F32/F16/BF16 stay in their storage width (16-bit kept as 16-bit until
   * used); F64 → float32; integer and bool types → int32 (I64 must fit in int32).
   */
  read(name: string): HostTensor {
    const e = this.entry(name);
    const n = numel(e.shape);
    const fd = this.requireFd();
    const readInto = <T extends ArrayBufferView>(view: T): T => {
      readFully(fd, new Uint8Array(view.buffer, view.byteOffset, view.byteLength), e.begin);
      return view;
    };
    let storage: HostStorage;
    let data: Float32Array | Uint16Array | Int32Array;
    switch (e.dtype) {
      case 'F32':
        storage = 'f32';
        data = readInto(new Float32Array(n));
        break;
      case 'BF16':
        storage = 'bf16';
        data = readInto(new Uint16Array(n));
        break;
      case 'F16':
        storage = 'f16';
        data = readInto(new Uint16Array(n));
        break;
      case 'F64':
        storage = 'f32';
        data = Float32Array.from(readInto(new Float64Array(n)));
        break;
      case 'I32':
        storage = 'i32';
        data = readInto(new Int32Array(n));
        break;
      case 'I64': {
        const wide = readInto(new BigInt64Array(n));
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          const v = wide[i]!;
          if (v > 2147483647n || v < -2147483648n) {
            throw new SafetensorsError('dtype', this.path, `I64 value ${v} at index ${i} does not fit in int32`, name);
          }
          out[i] = Number(v);
        }
        storage = 'i32';
        data = out;
        break;
      }
      case 'I16':
        storage = 'i32';
        data = Int32Array.from(readInto(new Int16Array(n)));
        break;
      case 'I8':
        storage = 'i32';
        data = Int32Array.from(readInto(new Int8Array(n)));
        break;
      case 'U8':
      case 'BOOL':
        storage = 'i32';
        data = Int32Array.from(readInto(new Uint8Array(n)));
        break;
    }
    return new HostTensor(e.shape.slice(), storage, data);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private requireFd(): number {
    if (this.fd === null) throw new Error(`${this.path}: file is closed`);
    return this.fd;
  }
}

function parseHeader(file: string, header: Record<string, unknown>, dataStart: number, fileSize: number) {
  const entries = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (!info || typeof info !== 'object') throw new SafetensorsError('header-json', file, 'entry is not an object', name);
    const dtype = info.dtype;
    if (typeof dtype !== 'string' || !(dtype in ITEM_SIZE)) {
      throw new SafetensorsError('dtype', file, `unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(ITEM_SIZE).join(', ')})`, name);
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SafetensorsError('header-json', file, `invalid shape ${JSON.stringify(shape)}`, name);
    }
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1]) {
      throw new SafetensorsError('offsets', file, `invalid data_offsets ${JSON.stringify(offs)}`, name);
    }
    const expected = numel(shape) * ITEM_SIZE[dtype as SafetensorsDtype];
    if (offs[1] - offs[0] !== expected) {
      throw new SafetensorsError('offsets', file, `data_offsets span ${offs[1] - offs[0]} bytes but ${dtype}${JSON.stringify(shape)} needs ${expected}`, name);
    }
    if (dataStart + offs[1] > fileSize) {
      throw new SafetensorsError('truncated', file, `data ends at byte ${dataStart + offs[1]} but the file has ${fileSize} bytes (truncated download?)`, name);
    }
    entries.set(name, { name, dtype: dtype as SafetensorsDtype, shape, begin: dataStart + offs[0], end: dataStart + offs[1] });
  }
  const sorted = [...entries.values()].filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end) {
      throw new SafetensorsError('overlap', file, `data overlaps tensor "${sorted[i - 1]!.name}"`, sorted[i]!.name);
    }
  }
  return { entries, metadata };
}

function readFully(fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.byteLength) {
    const len = Math.min(into.byteLength - done, MAX_READ);
    const n = fs.readSync(fd, into, done, len, position + done);
    if (n === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A tensor to write: float32/int32 data is converted to `dtype`; Uint16Array data is taken as raw F16/BF16 bits. */
export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: ArrayLike<number> | Uint16Array | Uint8Array;
}

function encode(t: TensorToWrite, name: string): Uint8Array {
  const n = numel(t.shape);
  if (t.data.length !== n) throw new Error(`tensor "${name}": ${t.data.length} values for shape [${t.shape.join(', ')}] (${n})`);
  const bytesOf = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  switch (t.dtype) {
    case 'F32':
      return bytesOf(Float32Array.from(t.data));
    case 'F64':
      return bytesOf(Float64Array.from(t.data));
    case 'I32':
      return bytesOf(Int32Array.from(t.data));
    case 'I16':
      return bytesOf(Int16Array.from(t.data));
    case 'I8':
      return bytesOf(Int8Array.from(t.data));
    case 'I64':
      return bytesOf(BigInt64Array.from(Array.from(t.data, (v) => BigInt(Math.trunc(v)))));
    case 'U8':
    case 'BOOL':
      return Uint8Array.from(t.data);
    case 'BF16':
      return bytesOf(t.data instanceof Uint16Array ? t.data : HostTensor.float32ToBf16(Float32Array.from(t.data)));
    case 'F16':
      return bytesOf(t.data instanceof Uint16Array ? t.data : HostTensor.float32ToF16(Float32Array.from(t.data)));
  }
}

/** Writes a safetensors file atomically (temp file + rename), so a failure never leaves a half-written file. */
export function saveSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = encode(t, name);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // data section 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, len);
      fs.writeSync(fd, headerBytes);
      for (const b of blobs) fs.writeSync(fd, b);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
