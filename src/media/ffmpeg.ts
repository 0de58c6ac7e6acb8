// Video containers through ffmpeg: the bundled wasm build (@ffmpeg/core, nothing to install) or, when the caller
// passes its path, a system ffmpeg (faster, more codecs; its ffprobe must sit next to it or be on PATH).
//
// Decoding gives what cv2.VideoCapture (OpenCV's ffmpeg backend, CogVideoX-Fun's V2V reader) returns:
//  - every decoded frame in presentation order, none dropped or duplicated (-fps_mode passthrough);
//  - fps = av_guess_frame_rate: r_frame_rate, or avg_frame_rate when r > 210 and avg < 70 (OpenCV's get_fps);
//  - YUV -> RGB as swscale does it for opencv-python 4.14: the stream's colour matrix (BT.601 when untagged) and
//    range (full for yuvj* or color_range=pc). For 8-bit 4:2:0 and 4:2:2 (nearly every H.264 file) ffmpeg hands
//    over the planes and yuv.ts converts them with the arithmetic of swscale's x86 SSSE3 kernel, which cv2 runs on
//    x86-64: bit-exact on the tags tried (untagged, smpte170m, bt470bg, bt709, bt2020nc, full range). Other pixel
//    formats are converted by ffmpeg's own C code (`scale` filter), which may differ from cv2 by a few levels
//    (equal on the 4:4:4 and VP9 clips tried);
//  - rotation metadata: ffmpeg's default autorotate, like OpenCV's CAP_PROP_ORIENTATION_AUTO (not tested here).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createFfmpegCore } from './codecs.js';
import { MediaError } from './errors.js';
import { yuvFrameBytes, yuvMatrixFor, yuvPlanarToRgb } from './yuv.js';

export interface ProbeInfo {
  width: number;
  height: number;
  fps: number;
  codec: string;
  pixFmt: string;
  /** ffprobe's color_space tag ('unknown' when untagged). */
  colorSpace: string;
  /** Full-range samples: a yuvj* pixel format or a color_range=pc tag. */
  fullRange: boolean;
}

/** Planar 8-bit YUV formats converted in JS (yuv.ts), with their vertical chroma shift. */
const PLANAR: Record<string, { vshift: 0 | 1 }> = {
  yuv420p: { vshift: 1 },
  yuvj420p: { vshift: 1 },
  yuv422p: { vshift: 0 },
  yuvj422p: { vshift: 0 },
};

export interface FrameSelection {
  /** Keep frame i when i % step === 0. */
  step: number;
  /** Stop after this many kept frames. */
  limit: number;
}

interface ProbeStream {
  codec_name?: string;
  pix_fmt?: string;
  color_space?: string;
  color_range?: string;
  width?: number;
  height?: number;
  r_frame_rate?: string;
  avg_frame_rate?: string;
  side_data_list?: { rotation?: number }[];
  tags?: { rotate?: string };
}

function ratio(s: string | undefined): number {
  if (!s) return 0;
  const [n, d] = s.split('/').map(Number);
  return d ? n! / d : Number(n) || 0;
}

function parseProbe(json: string, file: string): ProbeInfo {
  let streams: ProbeStream[];
  try {
    streams = (JSON.parse(json) as { streams?: ProbeStream[] }).streams ?? [];
  } catch (e) {
    throw new MediaError(file, 'ffprobe gave unreadable output', { cause: e });
  }
  const s = streams[0];
  if (!s || !s.width || !s.height) throw new MediaError(file, 'no video stream found');
  const r = ratio(s.r_frame_rate);
  const avg = ratio(s.avg_frame_rate);
  const fps = avg > 0 && r > 0 && avg < 70 && r > 210 ? avg : r > 0 ? r : avg;
  const rotation = s.side_data_list?.find((d) => d.rotation !== undefined)?.rotation ?? Number(s.tags?.rotate ?? 0);
  const swap = Math.abs(Math.round(rotation)) % 180 === 90;
  const info = { width: swap ? s.height : s.width, height: swap ? s.width : s.height, fps };
  const pixFmt = s.pix_fmt ?? 'unknown';
  const fullRange = pixFmt.startsWith('yuvj') || s.color_range === 'pc';
  return { ...info, codec: s.codec_name ?? 'unknown', pixFmt, colorSpace: s.color_space ?? 'unknown', fullRange };
}

const PROBE_ARGS = ['-v', 'error', '-select_streams', 'v:0', '-show_streams', '-of', 'json'];

function decodeArgs(input: string, info: ProbeInfo, sel: FrameSelection): string[] {
  const planar = PLANAR[info.pixFmt] !== undefined;
  const filters = [
    ...(sel.step > 1 ? [`select=not(mod(n\\,${sel.step}))`] : []),
    ...(planar ? [] : [`scale=in_color_matrix=${yuvMatrixFor(info.colorSpace)}:flags=bicubic`, 'format=rgb24']),
  ];
  return [
    '-nostdin', '-v', 'error', '-i', input, '-map', '0:v:0', '-an', '-sn', '-dn',
    ...(filters.length ? ['-vf', filters.join(',')] : []), '-fps_mode', 'passthrough',
    ...(Number.isFinite(sel.limit) ? ['-frames:v', String(sel.limit)] : []),
    '-f', 'rawvideo', '-pix_fmt', planar ? info.pixFmt : 'rgb24',
  ];
}

/** Splits ffmpeg's raw output into RGB frames (converting planar YUV). */
function splitFrames(raw: Uint8Array, info: ProbeInfo, file: string): Uint8Array[] {
  const { width, height } = info;
  const planar = PLANAR[info.pixFmt];
  const size = planar ? yuvFrameBytes(width, height, planar.vshift) : width * height * 3;
  if (raw.length % size !== 0) {
    throw new MediaError(file, `decoder returned ${raw.length} bytes, not a whole number of ${width}x${height} ${planar ? info.pixFmt : 'RGB'} frames`);
  }
  const frames: Uint8Array[] = [];
  for (let o = 0; o < raw.length; o += size) {
    const f = raw.subarray(o, o + size);
    frames.push(planar ? yuvPlanarToRgb(f, width, height, planar.vshift, info.fullRange, info.colorSpace) : f.slice());
  }
  return frames;
}

/** Decodes with the bundled wasm ffmpeg (the whole file is copied into its in-memory filesystem). */
async function decodeWasm(file: string, select: (info: ProbeInfo) => FrameSelection) {
  const bytes = fs.readFileSync(file);
  const core = await createFfmpegCore();
  const log: string[] = [];
  core.setLogger((m) => log.push(m.message));
  const input = `/input${path.extname(file).toLowerCase().replace(/[^.a-z0-9]/g, '')}`;
  core.FS.writeFile(input, bytes);
  const fail = (what: string): never => {
    const tail = log.filter((l) => l.trim()).slice(-4).join(' | ');
    throw new MediaError(file, `${what}${tail ? `: ${tail}` : ''}`);
  };
  core.ffprobe(...PROBE_ARGS, input, '-o', '/probe.json'); // returns -1 even on success (exit via abort)
  let json: string;
  try {
    json = new TextDecoder().decode(core.FS.readFile('/probe.json'));
  } catch {
    return fail('cannot read as a video');
  }
  if (!/"streams"\s*:\s*\[\s*\{/.test(json)) fail('cannot read as a video (no video stream found)');
  const info = parseProbe(json, file);
  core.reset();
  log.length = 0;
  const rc = core.exec(...decodeArgs(input, info, select(info)), '/out.raw');
  if (rc !== 0) fail(`cannot decode its video stream (${info.codec})`);
  const raw = core.FS.readFile('/out.raw');
  return { info, frames: splitFrames(raw, info, file) };
}

function run(bin: string, args: string[], file: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new MediaError(file, `cannot run ${bin}: ${e.message}`, { cause: e })));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new MediaError(file, `${path.basename(bin)} failed (exit ${code}): ${Buffer.concat(err).toString().trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

/** ffprobe next to the given ffmpeg binary, else the one on PATH. */
export function ffprobeNextTo(ffmpeg: string): string {
  const sibling = path.join(path.dirname(ffmpeg), `ffprobe${path.extname(ffmpeg)}`);
  return path.isAbsolute(ffmpeg) && fs.existsSync(sibling) ? sibling : 'ffprobe';
}

async function decodeSystem(file: string, ffmpeg: string, select: (info: ProbeInfo) => FrameSelection) {
  const json = (await run(ffprobeNextTo(ffmpeg), [...PROBE_ARGS, file], file)).toString();
  const info = parseProbe(json, file);
  const raw = await run(ffmpeg, [...decodeArgs(file, info, select(info)), 'pipe:1'], file);
  return { info, frames: splitFrames(new Uint8Array(raw.buffer, raw.byteOffset, raw.length), info, file) };
}

/**
 * Decodes the first video stream of a container file to RGB frames. `select` sees the stream's size and fps before
 * decoding and picks the frames to keep (so frame skipping and the length cap happen inside ffmpeg).
 */
export async function decodeContainer(
  file: string,
  select: (info: ProbeInfo) => FrameSelection,
  ffmpeg?: string,
): Promise<{ info: ProbeInfo; frames: Uint8Array[] }> {
  return ffmpeg ? decodeSystem(file, ffmpeg, select) : decodeWasm(file, select);
}
