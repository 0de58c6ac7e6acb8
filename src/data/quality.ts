// Scoring generated world videos against what was asked: per-generation checks and the table bench/demo_quality.ts
// prints (targets from the demo model's quality bar: text to video colour ≥ 95 %, direction ≥ 90 %, shape ≥ 85 %,
// background ≥ 95 %; image to video frame-0 PSNR ≥ 28 dB and direction ≥ 90 %; start + end both ends ≥ 26 dB and the
// object travels; video to video at strength 0.7 colour follows the prompt ≥ 90 % and the path stays).
import { analyzeVideo, psnr, type Analysis, type VideoLike } from './analyze.js';
import { BACKGROUNDS, COLORS, DIRECTIONS, HELD_OUT, SHAPES, allCombos, clipRng, comboKey, isHeldOut, placeClip, type ClipSpec, type Combo, type WorldSize } from './world.js';

export type Mode = 't2v' | 'i2v' | 'start-end' | 'v2v';
export type SeenOrder = 'cycle' | 'even';

/**
 * The prompts bench/demo_quality.ts measures: the held-out combinations first, then `nSeen` trainable ones. 'cycle'
 * steps through the attributes: the i-th has colour i mod 6, shape (i + ⌊i/6⌋) mod 3, direction i mod 4 (the next one
 * where that would be a held-out combination), background ⌊i/4⌋ mod 3, so 12 of them hold every colour twice and every
 * shape and every background four times. 'even' spreads them evenly over allCombos' fixed order (the bench's set
 * before 2026-12-06, the eighteenth session, which at 12 gives 6 circles, 6 squares and no triangle, 6 left, 5 up,
 * 1 right and no down, 10 on black; the tables since compare on it).
 */
export function benchCombos(nSeen: number, order: SeenOrder): Combo[] {
  const trainable = allCombos().filter((c) => !isHeldOut(c));
  if (order === 'even') {
    const stride = trainable.length / Math.max(nSeen, 1);
    return [...HELD_OUT, ...Array.from({ length: nSeen }, (_, i) => trainable[Math.floor(i * stride)]!)];
  }
  const seen = new Map<string, Combo>();
  for (let i = 0; seen.size < nSeen && i < 4 * trainable.length; i++) {
    for (let d = 0; d < DIRECTIONS.length; d++) {
      const c: Combo = {
        color: COLORS[i % COLORS.length]!,
        shape: SHAPES[(i + Math.floor(i / COLORS.length)) % SHAPES.length]!,
        direction: DIRECTIONS[(i + d) % DIRECTIONS.length]!,
        background: BACKGROUNDS[Math.floor(i / DIRECTIONS.length) % BACKGROUNDS.length]!,
      };
      if (!isHeldOut(c) && !seen.has(comboKey(c))) { seen.set(comboKey(c), c); break; } // a held-out one: the next direction
    }
  }
  for (const c of trainable) if (seen.size < nSeen && !seen.has(comboKey(c))) seen.set(comboKey(c), c); // past the cycle's reach
  return [...HELD_OUT, ...seen.values()];
}

/**
 * The bench's cases: each of `combos`, then each seed 1000 … 1000 + seeds − 1, with the clip the bench's image and
 * video modes start from (placed at `size`, its own PRNG stream k = the case's index, so the probes that bound the
 * bench meet the very clips it scores).
 */
export function benchCases(combos: readonly Combo[], seeds: number, size: WorldSize): { combo: Combo; seed: number; clip: ClipSpec }[] {
  return combos.flatMap((combo, i) => Array.from({ length: seeds }, (_, s) => ({ combo, seed: 1000 + s, clip: placeClip(combo, clipRng(1000 + s, i * seeds + s), size) })));
}

export interface Scored {
  mode: Mode;
  heldOut: boolean;
  /** Check name → passed. */
  checks: Record<string, boolean>;
  /** Measured numbers (PSNRs). */
  values: Record<string, number>;
  analysis: Analysis;
}

/** The copied frames' PSNR bars: image to video's frame 0, start + end's first and last frames (dB). */
export const FRAME0_MIN_DB = 28;
export const END_FRAMES_MIN_DB = 26;

export interface Targets {
  [check: string]: number;
}

export const TARGETS: Record<Mode, Targets> = {
  t2v: { color: 0.95, direction: 0.9, shape: 0.85, background: 0.95 },
  i2v: { [`frame0 ≥ ${FRAME0_MIN_DB} dB`]: 0.9, direction: 0.9 },
  'start-end': { [`first ≥ ${END_FRAMES_MIN_DB} dB`]: 0.9, [`last ≥ ${END_FRAMES_MIN_DB} dB`]: 0.9, travels: 0.9 },
  v2v: { 'color follows prompt': 0.9, 'path stays': 0.9 },
};

function attributes(a: Analysis, want: Combo): Record<string, boolean> {
  return { color: a.color === want.color, shape: a.shape === want.shape, direction: a.direction === want.direction, background: a.background === want.background };
}

/** Text to video: all four attributes. */
export function scoreT2V(video: VideoLike, want: Combo, heldOut: boolean): Scored {
  const analysis = analyzeVideo(video);
  return { mode: 't2v', heldOut, checks: attributes(analysis, want), values: {}, analysis };
}

/** Image to video: frame 0 against the start image, and the motion the prompt names. */
export function scoreI2V(video: VideoLike, start: Uint8Array, want: Combo, heldOut: boolean): Scored {
  const analysis = analyzeVideo(video);
  const p0 = psnr(video.frames[0]!, start);
  return { mode: 'i2v', heldOut, checks: { [`frame0 ≥ ${FRAME0_MIN_DB} dB`]: p0 >= FRAME0_MIN_DB, direction: analysis.direction === want.direction }, values: { frame0: p0 }, analysis };
}

/** Start + end: both end frames against their images, and the object moves from one to the other the stated way. */
export function scoreStartEnd(video: VideoLike, start: Uint8Array, end: Uint8Array, want: Combo, heldOut: boolean): Scored {
  const analysis = analyzeVideo(video);
  const first = psnr(video.frames[0]!, start);
  const last = psnr(video.frames[video.frames.length - 1]!, end);
  // "Travels": visible in the middle frame too, and moving the stated way overall.
  const mid = Math.floor(video.frames.length / 2);
  const seenMid = analysis.objects.some((o) => Math.abs(o.t - mid) <= 1);
  return {
    mode: 'start-end',
    heldOut,
    checks: { [`first ≥ ${END_FRAMES_MIN_DB} dB`]: first >= END_FRAMES_MIN_DB, [`last ≥ ${END_FRAMES_MIN_DB} dB`]: last >= END_FRAMES_MIN_DB, travels: seenMid && analysis.direction === want.direction },
    values: { first, last },
    analysis,
  };
}

/**
 * Video to video: the prompt names a new colour; the result must show that colour, and the object's path must stay
 * (mean centroid distance to the source's, over frames where both are seen, ≤ 15 % of the short side).
 */
export function scoreV2V(video: VideoLike, source: VideoLike, want: Combo, heldOut: boolean): Scored {
  const analysis = analyzeVideo(video);
  const src = analyzeVideo(source);
  let sum = 0;
  let n = 0;
  for (const o of analysis.objects) {
    const s = src.objects.find((x) => x.t === o.t);
    if (s) {
      sum += Math.hypot(o.cx - s.cx, o.cy - s.cy);
      n++;
    }
  }
  const drift = n > 0 ? sum / n : Infinity;
  const limit = 0.15 * Math.min(video.width, video.height);
  return {
    mode: 'v2v',
    heldOut,
    checks: { 'color follows prompt': analysis.color === want.color, 'path stays': n >= video.frames.length / 2 && drift <= limit },
    values: { drift },
    analysis,
  };
}

export interface TableRow {
  mode: Mode;
  split: 'seen' | 'held-out';
  n: number;
  /** check → [rate, target]. */
  rates: Record<string, [number, number]>;
  /** value name → mean. */
  means: Record<string, number>;
}

/** Pass rates per mode and split (seen / held-out), beside the targets. */
export function summarize(results: readonly Scored[]): TableRow[] {
  const rows: TableRow[] = [];
  for (const mode of Object.keys(TARGETS) as Mode[]) {
    for (const split of ['seen', 'held-out'] as const) {
      const rs = results.filter((r) => r.mode === mode && r.heldOut === (split === 'held-out'));
      if (rs.length === 0) continue;
      const rates: Record<string, [number, number]> = {};
      for (const [check, target] of Object.entries(TARGETS[mode])) rates[check] = [rs.filter((r) => r.checks[check]).length / rs.length, target];
      const means: Record<string, number> = {};
      for (const k of Object.keys(rs[0]!.values)) {
        const finite = rs.map((r) => r.values[k]!).map((v) => (Number.isFinite(v) ? v : 99));
        means[k] = finite.reduce((a, b) => a + b, 0) / finite.length;
      }
      rows.push({ mode, split, n: rs.length, rates, means });
    }
  }
  return rows;
}

/** The table as Markdown: one line per mode and split, each check as "rate % (target)" with ✗ when below. */
export function formatTable(rows: readonly TableRow[]): string {
  const lines = ['| mode | split | n | checks (pass rate, target) | means |', '|---|---|---|---|---|'];
  for (const r of rows) {
    const checks = Object.entries(r.rates)
      .map(([k, [rate, target]]) => `${k} ${(100 * rate).toFixed(1)} % (≥ ${(100 * target).toFixed(0)})${rate >= target ? '' : ' ✗'}`)
      .join('; ');
    const means = Object.entries(r.means).map(([k, v]) => `${k} ${v.toFixed(1)} dB`).join('; ');
    lines.push(`| ${r.mode} | ${r.split} | ${r.n} | ${checks} | ${means.replace(/drift (\S+) dB/, 'drift $1 px')} |`);
  }
  return lines.join('\n');
}
