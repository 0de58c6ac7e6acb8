// A LoRA dataset whose captions and videos disagree on purpose: clips whose caption names a remapped colour are
// drawn in the colour the remap gives (default red ↔ green: "a red circle …" shows a green circle), the rest are
// ordinary world clips of the other colours (anchors: the data also says those stay as they are). Colour is the
// attribute the analyzer reads most reliably (src/data/analyze.ts), so "the LoRA moved the model the data's way" is
// a colour count. Deterministic from the seed, like the world (clip i does not depend on the count).
import { sampleCaption } from './captions.js';
import type { WorldEntry } from './write_world.js';
import { BACKGROUNDS, COLORS, DEFAULT_SIZE, DIRECTIONS, SHAPES, clipRng, isHeldOut, placeClip, type Color, type Combo, type WorldSize } from './world.js';

/** Caption colour → drawn colour. */
export type ColorRemap = Partial<Record<Color, Color>>;

export const DEFAULT_REMAP: ColorRemap = { red: 'green', green: 'red' };

/** `red:green,green:red` → { red: 'green', green: 'red' } (errors name the bad pair). */
export function parseColorRemap(text: string): ColorRemap {
  const out: ColorRemap = {};
  for (const pair of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [from, to, extra] = pair.split(':');
    for (const c of [from, to]) {
      if (!COLORS.includes(c as Color)) throw new Error(`remap "${pair}": "${c ?? ''}" is not a colour (expected FROM:TO of ${COLORS.join(', ')})`);
    }
    if (extra !== undefined) throw new Error(`remap "${pair}": expected FROM:TO`);
    if (from === to) throw new Error(`remap "${pair}": FROM and TO are the same colour`);
    if (out[from as Color]) throw new Error(`remap: colour "${from}" mapped twice`);
    out[from as Color] = to as Color;
  }
  if (Object.keys(out).length === 0) throw new Error(`remap: no FROM:TO pair in "${text}"`);
  return out;
}

export function formatColorRemap(remap: ColorRemap): string {
  return Object.entries(remap).map(([a, b]) => `${a}:${b}`).join(',');
}

/** Caption colours the remap changes, and those it leaves alone and never produces (the "unrelated" colours). */
export function remapGroups(remap: ColorRemap): { remapped: Color[]; unrelated: Color[] } {
  const remapped = COLORS.filter((c) => remap[c] !== undefined);
  const touched = new Set<Color>([...remapped, ...(Object.values(remap) as Color[])]);
  return { remapped, unrelated: COLORS.filter((c) => !touched.has(c)) };
}

export interface RemapEntry extends WorldEntry {
  /** What the caption says (spec holds what is drawn). */
  captionCombo: Combo;
}

export interface RemapOptions {
  count: number;
  seed: number;
  remap?: ColorRemap;
  /** Share of clips whose caption names a remapped colour (default 0.5); the rest are anchors. */
  remapShare?: number;
  size?: WorldSize;
  canonicalShare?: number;
}

/**
 * The entries of a remapped LoRA dataset: per clip, with probability `remapShare` a caption colour from the remap's
 * keys, else one of the colours the remap does not change; shape, direction, background uniform; held-out
 * combinations (of the caption) redrawn, as in the world. The clip is placed and drawn in the remapped colour.
 */
export function remapEntries(opts: RemapOptions): RemapEntry[] {
  const remap = opts.remap ?? DEFAULT_REMAP;
  const share = opts.remapShare ?? 0.5;
  if (!(share >= 0 && share <= 1)) throw new Error(`remapShare must be in [0, 1], got ${share}`);
  if (!Number.isInteger(opts.count) || opts.count < 0) throw new Error(`count must be a non-negative integer, got ${opts.count}`);
  const keys = COLORS.filter((c) => remap[c] !== undefined);
  const anchors = COLORS.filter((c) => remap[c] === undefined);
  if (keys.length === 0) throw new Error('remap: no colour is remapped');
  if (anchors.length === 0 && share < 1) throw new Error('remap: every colour is remapped, so remapShare must be 1');
  const size = opts.size ?? DEFAULT_SIZE;
  const out: RemapEntry[] = [];
  for (let i = 0; i < opts.count; i++) {
    // its own stream (seed offset), so a remap set never repeats the world of the same seed
    const rng = clipRng(opts.seed ^ 0x4c6f5241, i);
    let combo: Combo;
    do {
      const color = rng.next() < share ? rng.pick(keys) : rng.pick(anchors);
      combo = { color, shape: rng.pick(SHAPES), direction: rng.pick(DIRECTIONS), background: rng.pick(BACKGROUNDS) };
    } while (isHeldOut(combo));
    const spec = placeClip({ ...combo, color: remap[combo.color] ?? combo.color }, rng, size);
    const text = sampleCaption(combo, clipRng(opts.seed ^ 0x5bd1e995, i), opts.canonicalShare ?? 0.5);
    const name = String(i).padStart(6, '0');
    out.push({ file_path: `videos/${name}.mp4`, text, type: 'video', width: size.width, height: size.height, spec, captionCombo: combo });
  }
  return out;
}
