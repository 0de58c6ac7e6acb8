// src/data/quality: the demo-quality checks pass on the world's own clips and fail on wrong ones.
import { describe, expect, it } from 'vitest';
import { HELD_OUT, benchCases, benchCombos, clipRng, comboKey, isHeldOut, formatTable, placeClip, renderClip, scoreI2V, scoreStartEnd, scoreT2V, scoreV2V, summarize, type Combo } from '../src/data/index.js';

const size = { width: 96, height: 64, frames: 17 };
const combo: Combo = { color: 'yellow', shape: 'triangle', direction: 'left', background: 'gray' };
const clip = placeClip(combo, clipRng(4, 2), size);
const frames = renderClip(clip);
const video = { frames, width: size.width, height: size.height };

describe('quality checks', () => {
  it('pass on the ground truth', () => {
    expect(Object.values(scoreT2V(video, combo, false).checks)).toEqual([true, true, true, true]);
    expect(Object.values(scoreI2V(video, frames[0]!, combo, true).checks)).toEqual([true, true]);
    expect(Object.values(scoreStartEnd(video, frames[0]!, frames[16]!, combo, true).checks)).toEqual([true, true, true]);
    expect(Object.values(scoreV2V(video, { ...video, frames: renderClip({ ...clip, color: 'blue' }) }, combo, false).checks)).toEqual([true, true]);
  });

  it('fail on a wrong video', () => {
    const other = placeClip({ ...combo, color: 'red', direction: 'down' }, clipRng(4, 3), size);
    const wrong = { ...video, frames: renderClip(other) };
    const t2v = scoreT2V(wrong, combo, false).checks;
    expect([t2v.color, t2v.direction, t2v.shape, t2v.background]).toEqual([false, false, true, true]);
    expect(scoreI2V(wrong, frames[0]!, combo, false).checks['frame0 ≥ 28 dB']).toBe(false);
    const se = scoreStartEnd(wrong, frames[0]!, frames[16]!, combo, false).checks;
    expect([se['first ≥ 26 dB'], se['last ≥ 26 dB'], se.travels]).toEqual([false, false, false]);
    const v2v = scoreV2V(wrong, video, combo, false).checks;
    expect([v2v['color follows prompt'], v2v['path stays']]).toEqual([false, false]);
  });

  it('summarize splits seen/held-out and marks misses', () => {
    const rows = summarize([scoreT2V(video, combo, false), scoreT2V(video, { ...combo, color: 'red' }, true)]);
    expect(rows.map((r) => [r.split, r.n, r.rates.color![0]])).toEqual([
      ['seen', 1, 1],
      ['held-out', 1, 0],
    ]);
    const table = formatTable(rows);
    expect(table).toContain('color 100.0 % (≥ 95)');
    expect(table).toContain('color 0.0 % (≥ 95) ✗');
  });

  it("benchCombos: the held-out twelve, then seen ones spread as documented", () => {
    const count = (cs: Combo[], k: keyof Combo) => cs.reduce<Record<string, number>>((m, c) => ({ ...m, [c[k]]: (m[c[k]] ?? 0) + 1 }), {});
    for (const order of ['cycle', 'even'] as const) {
      const all = benchCombos(12, order);
      expect(all.slice(0, 12)).toEqual(HELD_OUT);
      const seen = all.slice(12);
      expect(seen.length).toBe(12);
      expect(seen.some(isHeldOut)).toBe(false);
      expect(new Set(seen.map(comboKey)).size).toBe(12);
    }
    const cycle = benchCombos(12, 'cycle').slice(12);
    expect(Object.values(count(cycle, 'color'))).toEqual([2, 2, 2, 2, 2, 2]);
    expect(count(cycle, 'shape')).toEqual({ circle: 4, square: 4, triangle: 4 });
    expect(Object.values(count(cycle, 'background'))).toEqual([4, 4, 4]);
    // the pre-2026-12-06 set: 6 circles, 6 squares, no triangle, 10 on black
    const even = benchCombos(12, 'even').slice(12);
    expect(count(even, 'shape')).toEqual({ circle: 6, square: 6 });
    expect(count(even, 'background').black).toBe(10);
  });

  it('benchCases: combos outer, seeds inner, the k-th case placed from clipRng(seed, k)', () => {
    const combos = benchCombos(2, 'even');
    const cases = benchCases(combos, 3, size);
    expect(cases.length).toBe(combos.length * 3);
    expect(cases.map((c) => c.seed).slice(0, 4)).toEqual([1000, 1001, 1002, 1000]);
    const k = 3 * 5 + 2; // combo 5, seed 1002
    expect(cases[k]!.combo).toEqual(combos[5]);
    expect(cases[k]!.clip).toEqual(placeClip(combos[5]!, clipRng(1002, k), size));
    expect(cases[k]!.clip).not.toEqual(placeClip(combos[5]!, clipRng(1002, k + 1), size));
  });
});
