// Position and timestep tables, computed on the host with the reference's precision at each step
// (JS numbers are float64: Math.fround marks where torch/numpy round to float32).
const f = Math.fround;

/**
 * diffusers `get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=shift)`: fp32 throughout,
 * cos half first. Returns [B, dim] row-major.
 */
export function timestepEmbedding(timesteps: ArrayLike<number>, dim: number, shift = 0): Float32Array {
  const half = Math.floor(dim / 2);
  const lnMax = f(-Math.log(10000));
  const freqs = new Float32Array(half);
  for (let k = 0; k < half; k++) freqs[k] = f(Math.exp(f(f(lnMax * k) / (half - shift))));
  const out = new Float32Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    const t = f(timesteps[b]!);
    for (let k = 0; k < half; k++) {
      const a = f(t * freqs[k]!);
      out[b * dim + k] = Math.cos(a);
      out[b * dim + half + k] = Math.sin(a);
    }
  }
  return out;
}

/** sincos 1-D embedding of positions (float64 ω, sin half first), as diffusers/numpy compute it, rounded to fp32. */
function sincos1d(dim: number, pos: number, out: Float32Array, offset: number): void {
  const half = dim / 2;
  for (let k = 0; k < half; k++) {
    const omega = 1 / 10000 ** (k / half);
    const a = pos * omega;
    out[offset + k] = Math.sin(a);
    out[offset + half + k] = Math.cos(a);
  }
}

/**
 * diffusers `get_3d_sincos_pos_embed(D, (W, H), T, spatialScale, temporalScale)` → [T·H·W, D] rows (t, y, x):
 * [temporal D/4 | spatial 3D/4], the spatial half = [E(x) | E(y)] (x first: meshgrid puts w in grid[0]).
 */
export function sincos3dTable(D: number, W: number, H: number, T: number, spatialScale: number, temporalScale: number): Float32Array {
  if (D % 16 !== 0) throw new Error(`sincos position embedding needs a dimension divisible by 16, got ${D}`);
  const dT = D / 4;
  const dS = (3 * D) / 4;
  const out = new Float32Array(T * H * W * D);
  const rowX = new Float32Array(dS / 2);
  const rowY = new Float32Array(dS / 2);
  const rowT = new Float32Array(dT);
  for (let t = 0; t < T; t++) {
    sincos1d(dT, f(t / temporalScale), rowT, 0);
    for (let y = 0; y < H; y++) {
      sincos1d(dS / 2, f(y / spatialScale), rowY, 0);
      for (let x = 0; x < W; x++) {
        sincos1d(dS / 2, f(x / spatialScale), rowX, 0);
        const o = ((t * H + y) * W + x) * D;
        out.set(rowT, o);
        out.set(rowX, o + dT);
        out.set(rowY, o + dT + dS / 2);
      }
    }
  }
  return out;
}

/** PyTorch linear-interpolation source index (align_corners=False, no scale factor given). */
function sourceIndex(dst: number, inSize: number, outSize: number): { i0: number; i1: number; l1: number } {
  const scale = f(inSize / outSize);
  let s = f(f(scale * (dst + 0.5)) - 0.5);
  if (s < 0) s = 0;
  const i0 = Math.floor(s);
  const i1 = i0 + (i0 < inSize - 1 ? 1 : 0);
  return { i0, i1, l1: f(s - i0) };
}

/**
 * Fun's "Resize 3D embedding": F.interpolate(table [1, D, T, H0, W0] → (T, H, W), trilinear, align_corners=False).
 * The time axis keeps its size, so this is a bilinear resize of every frame. Rows in/out are (t, y, x).
 */
export function interpolatePositionTable(table: Float32Array, D: number, T: number, H0: number, W0: number, H: number, W: number): Float32Array {
  const out = new Float32Array(T * H * W * D);
  const xs = Array.from({ length: W }, (_, x) => sourceIndex(x, W0, W));
  for (let t = 0; t < T; t++) {
    for (let y = 0; y < H; y++) {
      const sy = sourceIndex(y, H0, H);
      const ly0 = f(1 - sy.l1);
      for (let x = 0; x < W; x++) {
        const sx = xs[x]!;
        const lx0 = f(1 - sx.l1);
        const r00 = ((t * H0 + sy.i0) * W0 + sx.i0) * D;
        const r01 = ((t * H0 + sy.i0) * W0 + sx.i1) * D;
        const r10 = ((t * H0 + sy.i1) * W0 + sx.i0) * D;
        const r11 = ((t * H0 + sy.i1) * W0 + sx.i1) * D;
        const o = ((t * H + y) * W + x) * D;
        for (let d = 0; d < D; d++) {
          out[o + d] = ly0 * (lx0 * table[r00 + d]! + sx.l1 * table[r01 + d]!) + sy.l1 * (lx0 * table[r10 + d]! + sx.l1 * table[r11 + d]!);
        }
      }
    }
  }
  return out;
}

/** Python's round(): half to even. */
export function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `get_resize_crop_region_for_grid((h, w), tw, th)` → [[top, left], [bottom, right]]. */
export function resizeCropRegion(h: number, w: number, tw: number, th: number): [[number, number], [number, number]] {
  let rh: number;
  let rw: number;
  if (h / w > th / tw) {
    rh = th;
    rw = Math.trunc(pyRound((th / h) * w));
  } else {
    rw = tw;
    rh = Math.trunc(pyRound((tw / w) * h));
  }
  const top = Math.trunc(pyRound((th - rh) / 2));
  const left = Math.trunc(pyRound((tw - rw) / 2));
  return [[top, left], [top + rh, left + rw]];
}

/** numpy `linspace(start, stop, n, endpoint=False)` in float64, then cast to float32. */
function linspace(start: number, stop: number, n: number): Float32Array {
  const step = (stop - start) / n;
  return Float32Array.from({ length: n }, (_, k) => (step === 0 ? ((k / n) * (stop - start)) : k * step) + start);
}

/**
 * `torch.linspace(start, end, steps, dtype=float32)` on CPU: float32 step = (end − start)/(steps − 1); the first half
 * counts up from start, the second half down from end, each element rounded once (the kernel's multiply-add is fused:
 * matched bit for bit against torch 2.13 on every grid in the fixtures).
 */
export function torchLinspace(start: number, end: number, steps: number): Float32Array {
  const s = f(start);
  const e = f(end);
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  // step·idx is exact in float64 (24-bit × small integer), so one fround = one rounding, as with FMA.
  for (let i = 0; i < steps; i++) out[i] = i < half ? s + step * i : e - step * (steps - i - 1);
  return out;
}

/** cos/sin of one axis: freqs 1/θ^(2k/d) in fp32, angle = pos·freq (fp32), each repeated twice (pairs share ω). */
function rotaryAxis(dim: number, pos: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const half = dim / 2;
  const freqs = Float32Array.from({ length: half }, (_, k) => f(1 / f(10000 ** f((2 * k) / dim))));
  const cos = new Float32Array(pos.length * dim);
  const sin = new Float32Array(pos.length * dim);
  for (let p = 0; p < pos.length; p++) {
    for (let k = 0; k < half; k++) {
      const a = f(pos[p]! * freqs[k]!);
      cos[p * dim + 2 * k] = cos[p * dim + 2 * k + 1] = Math.cos(a);
      sin[p * dim + 2 * k] = sin[p * dim + 2 * k + 1] = Math.sin(a);
    }
  }
  return { cos, sin };
}

export interface RotaryTables {
  /** [N, headDim] rows (t, y, x) */
  cos: Float32Array;
  sin: Float32Array;
  rows: number;
  headDim: number;
}

export type RotaryGrid =
  /** CogVideoX-Fun: numpy linspace(start, stop, n, endpoint=False) in float64 → float32 */
  | { type: 'linspace'; crop: [[number, number], [number, number]] }
  /** diffusers v0.32.2: torch.linspace(start, stop·(n−1)/n, n) in float32 (differs from Fun when start ≠ 0) */
  | { type: 'torch-linspace'; crop: [[number, number], [number, number]] }
  | { type: 'slice'; maxH: number; maxW: number };

/**
 * `get_3d_rotary_pos_embed(headDim, crops, (gh, gw), T, grid_type)` as CogVideoX-Fun / diffusers v0.32.2 define it:
 * head dims [0, d/4) time, [d/4, d/4 + 3d/8) y, the rest x.
 */
export function rotaryTables(headDim: number, gh: number, gw: number, T: number, grid: RotaryGrid): RotaryTables {
  let posH: Float32Array;
  let posW: Float32Array;
  let posT: Float32Array;
  if (grid.type === 'linspace') {
    const [[top, left], [bottom, right]] = grid.crop;
    posH = linspace(top, bottom, gh);
    posW = linspace(left, right, gw);
    posT = linspace(0, T, T);
  } else if (grid.type === 'torch-linspace') {
    const [[top, left], [bottom, right]] = grid.crop;
    posH = torchLinspace(top, (bottom * (gh - 1)) / gh, gh);
    posW = torchLinspace(left, (right * (gw - 1)) / gw, gw);
    posT = torchLinspace(0, (T * (T - 1)) / T, T);
  } else {
    if (gh > grid.maxH || gw > grid.maxW) throw new Error(`RoPE grid ${gh}×${gw} exceeds the model's ${grid.maxH}×${grid.maxW} table`);
    posH = Float32Array.from({ length: gh }, (_, i) => i);
    posW = Float32Array.from({ length: gw }, (_, i) => i);
    posT = Float32Array.from({ length: T }, (_, i) => i);
  }
  const dT = headDim / 4;
  const dH = (headDim / 8) * 3;
  const dW = dH;
  const t = rotaryAxis(dT, posT);
  const h = rotaryAxis(dH, posH);
  const w = rotaryAxis(dW, posW);
  const rows = T * gh * gw;
  const D = dT + dH + dW;
  const cos = new Float32Array(rows * D);
  const sin = new Float32Array(rows * D);
  for (let ti = 0; ti < T; ti++) {
    for (let y = 0; y < gh; y++) {
      for (let x = 0; x < gw; x++) {
        const o = ((ti * gh + y) * gw + x) * D;
        cos.set(t.cos.subarray(ti * dT, (ti + 1) * dT), o);
        cos.set(h.cos.subarray(y * dH, (y + 1) * dH), o + dT);
        cos.set(w.cos.subarray(x * dW, (x + 1) * dW), o + dT + dH);
        sin.set(t.sin.subarray(ti * dT, (ti + 1) * dT), o);
        sin.set(h.sin.subarray(y * dH, (y + 1) * dH), o + dT);
        sin.set(w.sin.subarray(x * dW, (x + 1) * dW), o + dT + dH);
      }
    }
  }
  return { cos, sin, rows, headDim: D };
}
