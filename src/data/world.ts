// The demo world: one coloured shape per clip on a solid background, moving in a straight line at a steady speed,
// either staying in frame or entering it from the side opposite its direction. Everything follows from a seed: the
// same (seed, index) always gives the same clip, on every machine (integer PRNG, no Math.random).

export const COLORS = ['red', 'green', 'blue', 'yellow', 'cyan', 'magenta'] as const;
export const SHAPES = ['circle', 'square', 'triangle'] as const;
export const DIRECTIONS = ['left', 'right', 'up', 'down'] as const;
export const BACKGROUNDS = ['black', 'white', 'gray'] as const;

export type Color = (typeof COLORS)[number];
export type Shape = (typeof SHAPES)[number];
export type Direction = (typeof DIRECTIONS)[number];
export type Background = (typeof BACKGROUNDS)[number];
export type Rgb = readonly [number, number, number];

/** Saturated primaries/secondaries: every pair differs by 255 in some channel, and every colour differs from every
 * background by ≥ 127 in some channel, so the object is found by a plain threshold. */
export const COLOR_RGB: Record<Color, Rgb> = {
  red: [255, 0, 0],
  green: [0, 255, 0],
  blue: [0, 0, 255],
  yellow: [255, 255, 0],
  cyan: [0, 255, 255],
  magenta: [255, 0, 255],
};
export const BACKGROUND_RGB: Record<Background, Rgb> = { black: [0, 0, 0], white: [255, 255, 255], gray: [128, 128, 128] };

export interface Combo {
  color: Color;
  shape: Shape;
  direction: Direction;
  background: Background;
}

/**
 * Combinations never generated for training (`sampleClip` redraws them), to test that a model composes what it
 * learned. Every colour, shape, direction and background occurs here and also, in other combinations, in training;
 * 12 of the 216 combinations (5.6 %).
 */
export const HELD_OUT: readonly Combo[] = [
  { color: 'red', shape: 'triangle', direction: 'up', background: 'white' },
  { color: 'green', shape: 'circle', direction: 'left', background: 'gray' },
  { color: 'blue', shape: 'square', direction: 'down', background: 'black' },
  { color: 'yellow', shape: 'triangle', direction: 'right', background: 'black' },
  { color: 'cyan', shape: 'square', direction: 'left', background: 'white' },
  { color: 'magenta', shape: 'circle', direction: 'up', background: 'gray' },
  { color: 'red', shape: 'square', direction: 'right', background: 'gray' },
  { color: 'green', shape: 'triangle', direction: 'down', background: 'white' },
  { color: 'blue', shape: 'circle', direction: 'right', background: 'white' },
  { color: 'yellow', shape: 'square', direction: 'up', background: 'gray' },
  { color: 'cyan', shape: 'circle', direction: 'down', background: 'black' },
  { color: 'magenta', shape: 'triangle', direction: 'left', background: 'black' },
];

export function comboKey(c: Combo): string {
  return `${c.color}/${c.shape}/${c.direction}/${c.background}`;
}

const HELD_OUT_KEYS = new Set(HELD_OUT.map(comboKey));

export function isHeldOut(c: Combo): boolean {
  return HELD_OUT_KEYS.has(comboKey(c));
}

/** Every combination, in a fixed order. */
export function allCombos(): Combo[] {
  const out: Combo[] = [];
  for (const color of COLORS)
    for (const shape of SHAPES)
      for (const direction of DIRECTIONS) for (const background of BACKGROUNDS) out.push({ color, shape, direction, background });
  return out;
}

export interface ClipSpec extends Combo {
  width: number;
  height: number;
  frames: number;
  /** Half the object's extent in pixels (circle radius; square half-side; triangle half-base = half-height). */
  radius: number;
  /** Centre in pixels at frame 0 (may be outside the frame when entering). */
  x0: number;
  y0: number;
  /** Pixels per frame along the direction. */
  speed: number;
  /** True when the object starts partly outside the frame and moves in. */
  entering: boolean;
}

export const DIRECTION_VECTOR: Record<Direction, readonly [number, number]> = {
  left: [-1, 0],
  right: [1, 0],
  up: [0, -1],
  down: [0, 1],
};

/** splitmix32-style integer PRNG: the same stream on every platform. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** The PRNG of clip `index` of the world with seed `seed` (independent streams, so clips can be made in any order). */
export function clipRng(seed: number, index: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x27d4eb2f) ^ Math.imul(index + 1, 0x165667b1)) >>> 0);
}

export interface WorldSize {
  width: number;
  height: number;
  frames: number;
}

export const DEFAULT_SIZE: WorldSize = { width: 96, height: 64, frames: 25 };

/**
 * Geometry of a clip for a given combination: size 12–19 % of the short side, speed such that the object travels
 * 30–60 % of the frame along its direction over the clip, and (one clip in three) entering from outside.
 */
export function placeClip(combo: Combo, rng: Rng, size: WorldSize = DEFAULT_SIZE): ClipSpec {
  const { width, height, frames } = size;
  const short = Math.min(width, height);
  const radius = Math.round(short * rng.uniform(0.12, 0.19) * 2) / 2;
  const [dx, dy] = DIRECTION_VECTOR[combo.direction];
  const along = dx !== 0 ? width : height;
  const across = dx !== 0 ? height : width;
  const entering = rng.next() < 1 / 3;
  const travel = along * rng.uniform(0.3, 0.6);
  const steps = Math.max(frames - 1, 1);
  const speed = travel / steps;
  // Position along the motion axis, measured from the edge the object comes from.
  let start: number;
  if (entering) {
    start = rng.uniform(-0.5 * radius, 0.5 * radius); // centre at the edge: half in view
  } else {
    const lo = radius + 1;
    const hi = Math.max(lo, along - radius - 1 - travel);
    start = rng.uniform(lo, hi);
  }
  const cross = rng.uniform(radius + 1, across - radius - 1);
  const sign = dx + dy; // +1 right/down, -1 left/up
  const a0 = sign > 0 ? start : along - start;
  const x0 = dx !== 0 ? a0 : cross;
  const y0 = dx !== 0 ? cross : a0;
  return { ...combo, width, height, frames, radius, x0, y0, speed, entering };
}

/** Clip `index` of the training world: a uniformly drawn combination that is not held out, then placed. */
export function sampleClip(seed: number, index: number, size: WorldSize = DEFAULT_SIZE): ClipSpec {
  const rng = clipRng(seed, index);
  for (;;) {
    const combo: Combo = {
      color: rng.pick(COLORS),
      shape: rng.pick(SHAPES),
      direction: rng.pick(DIRECTIONS),
      background: rng.pick(BACKGROUNDS),
    };
    if (!isHeldOut(combo)) return placeClip(combo, rng, size);
  }
}

/** The object's centre at frame t. */
export function centerAt(spec: ClipSpec, t: number): [number, number] {
  const [dx, dy] = DIRECTION_VECTOR[spec.direction];
  return [spec.x0 + dx * spec.speed * t, spec.y0 + dy * spec.speed * t];
}
