// Still images: PNG (fast-png), JPEG (libjpeg-turbo in wasm), WebP (libwebp in wasm) and the first frame of a GIF,
// converted the way Pillow's `Image.open(f).convert("RGB")` / `.convert("L")` convert them. The format is taken
// from the file's signature, not its name. EXIF orientation is not applied (Pillow does not either).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encode as encodePngBytes } from 'fast-png';
import { jpegDecoder, webpDecoder } from './codecs.js';
import { decodedToGray, decodedToRgb, type Decoded } from './decoded.js';
import { MediaError } from './errors.js';
import { decodeGifFirstFrame } from './gif.js';
import { decodePng } from './png.js';
import { checkRaster, type RasterImage } from './raster.js';
import { writeFileAtomic } from './atomic.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif';

/** The image format of a file's first bytes, or null. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  const at = (i: number, s: string) => [...s].every((c, k) => bytes[i + k] === c.charCodeAt(0));
  if (bytes[0] === 0x89 && at(1, 'PNG\r\n\x1a\n')) return 'png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (at(0, 'RIFF') && at(8, 'WEBP')) return 'webp';
  if (at(0, 'GIF87a') || at(0, 'GIF89a')) return 'gif';
  return null;
}

export function readFileOrThrow(file: string, what = 'file'): Uint8Array {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? `${what} does not exist` : code === 'EISDIR' ? `is a directory, not a ${what}` : String(e);
    throw new MediaError(file, reason, { cause: e });
  }
}

async function decode(bytes: Uint8Array, file: string): Promise<Decoded> {
  const format = sniffImageFormat(bytes);
  if (!format) {
    throw new MediaError(file, `not a PNG, JPEG, WebP or GIF image (first bytes ${Buffer.from(bytes.subarray(0, 8)).toString('hex')})`);
  }
  try {
    switch (format) {
      case 'png':
        return decodePng(bytes);
      case 'gif':
        return decodeGifFirstFrame(bytes);
      case 'jpeg':
      case 'webp': {
        const dec = await (format === 'jpeg' ? jpegDecoder() : webpDecoder());
        const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
        const px = await dec(ab);
        return { width: px.width, height: px.height, mode: 'RGBA', data: new Uint8Array(px.data.buffer, px.data.byteOffset, px.data.byteLength) };
      }
    }
  } catch (e) {
    throw new MediaError(file, `cannot decode ${format.toUpperCase()} data: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** Decodes an encoded image held in memory to RGB (`name` is used in errors). */
export async function decodeImage(bytes: Uint8Array, name = '<buffer>'): Promise<RasterImage> {
  return decodedToRgb(await decode(bytes, name));
}

/** Reads an image file as 8-bit RGB, like `Image.open(path).convert("RGB")` (alpha dropped, not composited). */
export async function readImage(file: string): Promise<RasterImage> {
  return decodedToRgb(await decode(readFileOrThrow(file, 'image file'), file));
}

/** Reads an image file as 8-bit luminance, like `Image.open(path).convert("L")` (masks). */
export async function readMask(file: string): Promise<RasterImage> {
  return decodedToGray(await decode(readFileOrThrow(file, 'image file'), file));
}

/** PNG bytes of an RGB or L image. */
export function encodePng(img: RasterImage): Uint8Array {
  checkRaster(img);
  return encodePngBytes({ width: img.width, height: img.height, data: img.data, depth: 8, channels: img.channels });
}

/** Writes an RGB or L image as PNG (atomically: temp file + rename). */
export async function writePng(img: RasterImage, file: string): Promise<void> {
  if (path.extname(file).toLowerCase() !== '.png') throw new MediaError(file, 'writePng needs a .png path');
  await writeFileAtomic(file, encodePng(img));
}
