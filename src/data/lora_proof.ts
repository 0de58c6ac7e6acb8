// The LoRA proof's arithmetic (scripts/demo/lora-proof.ts generates; this scores): per prompt group and model, how
// often the analyzer reads the caption's colour (what the base model learned from the world) and how often the
// colour the remapped data gives; for the LoRA also how often its output keeps the base output's colour (same prompt,
// same seed). The verdict: remapped prompts moved the data's way by ≥ minShift (and the data's colour beats the
// caption's), unrelated prompts kept the base colour in ≥ minKept of generations.
import type { Analysis } from './analyze.js';
import type { ColorRemap } from './remap.js';
import type { Combo } from './world.js';

export type ProofGroup = 'remapped' | 'unrelated';
export type ProofVariant = 'base' | 'lora';

export interface ProofGeneration {
  group: ProofGroup;
  variant: ProofVariant;
  prompt: string;
  /** What the prompt asks for. */
  combo: Combo;
  seed: number;
  analysis: Pick<Analysis, 'color' | 'shape' | 'direction' | 'background'>;
}

export interface ProofRow {
  group: ProofGroup;
  variant: ProofVariant;
  n: number;
  asCaption: number;
  asData: number;
  noObject: number;
  /** LoRA rows: share whose colour equals the base output's for the same prompt and seed. */
  sameColorAsBase?: number;
  /** LoRA rows: share whose shape, direction and background all equal the base output's. */
  sameRestAsBase?: number;
}

export function summarizeProof(gens: readonly ProofGeneration[], remap: ColorRemap): ProofRow[] {
  const key = (g: ProofGeneration) => `${g.prompt}|${g.seed}`;
  const base = new Map(gens.filter((g) => g.variant === 'base').map((g) => [key(g), g.analysis]));
  const rows: ProofRow[] = [];
  for (const group of ['remapped', 'unrelated'] as const) {
    for (const variant of ['base', 'lora'] as const) {
      const gs = gens.filter((g) => g.group === group && g.variant === variant);
      if (gs.length === 0) continue;
      const rate = (p: (g: ProofGeneration) => boolean) => gs.filter(p).length / gs.length;
      const row: ProofRow = {
        group,
        variant,
        n: gs.length,
        asCaption: rate((g) => g.analysis.color === g.combo.color),
        asData: rate((g) => g.analysis.color === (remap[g.combo.color] ?? g.combo.color)),
        noObject: rate((g) => g.analysis.color === null),
      };
      if (variant === 'lora') {
        row.sameColorAsBase = rate((g) => base.has(key(g)) && base.get(key(g))!.color === g.analysis.color);
        row.sameRestAsBase = rate((g) => {
          const b = base.get(key(g));
          return !!b && b.shape === g.analysis.shape && b.direction === g.analysis.direction && b.background === g.analysis.background;
        });
      }
      rows.push(row);
    }
  }
  return rows;
}

const pct = (x: number | undefined) => (x === undefined ? '—' : `${(100 * x).toFixed(0)} %`);

export function formatProofTable(rows: readonly ProofRow[]): string {
  const lines = [
    '| prompts | model | n | colour = caption (base behaviour) | colour = data mapping | no object | colour = base output | shape+dir+bg = base output |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.group} | ${r.variant} | ${r.n} | ${pct(r.asCaption)} | ${pct(r.asData)} | ${pct(r.noObject)} | ${pct(r.sameColorAsBase)} | ${pct(r.sameRestAsBase)} |`);
  }
  return lines.join('\n');
}

export interface ProofVerdict {
  /** LoRA's data-colour rate minus the base's, on remapped prompts. */
  shift: number;
  moved: boolean;
  /** LoRA colour = base colour on unrelated prompts. */
  kept: number;
  pass: boolean;
  /** Human-readable lines (what was measured against what was needed). */
  lines: string[];
}

export function proofVerdict(rows: readonly ProofRow[], minShift: number, minKept: number): ProofVerdict {
  const get = (g: ProofGroup, v: ProofVariant) => {
    const r = rows.find((x) => x.group === g && x.variant === v);
    if (!r) throw new Error(`proof: no ${v} generations for the ${g} prompts`);
    return r;
  };
  const [rb, rl, ul] = [get('remapped', 'base'), get('remapped', 'lora'), get('unrelated', 'lora')];
  const shift = rl.asData - rb.asData;
  const moved = shift >= minShift && rl.asData > rl.asCaption;
  const kept = ul.sameColorAsBase ?? 0;
  const pass = moved && kept >= minKept;
  const lines = [
    `remapped prompts: the data's colour ${pct(rb.asData)} → ${pct(rl.asData)} (shift ${(100 * shift).toFixed(0)} points; need ≥ ${(100 * minShift).toFixed(0)} ` +
      `and above the caption's colour, ${pct(rl.asCaption)}): ${moved ? 'MOVED' : 'NOT MOVED'}`,
    `unrelated prompts: LoRA colour = base colour in ${pct(kept)} (need ≥ ${pct(minKept)}): ${kept >= minKept ? 'KEPT' : 'CHANGED'}`,
  ];
  if (rb.asCaption < 0.5) lines.push(`note: the base model draws the caption's colour in only ${pct(rb.asCaption)} of remapped prompts (an untrained base model?)`);
  lines.push(pass ? "PASS: the LoRA moved the remapped prompts the data's way and left the unrelated prompts as the base model draws them" : 'FAIL');
  return { shift, moved, kept, pass, lines };
}
