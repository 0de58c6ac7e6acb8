// Drawing a world clip: RGB HWC uint8 frames. Each pixel is the mean of a 2×2 grid of samples (light anti-aliasing,
// so edges are not aliased stairs the VAE must learn); the object is a flat colour, the background solid.
import { BACKGROUND_RGB, COLOR_RGB, centerAt, type ClipSpec, type Shape } from './world.js';

/**
 * Square half-side and triangle half-size relative to `radius`. The square's side is the circle's diameter: at 0.85
 * (its area near the circle's) the demo VAE put a square 234 from its circle in latent space against 2167 for a
 * triangle, and the transformer never learnt the square from the circle (scripts/demo/README.md, "Squares and
 * circles are one shape"); at 1.0 the same placements lie 686 apart (scripts/demo/vae-shape-ceiling.ts --distances 1;
 * the README's "Squares as wide as the circle").
 */
const SQUARE_HALF = 1.0;
const TRIANGLE_HALF = 1.1;

/** Whether point (x, y) lies in the shape centred at (cx, cy). The triangle points up, its base at the bottom. */
export function insideShape(shape: Shape, radius: number, cx: number, cy: number, x: number, y: number): boolean {
  const dx = x - cx;
  const dy = y - cy;
  switch (shape) {
    case 'circle':
      return dx * dx + dy * dy <= radius * radius;
    case 'square': {
      const h = radius * SQUARE_HALF;
      return Math.abs(dx) <= h && Math.abs(dy) <= h;
    }
    case 'triangle': {
      const h = radius * TRIANGLE_HALF;
      if (dy < -h || dy > h) return false;
      return Math.abs(dx) <= (dy + h) / 2; // width grows linearly from the apex (0) to the base (2h)
    }
  }
}

const SUB = [0.25, 0.75];

/** Frame t of the clip. */
export function renderFrame(spec: ClipSpec, t: number): Uint8Array {
  const { width, height } = spec;
  const out = new Uint8Array(width * height * 3);
  const bg = BACKGROUND_RGB[spec.background];
  const fg = COLOR_RGB[spec.color];
  const [cx, cy] = centerAt(spec, t);
  const reach = spec.radius * TRIANGLE_HALF + 1;
  const x0 = Math.max(0, Math.floor(cx - reach));
  const x1 = Math.min(width - 1, Math.ceil(cx + reach));
  const y0 = Math.max(0, Math.floor(cy - reach));
  const y1 = Math.min(height - 1, Math.ceil(cy + reach));
  for (let i = 0; i < width * height; i++) {
    out[3 * i] = bg[0];
    out[3 * i + 1] = bg[1];
    out[3 * i + 2] = bg[2];
  }
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      let hits = 0;
      for (const sy of SUB) for (const sx of SUB) if (insideShape(spec.shape, spec.radius, cx, cy, x + sx, y + sy)) hits++;
      if (hits === 0) continue;
      const a = hits / 4;
      const p = 3 * (y * width + x);
      for (let c = 0; c < 3; c++) out[p + c] = Math.round(a * fg[c]! + (1 - a) * bg[c]!);
    }
  }
  return out;
}

/** All frames of the clip. */
export function renderClip(spec: ClipSpec): Uint8Array[] {
  return Array.from({ length: spec.frames }, (_, t) => renderFrame(spec, t));
}
