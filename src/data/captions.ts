// Captions for world clips: the canonical template plus paraphrases, so prompts need not be verbatim. The caption is
// chosen by the clip's own PRNG stream, so a world is reproducible from its seed.
import type { Combo, Rng } from './world.js';

/** `a {color} {shape} moving {direction} on a {background} background` — the form the demo model is prompted with. */
export function canonicalCaption(c: Combo): string {
  return `a ${c.color} ${c.shape} moving ${c.direction} on a ${c.background} background`;
}

const SHAPE_WORDS: Record<Combo['shape'], readonly string[]> = {
  circle: ['circle', 'ball', 'disc', 'round dot'],
  square: ['square', 'box', 'block', 'square tile'],
  triangle: ['triangle', 'triangular shape', 'pyramid shape', 'wedge'],
};

const DIRECTION_PHRASES: Record<Combo['direction'], readonly string[]> = {
  left: ['moving left', 'rolling to the left', 'sliding left', 'travelling to the left', 'drifting leftward'],
  right: ['moving right', 'rolling to the right', 'sliding right', 'travelling to the right', 'drifting rightward'],
  up: ['moving up', 'rising', 'sliding upward', 'travelling upwards', 'floating up'],
  down: ['moving down', 'falling', 'sliding downward', 'travelling downwards', 'sinking down'],
};

const BACKGROUND_PHRASES: Record<Combo['background'], readonly string[]> = {
  black: ['on a black background', 'against black', 'over a dark black backdrop', 'on black'],
  white: ['on a white background', 'against white', 'over a plain white backdrop', 'on white'],
  gray: ['on a gray background', 'against gray', 'over a flat gray backdrop', 'on grey'],
};

/** All the paraphrase templates, each given the picked words. */
const TEMPLATES: readonly ((color: string, shape: string, motion: string, bg: string) => string)[] = [
  (c, s, m, b) => `a ${c} ${s} ${m} ${b}`,
  (c, s, m, b) => `${c} ${s} ${m} ${b}`,
  (c, s, m, b) => `a single ${c} ${s} ${m} ${b}`,
  (c, s, m, b) => `a video of a ${c} ${s} ${m} ${b}`,
  (c, s, m, b) => `${b.replace(/^(on|against|over) /, '')}: a ${c} ${s} ${m}`,
];

/**
 * A caption for the clip: the canonical one with probability `canonicalShare` (default 0.5), otherwise a random
 * paraphrase (synonyms for shape, motion and background; the colour word is always the plain name).
 */
export function sampleCaption(c: Combo, rng: Rng, canonicalShare = 0.5): string {
  if (rng.next() < canonicalShare) return canonicalCaption(c);
  const template = rng.pick(TEMPLATES);
  return template(c.color, rng.pick(SHAPE_WORDS[c.shape]), rng.pick(DIRECTION_PHRASES[c.direction]), rng.pick(BACKGROUND_PHRASES[c.background]));
}
