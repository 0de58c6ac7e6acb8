// Writing a world to disk as CogVideoX-Fun training data: clips (MP4 by default, or PNG stills), `metadata.json` in
// the format of CogVideoX-Fun's dataset (cogvideox/data/dataset_image_video.py: a list of {file_path, text, type}
// with file_path relative to `--train_data_dir`), and `world.json`, the ground truth of every clip (its spec) for
// the quality analyzer. Every file is written atomically; the metadata last, so a killed run leaves no metadata that
// names missing clips.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../media/atomic.js';
import { writePng, writeVideo } from '../media/index.js';
import { sampleCaption } from './captions.js';
import { renderClip, renderFrame } from './render.js';
import { clipRng, DEFAULT_SIZE, HELD_OUT, sampleClip, type ClipSpec, type WorldSize } from './world.js';

export interface FunMetadataEntry {
  file_path: string;
  text: string;
  type: 'video' | 'image';
  width: number;
  height: number;
}

export interface WorldEntry extends FunMetadataEntry {
  spec: ClipSpec;
}

export interface WriteWorldOptions {
  out: string;
  count: number;
  seed: number;
  size?: WorldSize;
  /** Also write this many still images (one frame of a further clip each, as type "image"). Default 0. */
  images?: number;
  /** Share of captions that are the canonical template (default 0.5). */
  canonicalShare?: number;
  fps?: number;
  /** Called after each file. */
  onProgress?: (done: number, total: number) => void;
}

/** The entries of a world without writing anything (clip i of seed s is the same whatever `count`). */
export function worldEntries(opts: Omit<WriteWorldOptions, 'out' | 'onProgress' | 'fps'>): WorldEntry[] {
  const size = opts.size ?? DEFAULT_SIZE;
  const out: WorldEntry[] = [];
  const total = opts.count + (opts.images ?? 0);
  for (let i = 0; i < total; i++) {
    const spec = sampleClip(opts.seed, i, size);
    // The caption draws from its own stream (index offset), so geometry does not shift when captions change.
    const text = sampleCaption(spec, clipRng(opts.seed ^ 0x5bd1e995, i), opts.canonicalShare ?? 0.5);
    const isVideo = i < opts.count;
    const name = String(i).padStart(6, '0');
    out.push({
      file_path: isVideo ? `videos/${name}.mp4` : `images/${name}.png`,
      text,
      type: isVideo ? 'video' : 'image',
      width: size.width,
      height: size.height,
      spec,
    });
  }
  return out;
}

function checkOptions(opts: WriteWorldOptions): void {
  if (!Number.isInteger(opts.count) || opts.count < 0) throw new Error(`count must be a non-negative integer, got ${opts.count}`);
  if (!Number.isInteger(opts.seed) || opts.seed < 0) throw new Error(`seed must be a non-negative integer, got ${opts.seed}`);
  const images = opts.images ?? 0;
  if (!Number.isInteger(images) || images < 0) throw new Error(`images must be a non-negative integer, got ${images}`);
  const s = opts.size ?? DEFAULT_SIZE;
  if (!(Number.isInteger(s.width) && s.width >= 16 && Number.isInteger(s.height) && s.height >= 16)) {
    throw new Error(`size must be at least 16x16 integers, got ${s.width}x${s.height}`);
  }
  if (!(Number.isInteger(s.frames) && s.frames >= 2)) throw new Error(`frames must be an integer ≥ 2, got ${s.frames}`);
}

/**
 * Writes the world under `out` (created if missing). Existing clips with the right name are kept (a killed run is
 * resumed by running the same command again); the metadata is rewritten at the end.
 */
export async function writeWorld(opts: WriteWorldOptions): Promise<WorldEntry[]> {
  checkOptions(opts);
  const entries = worldEntries(opts);
  return writeEntries(opts.out, entries, { seed: opts.seed, count: opts.count, images: opts.images ?? 0, heldOut: HELD_OUT }, opts);
}

/**
 * Writes given entries under `out`: each clip (kept when its file exists), then `world.json` (`header` and the
 * entries as `clips`) and `metadata.json` last. Used by writeWorld and by the remapped LoRA dataset (remap.ts).
 */
export async function writeEntries<E extends WorldEntry>(
  out: string,
  entries: E[],
  header: Record<string, unknown>,
  opts: Pick<WriteWorldOptions, 'fps' | 'onProgress'> = {},
): Promise<E[]> {
  fs.mkdirSync(path.join(out, 'videos'), { recursive: true });
  if (entries.some((e) => e.type === 'image')) fs.mkdirSync(path.join(out, 'images'), { recursive: true });
  let done = 0;
  for (const e of entries) {
    const file = path.join(out, e.file_path);
    if (!fs.existsSync(file)) {
      if (e.type === 'video') {
        await writeVideo({ frames: renderClip(e.spec), width: e.spec.width, height: e.spec.height }, file, { fps: opts.fps ?? 8 });
      } else {
        const t = Math.floor(e.spec.frames / 2);
        await writePng({ width: e.spec.width, height: e.spec.height, channels: 3, data: renderFrame(e.spec, t) }, file);
      }
    }
    opts.onProgress?.(++done, entries.length);
  }
  const meta: FunMetadataEntry[] = entries.map(({ file_path, text, type, width, height }) => ({ file_path, text, type, width, height }));
  const world = { ...header, clips: entries };
  await writeFileAtomic(path.join(out, 'world.json'), new TextEncoder().encode(JSON.stringify(world, null, 1)));
  await writeFileAtomic(path.join(out, 'metadata.json'), new TextEncoder().encode(JSON.stringify(meta, null, 1)));
  return entries;
}
