// A tensor held in JS memory, outside any backend: the form weights live in until a block runs.
// bf16/fp16 stay 16-bit here (half the RAM of fp32) and widen to float32 only when materialised.
export type HostStorage = 'f32' | 'bf16' | 'f16' | 'i32';

let f16Table: Float32Array | null = null;

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export class HostTensor {
  constructor(
    readonly shape: number[],
    readonly storage: HostStorage,
    readonly data: Float32Array | Uint16Array | Int32Array,
  ) {}

  get size(): number {
    return this.data.length;
  }

  get byteLength(): number {
    return this.data.byteLength;
  }

  /** A view of rows [start, start + count) along the first axis (no copy). */
  rows(start: number, count: number): HostTensor {
    const width = this.shape.slice(1).reduce((a, b) => a * b, 1);
    const data = this.data.subarray(start * width, (start + count) * width);
    return new HostTensor([count, ...this.shape.slice(1)], this.storage, data);
  }

  /** Values widened to float32 (a new array unless already f32). */
  toFloat32(): Float32Array {
    switch (this.storage) {
      case 'f32':
        return this.data as Float32Array;
      case 'i32':
        return Float32Array.from(this.data);
      case 'bf16': {
        const src = this.data as Uint16Array;
        const out = new Uint32Array(src.length);
        let i = 0;
        if (src.byteOffset % 4 === 0) {
          // Two bf16 values per 32-bit read (little-endian: the low half is the first element).
          const pairs = new Uint32Array(src.buffer, src.byteOffset, src.length >> 1);
          for (let j = 0; j < pairs.length; j++, i += 2) {
            const v = pairs[j]!;
            out[i] = v << 16;
            out[i + 1] = v & 0xffff0000;
          }
        }
        for (; i < src.length; i++) out[i] = src[i]! << 16;
        return new Float32Array(out.buffer);
      }
      case 'f16': {
        if (!f16Table) {
          f16Table = new Float32Array(65536);
          for (let i = 0; i < 65536; i++) f16Table[i] = halfToFloat(i);
        }
        const src = this.data as Uint16Array;
        const out = new Float32Array(src.length);
        for (let i = 0; i < src.length; i++) out[i] = f16Table[src[i]!]!;
        return out;
      }
    }
  }

  /** bf16 bits of float32 values, round-to-nearest-even (NaN kept quiet), as torch rounds. */
  static float32ToBf16(x: Float32Array): Uint16Array {
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const out = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = u[i]!;
      if ((v & 0x7fffffff) > 0x7f800000) out[i] = (v >>> 16) | 0x40;
      else out[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
    }
    return out;
  }

  /** IEEE half bits of float32 values, round-to-nearest-even, overflow to ±inf. */
  static float32ToF16(x: Float32Array): Uint16Array {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const out = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) {
      f[0] = x[i]!;
      const v = u[0]!;
      const sign = (v >>> 16) & 0x8000;
      const exp = (v >>> 23) & 0xff;
      let mant = v & 0x7fffff;
      if (exp === 0xff) {
        out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
        continue;
      }
      const e = exp - 127 + 15;
      if (e >= 31) {
        out[i] = sign | 0x7c00;
      } else if (e <= 0) {
        if (e < -10) {
          out[i] = sign;
          continue;
        }
        mant |= 0x800000;
        const shift = 14 - e;
        let h = mant >>> shift;
        const rem = mant & ((1 << shift) - 1);
        const half = 1 << (shift - 1);
        if (rem > half || (rem === half && h & 1)) h++;
        out[i] = sign | h;
      } else {
        let h = (e << 10) | (mant >>> 13);
        const rem = mant & 0x1fff;
        if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
        out[i] = sign | h;
      }
    }
    return out;
  }
}
