// PNG decoding into the mode Pillow 12.3 opens the file as (PngImagePlugin), so conversions match Pillow:
// 1/2/4-bit grey are scaled to 0..255 (mode 1 / L;2 / L;4 rawmodes), 16-bit grey stays 16-bit ("I;16"),
// 16-bit RGB(A)/LA keep the high byte, palettes stay indexed ("P"; tRNS is ignored by the RGB and L conversions).
import { decode } from 'fast-png';
import type { Decoded } from './decoded.js';

export function decodePng(bytes: Uint8Array): Decoded {
  const png = decode(bytes);
  const { width, height, depth, channels } = png;
  const n = width * height;
  if (png.palette) {
    const idx = unpack(png.data as Uint8Array, width, height, depth, false);
    const palette = new Uint8Array(256 * 3);
    png.palette.forEach((c, i) => palette.set([c[0] ?? 0, c[1] ?? 0, c[2] ?? 0], 3 * i));
    return { width, height, mode: 'P', data: idx, palette };
  }
  if (depth === 16) {
    const d16 = png.data as Uint16Array;
    if (channels === 1) return { width, height, mode: 'I;16', data: d16.slice() };
    const out = new Uint8Array(n * channels);
    for (let i = 0; i < out.length; i++) out[i] = d16[i]! >> 8;
    return { width, height, mode: modeFor(channels), data: out };
  }
  if (depth < 8) return { width, height, mode: 'L', data: unpack(png.data as Uint8Array, width, height, depth, true) };
  return { width, height, mode: modeFor(channels), data: png.data as Uint8Array };
}

function modeFor(channels: number): Decoded['mode'] {
  const mode = ({ 1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA' } as const)[channels];
  if (!mode) throw new Error(`unsupported PNG channel count ${channels}`);
  return mode;
}

/** Unpacks 1/2/4-bit samples (rows padded to whole bytes); `scale` maps them to 0..255 as grey levels. */
function unpack(data: Uint8Array, width: number, height: number, depth: number, scale: boolean): Uint8Array {
  if (depth === 8) return data;
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = (1 << depth) - 1;
  const mul = scale ? 255 / mask : 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const v = (data[y * rowBytes + (bit >> 3)]! >> (8 - depth - (bit & 7))) & mask;
      out[y * width + x] = v * mul;
    }
  }
  return out;
}
