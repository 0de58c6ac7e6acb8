// Lazy loaders for the wasm codecs (each is compiled on first use, then cached for the process):
//  - @jsquash/jpeg (MozJPEG's libjpeg-turbo decoder) and @jsquash/webp (libwebp): the same decoders Pillow links,
//    so decoded pixels equal Pillow's (checked in test/media.test.ts);
//  - @ffmpeg/core (ffmpeg 5.1 built for wasm): demuxing/decoding of video containers (H.264, HEVC, VP8/9, ...);
//  - h264-mp4-encoder (minih264 + minimp4 in wasm): H.264 baseline encoding into MP4.
// None needs anything native. Node-specific details are handled here: the jsquash factories are handed the compiled
// module (their own loader would fetch() a URL), and ffmpeg-core's build only knows browsers/workers, so its factory
// is evaluated with a stub `self` and given the wasm bytes.
import * as fs from 'node:fs';
import { MediaError } from './errors.js';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// The project compiles against ES2022 without DOM types, which leaves WebAssembly undeclared; this is the part used.
type WasmModule = object;
interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  Instance: new (module: WasmModule, imports: object) => { exports: object };
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export interface RgbaPixels {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
}
type Decode = (bytes: ArrayBuffer) => Promise<RgbaPixels>;

function compile(specifier: string): Promise<WasmModule> {
  return Wasm.compile(fs.readFileSync(require.resolve(specifier)));
}

let jpeg: Promise<Decode> | undefined;
let webp: Promise<Decode> | undefined;

export function jpegDecoder(): Promise<Decode> {
  jpeg ??= (async () => {
    const mod = await import('@jsquash/jpeg/decode.js');
    await (mod.init as (m: WasmModule) => Promise<void>)(await compile('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm'));
    return (bytes: ArrayBuffer) => mod.default(bytes) as Promise<RgbaPixels>;
  })();
  return jpeg;
}

export function webpDecoder(): Promise<Decode> {
  webp ??= (async () => {
    const mod = await import('@jsquash/webp/decode.js');
    await (mod.init as (m: WasmModule) => Promise<void>)(await compile('@jsquash/webp/codec/dec/webp_dec.wasm'));
    return (bytes: ArrayBuffer) => mod.default(bytes) as Promise<RgbaPixels>;
  })();
  return webp;
}

/** The parts of an @ffmpeg/core instance used here (one instance per job: ffmpeg's globals are not reset between runs). */
export interface FfmpegCore {
  FS: {
    writeFile(path: string, data: Uint8Array): void;
    readFile(path: string): Uint8Array;
    unlink(path: string): void;
  };
  exec(...args: string[]): number;
  ffprobe(...args: string[]): number;
  setLogger(logger: (m: { type: string; message: string }) => void): void;
  reset(): void;
}
type CoreFactory = (opts: Record<string, unknown>) => Promise<FfmpegCore>;

let ffmpegFactory: { factory: CoreFactory; wasm: Promise<WasmModule> } | undefined;

/** A fresh ffmpeg instance; the 32 MB wasm is compiled once per process. */
export async function createFfmpegCore(): Promise<FfmpegCore> {
  if (!ffmpegFactory) {
    let jsPath: string;
    try {
      jsPath = require.resolve('@ffmpeg/core'); // the UMD build: a plain script defining createFFmpegCore
    } catch {
      // optional: its build bundles GPL-2.0-or-later code (x264/x265), so it is not a hard dependency of this package
      throw new MediaError(
        'video decoder',
        'reading video files needs the optional package @ffmpeg/core (GPL-2.0-or-later: npm install @ffmpeg/core@0.12.10) or a system ffmpeg (ffmpeg option / --ffmpeg PATH); PNG-frame folders need neither',
      );
    }
    const source = fs.readFileSync(jsPath, 'utf8');
    const factory = new Function('self', `${source}\n;return createFFmpegCore;`)({ location: { href: 'file:///' } }) as CoreFactory;
    ffmpegFactory = { factory, wasm: Wasm.compile(fs.readFileSync(jsPath.replace(/\.js$/, '.wasm'))) };
  }
  const module = await ffmpegFactory.wasm;
  return ffmpegFactory.factory({
    instantiateWasm(imports: object, receive: (instance: { exports: object }) => void) {
      const instance = new Wasm.Instance(module, imports);
      receive(instance);
      return instance.exports;
    },
  });
}

export interface H264Encoder {
  width: number;
  height: number;
  frameRate: number;
  quantizationParameter: number;
  speed: number;
  groupOfPictures: number;
  outputFilename: string;
  initialize(): void;
  addFrameYuv(data: Uint8Array): void;
  finalize(): void;
  delete(): void;
  FS: { readFile(path: string): Uint8Array; unlink(path: string): void };
}

/** An encoder of the package's single wasm instance (shared by all encoders: an Emscripten abort would end it). */
export function createH264Encoder(): Promise<H264Encoder> {
  return (require('h264-mp4-encoder') as { createH264MP4Encoder(): Promise<H264Encoder> }).createH264MP4Encoder();
}
