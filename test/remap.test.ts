// src/data/remap.ts: the LoRA proof's dataset really carries the remap — captions name one colour, the MP4 clips (read
// back with the analyzer) show the mapped one, the other colours are drawn as captioned; deterministic from the seed.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  COLORS,
  analyzeVideo,
  formatProofTable,
  parseColorRemap,
  proofVerdict,
  remapEntries,
  remapGroups,
  summarizeProof,
  writeEntries,
  type Color,
  type Combo,
  type ProofGeneration,
  type RemapEntry,
} from '../src/data/index.js';
import { readVideo } from '../src/media/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remap-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const colourWord = (text: string) => COLORS.filter((c) => new RegExp(`\\b${c}\\b`).test(text));

describe('remapped LoRA dataset', () => {
  it('parses FROM:TO lists and refuses bad ones by name', () => {
    expect(parseColorRemap('red:green, green:red')).toEqual({ red: 'green', green: 'red' });
    expect(() => parseColorRemap('red:purple')).toThrow(/"purple" is not a colour/);
    expect(() => parseColorRemap('red:red')).toThrow(/same colour/);
    expect(() => parseColorRemap('red:green,red:blue')).toThrow(/"red" mapped twice/);
    expect(() => parseColorRemap('')).toThrow(/no FROM:TO pair/);
    expect(remapGroups({ red: 'green', green: 'red' })).toEqual({ remapped: ['red', 'green'], unrelated: ['blue', 'yellow', 'cyan', 'magenta'] });
    expect(remapGroups({ red: 'blue' })).toEqual({ remapped: ['red'], unrelated: ['green', 'yellow', 'cyan', 'magenta'] });
  });

  it('is deterministic, and the captions say what captionCombo says while spec draws the mapped colour', () => {
    const remap = { red: 'green', green: 'red' } as const;
    const a = remapEntries({ count: 400, seed: 7, remap });
    expect(remapEntries({ count: 50, seed: 7, remap })).toEqual(a.slice(0, 50));
    expect(remapEntries({ count: 50, seed: 8, remap })).not.toEqual(a.slice(0, 50));
    const remapped = a.filter((e) => e.captionCombo.color === 'red' || e.captionCombo.color === 'green');
    expect(remapped.length / a.length).toBeGreaterThan(0.4); // remapShare 0.5
    expect(remapped.length / a.length).toBeLessThan(0.6);
    for (const e of a) {
      expect(colourWord(e.text)).toEqual([e.captionCombo.color]);
      expect(e.spec.color).toBe(remap[e.captionCombo.color as 'red' | 'green'] ?? e.captionCombo.color);
      expect({ ...e.spec, color: e.captionCombo.color }).toMatchObject(e.captionCombo);
    }
  });

  it('writes Fun metadata whose MP4 clips show the mapped colour (analyzer)', async () => {
    const dir = path.join(tmp, 'data');
    const entries = remapEntries({ count: 12, seed: 3, remap: { red: 'green', green: 'red' }, size: { width: 96, height: 64, frames: 9 } });
    // both groups present in these 12, so the check below covers remapped and anchor clips
    expect(entries.some((e) => e.spec.color !== e.captionCombo.color)).toBe(true);
    expect(entries.some((e) => e.spec.color === e.captionCombo.color)).toBe(true);
    await writeEntries(dir, entries, { remap: 'red:green,green:red' });
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8')) as { file_path: string; text: string; type: string }[];
    const world = JSON.parse(fs.readFileSync(path.join(dir, 'world.json'), 'utf8')) as { remap: string; clips: RemapEntry[] };
    expect(world.remap).toBe('red:green,green:red');
    expect(meta.length).toBe(12);
    for (const [i, m] of meta.entries()) {
      const e = world.clips[i]!;
      expect(m).toMatchObject({ file_path: e.file_path, text: e.text, type: 'video' });
      const v = await readVideo(path.join(dir, m.file_path));
      const a = analyzeVideo(v);
      const said = colourWord(m.text)[0];
      const want = said === 'red' ? 'green' : said === 'green' ? 'red' : said;
      expect(a.color, `${m.file_path}: "${m.text}"`).toBe(want);
      expect(a.direction).toBe(e.spec.direction);
    }
  });

  it('the proof verdict: passes a LoRA that follows the data, fails one that does nothing or recolours everything', () => {
    const remap = { red: 'green', green: 'red' } as const;
    const prompts: [ProofGeneration['group'], Combo][] = [
      ['remapped', { color: 'red', shape: 'circle', direction: 'left', background: 'black' }],
      ['remapped', { color: 'green', shape: 'square', direction: 'up', background: 'white' }],
      ['unrelated', { color: 'blue', shape: 'triangle', direction: 'down', background: 'gray' }],
      ['unrelated', { color: 'cyan', shape: 'circle', direction: 'right', background: 'black' }],
    ];
    // base: draws what the caption says; `lora(combo)` is the colour the LoRA draws
    const run = (lora: (c: Combo) => Color | null) =>
      prompts.flatMap(([group, combo]) =>
        (['base', 'lora'] as const).map((variant): ProofGeneration => ({
          group,
          variant,
          prompt: `${combo.color} ${combo.shape}`,
          combo,
          seed: 1,
          analysis: { color: variant === 'base' ? combo.color : lora(combo), shape: combo.shape, direction: combo.direction, background: combo.background },
        })),
      );
    const verdict = (gens: ProofGeneration[]) => proofVerdict(summarizeProof(gens, remap), 0.5, 0.8);
    const follows = summarizeProof(run((c) => remap[c.color as 'red' | 'green'] ?? c.color), remap);
    expect(follows.find((r) => r.group === 'remapped' && r.variant === 'lora')).toMatchObject({ n: 2, asCaption: 0, asData: 1, sameColorAsBase: 0, sameRestAsBase: 1 });
    expect(follows.find((r) => r.group === 'remapped' && r.variant === 'base')).toMatchObject({ asCaption: 1, asData: 0 });
    expect(proofVerdict(follows, 0.5, 0.8)).toMatchObject({ shift: 1, moved: true, kept: 1, pass: true });
    expect(formatProofTable(follows)).toContain('| remapped | lora | 2 | 0 % | 100 % | 0 % | 0 % | 100 % |');
    expect(verdict(run((c) => c.color))).toMatchObject({ shift: 0, moved: false, pass: false });
    expect(verdict(run(() => 'green'))).toMatchObject({ moved: false, kept: 0, pass: false }); // red→green only: shift 0.5, but not above caption's 0.5
    expect(verdict(run((c) => remap[c.color as 'red' | 'green'] ?? 'magenta'))).toMatchObject({ moved: true, kept: 0, pass: false });
    expect(verdict(run(() => null)).pass).toBe(false);
  });
});
