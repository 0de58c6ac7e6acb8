// The VAE's building blocks (CogVideoX-Fun autoencoder_magvit.py; spec §3.1), run over one temporal chunk held as a
// FrameSeq: causal conv3d with "first"-frame padding and a (k−1)-frame cache carried to the next chunk, GroupNorm /
// SpatialNorm3D with statistics of the whole chunk, ResNet blocks, Downsample3D, Fun's Upsample3D.
//
// Two ways to run a chunk (RunContext.mode), which must give the same numbers:
//   'frame': frame by frame. A conv step sees the previous k−1 activated frames (a sliding window) and one new frame;
//            GroupNorm statistics come from per-frame moments merged in float64. Peak memory is a few frames.
//   'chunk': the whole chunk at once (conv2d batched over the chunk's frames, statistics of the concatenated tensor),
//            as the reference computes it. For tests and small inputs.
import * as tf from '@tensorflow/tfjs-core';
import { silu } from '../../nn/activations.js';
import {
  causalConv3dFromHost,
  causalConvStep,
  conv2d,
  conv2dFromHost,
  disposeCausalConv3d,
  disposeConv2d,
  pointwiseConv,
  type CausalConv3d,
  type Conv2d,
} from '../../nn/conv.js';
import { groupNormScaleShift, type ChannelMoments, type ScaleShift } from '../../nn/group_norm.js';
import { nearestIndices, resizeNearest } from '../../nn/resize.js';
import type { HostTensor } from '../../weights/host_tensor.js';
import {
  isSpatialNorm,
  type ConvNames,
  type NormNames,
  type ResampleNames,
  type ResnetNames,
  type SpatialNormNames,
} from '../../weights/vae_names.js';
import { Frame, FramePool, FrameSeq, withFrames } from './frames.js';

// ---------------------------------------------------------------------------------------------------------------
// weights

export interface NormW {
  groups: number;
  eps: number;
  gamma: Float32Array;
  beta: Float32Array;
}

export interface SpatialNormW {
  norm: NormW;
  convY: CausalConv3d;
  convB: CausalConv3d;
}

export interface ResnetW {
  cin: number;
  cout: number;
  norm1: NormW | SpatialNormW;
  conv1: CausalConv3d;
  norm2: NormW | SpatialNormW;
  conv2: CausalConv3d;
  shortcut: CausalConv3d | null;
}

export interface ResampleW {
  conv: Conv2d;
  compressTime: boolean;
}

export type WeightGetter = (name: string) => HostTensor;

export function loadCausalConv(n: ConvNames, get: WeightGetter): CausalConv3d {
  return causalConv3dFromHost(get(n.weight), get(n.bias));
}

function loadNorm(n: NormNames | SpatialNormNames, get: WeightGetter, groups: number, eps: number): NormW | SpatialNormW {
  if (isSpatialNorm(n)) {
    // CogVideoXSpatialNorm3D builds its GroupNorm with eps=1e-6, whatever norm_eps says
    return { norm: loadNorm(n.norm, get, groups, 1e-6) as NormW, convY: loadCausalConv(n.convY, get), convB: loadCausalConv(n.convB, get) };
  }
  return { groups, eps, gamma: get(n.weight).toFloat32(), beta: get(n.bias).toFloat32() };
}

export function loadGroupNorm(n: NormNames, get: WeightGetter, groups: number, eps: number): NormW {
  return loadNorm(n, get, groups, eps) as NormW;
}

export function loadSpatialNorm(n: SpatialNormNames, get: WeightGetter, groups: number, eps: number): SpatialNormW {
  return loadNorm(n, get, groups, eps) as SpatialNormW;
}

export function loadResnet(n: ResnetNames, get: WeightGetter, groups: number, eps: number): ResnetW {
  return {
    cin: n.cin,
    cout: n.cout,
    norm1: loadNorm(n.norm1, get, groups, eps),
    conv1: loadCausalConv(n.conv1, get),
    norm2: loadNorm(n.norm2, get, groups, eps),
    conv2: loadCausalConv(n.conv2, get),
    shortcut: n.shortcut ? loadCausalConv(n.shortcut, get) : null,
  };
}

export function loadResample(n: ResampleNames, get: WeightGetter): ResampleW {
  return { conv: conv2dFromHost(get(n.conv.weight), get(n.conv.bias)), compressTime: n.compressTime };
}

function isSpatial(n: NormW | SpatialNormW): n is SpatialNormW {
  return 'convY' in n;
}

export function disposeNorm(n: NormW | SpatialNormW): void {
  if (isSpatial(n)) {
    disposeCausalConv3d(n.convY);
    disposeCausalConv3d(n.convB);
  }
}

export function disposeResnet(r: ResnetW): void {
  disposeNorm(r.norm1);
  disposeNorm(r.norm2);
  disposeCausalConv3d(r.conv1);
  disposeCausalConv3d(r.conv2);
  if (r.shortcut) disposeCausalConv3d(r.shortcut);
}

export function disposeResample(r: ResampleW): void {
  disposeConv2d(r.conv);
}

// ---------------------------------------------------------------------------------------------------------------
// running

export interface RunContext {
  pool: FramePool;
  mode: 'frame' | 'chunk';
  /** false on the last call of a pass: its conv caches would never be read, so none are kept */
  keepCaches: boolean;
  /** accumulates wall milliseconds per kind of work, when given */
  profile?: Record<string, number>;
}

/** Runs fn, adding its wall time to ctx.profile[kind] (ops run synchronously on both backends). */
export function timed<T>(ctx: RunContext, kind: string, fn: () => T): T {
  if (!ctx.profile) return fn();
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    ctx.profile[kind] = (ctx.profile[kind] ?? 0) + performance.now() - t0;
  }
}

/** Conv caches of one encode / decode pass, by layer path: the last k−1 padded input frames of the previous chunk. */
export type ConvCaches = Map<string, Frame[]>;

export function disposeCaches(caches: ConvCaches): void {
  for (const frames of caches.values()) frames.forEach((f) => f.release());
  caches.clear();
}

/** Applies fns in order, disposing each intermediate (not x) as soon as the next exists. */
function chain(x: tf.Tensor4D, ...fns: ((t: tf.Tensor4D) => tf.Tensor)[]): tf.Tensor4D {
  let y = x;
  for (const fn of fns) {
    const next = fn(y) as tf.Tensor4D;
    if (y !== x) y.dispose();
    y = next;
  }
  return y;
}

/** An activation of conv inputs: frames [start, start + n) of the input → new tensor. */
export type Act = (x: tf.Tensor4D, start: number) => tf.Tensor4D;

/** silu(GroupNorm(x)) with the chunk's scale/shift. Returns [act, dispose]. */
export function groupNormSilu(ss: ScaleShift): { act: Act; dispose: () => void } {
  const scale = tf.tensor1d(ss.scale);
  const shift = tf.tensor1d(ss.shift);
  const act: Act = (x) =>
    chain(
      x,
      (t) => tf.mul(t, scale),
      (t) => tf.add(t, shift),
      (t) => silu(t),
    );
  return { act, dispose: () => (scale.dispose(), shift.dispose()) };
}

/**
 * The zq maps of one SpatialNorm3D for a feature chunk of t frames at H×W: conv_y / conv_b of the latent chunk z,
 * nearest-resized to (t, H, W) — with the first frame resized separately when t > 1 is odd. The 1×1×1 convs are
 * applied at latent resolution (a pointwise conv commutes with nearest resizing), then each frame's map is
 * upsampled when it is needed (the last one is kept: consecutive frames usually share a latent frame).
 */
export class ZqMaps {
  private readonly lowY: tf.Tensor4D;
  private readonly lowB: tf.Tensor4D;
  private readonly index: number[];
  private last: { i: number; y: tf.Tensor4D; b: tf.Tensor4D } | null = null;

  constructor(
    z: tf.Tensor4D,
    sn: SpatialNormW,
    t: number,
    private readonly H: number,
    private readonly W: number,
  ) {
    const tz = z.shape[0];
    if (t > 1 && t % 2 === 1) {
      if (tz < 2) throw new Error(`SpatialNorm3D: ${t} feature frames (odd) but only ${tz} latent frame(s) to split`);
      this.index = [0, ...Array.from(nearestIndices(tz - 1, t - 1), (i) => i + 1)];
    } else {
      this.index = Array.from(nearestIndices(tz, t));
    }
    this.lowY = pointwiseConv(z, sn.convY);
    this.lowB = pointwiseConv(z, sn.convB);
  }

  private frame(i: number): { y: tf.Tensor4D; b: tf.Tensor4D } {
    const zi = this.index[i]!;
    if (this.last?.i !== zi) {
      this.dropLast();
      const up = (low: tf.Tensor4D) =>
        tf.tidy(() => resizeNearest(tf.slice(low, [zi], [1]), [this.H, this.W]) as tf.Tensor4D);
      this.last = { i: zi, y: up(this.lowY), b: up(this.lowB) };
    }
    return this.last!;
  }

  /** Runs fn with the maps of frames [start, start + n) ([n, H, W, C]; borrowed). */
  with<T>(start: number, n: number, fn: (y: tf.Tensor4D, b: tf.Tensor4D) => T): T {
    if (n === 1) {
      const m = this.frame(start);
      return fn(m.y, m.b);
    }
    const ys: tf.Tensor4D[] = [];
    const bs: tf.Tensor4D[] = [];
    try {
      for (let k = 0; k < n; k++) {
        const m = this.frame(start + k);
        ys.push(tf.clone(m.y));
        bs.push(tf.clone(m.b));
      }
      const y = tf.concat(ys, 0);
      const b = tf.concat(bs, 0);
      try {
        return fn(y, b);
      } finally {
        y.dispose();
        b.dispose();
      }
    } finally {
      ys.forEach((t) => t.dispose());
      bs.forEach((t) => t.dispose());
    }
  }

  private dropLast(): void {
    if (this.last) {
      this.last.y.dispose();
      this.last.b.dispose();
      this.last = null;
    }
  }

  dispose(): void {
    this.dropLast();
    this.lowY.dispose();
    this.lowB.dispose();
  }
}

/** silu(SpatialNorm3D(x, zq)) = silu((x·scale + shift)·y + b). */
export function spatialNormSilu(ss: ScaleShift, maps: ZqMaps): { act: Act; dispose: () => void } {
  const scale = tf.tensor1d(ss.scale);
  const shift = tf.tensor1d(ss.shift);
  const act: Act = (x, start) =>
    maps.with(start, x.shape[0], (y, b) =>
      chain(
        x,
        (t) => tf.mul(t, scale),
        (t) => tf.add(t, shift),
        (t) => tf.mul(t, y),
        (t) => tf.add(t, b),
        (t) => silu(t),
      ),
    );
  return { act, dispose: () => (scale.dispose(), shift.dispose(), maps.dispose()) };
}

/** The latent chunk a decoder call is conditioned on (every SpatialNorm3D reads it). */
export interface ZqSource {
  z: tf.Tensor4D; // [t_z, h, w, zc]
}

/** The activation in front of a conv: silu(norm(x)) for a GroupNorm or a SpatialNorm3D, from x's chunk statistics. */
export function normSilu(n: NormW | SpatialNormW, x: FrameSeq, zq: ZqSource | null): { act: Act; dispose: () => void } {
  const gn = isSpatial(n) ? n.norm : n;
  if (!x.moments) throw new Error('normSilu: the input sequence has no statistics');
  const ss = groupNormScaleShift(x.moments, gn.groups, gn.eps, gn.gamma, gn.beta);
  if (!isSpatial(n)) return groupNormSilu(ss);
  if (!zq) throw new Error('SpatialNorm3D without a latent (zq)');
  return spatialNormSilu(ss, new ZqMaps(zq.z, n, x.length, x.height, x.width));
}

export interface ConvSeqArgs {
  input: FrameSeq;
  conv: CausalConv3d;
  /** null: the conv reads the input frames as they are */
  act: Act | null;
  cache: Frame[] | undefined;
  out: FrameSeq;
  /** Sees the raw input frames [start, start + n) before they are released (e.g. to compute a shortcut). */
  onInput?: (x: tf.Tensor4D, start: number) => void;
  /** Transforms the conv output of frames [start, start + n) (e.g. adds the residual); returns a new tensor. */
  epilogue?: (y: tf.Tensor4D, start: number) => tf.Tensor4D;
  /** Release each input frame once it has been read. */
  releaseInput: boolean;
}

/**
 * A causal conv3d (pad mode "first") over a chunk: P = cache ++ act(x) (without a cache: act(x₀) repeated k−1
 * times in front), output t = Σ_k conv2d(P[t+k], W_k). Returns the new cache, the last k−1 frames of P.
 */
export function convSeq(ctx: RunContext, a: ConvSeqArgs): Frame[] {
  const { input, conv } = a;
  const T = input.length;
  if (T === 0) throw new Error('causal conv over an empty chunk');
  const K = conv.kt - 1;
  const step = ctx.mode === 'frame' ? 1 : T;
  let window: Frame[] = a.cache ? a.cache.map((f) => f.retain()) : [];
  if (a.cache && a.cache.length !== K) throw new Error(`conv cache holds ${a.cache.length} frames, expected ${K}`);
  try {
    for (let s = 0; s < T; s += step) {
      const n = Math.min(step, T - s);
      const x = input.range(s, n);
      let act: Frame;
      try {
        if (a.onInput) timed(ctx, 'shortcut', () => a.onInput!(x.t, s));
        if (a.act) {
          const fn = a.act;
          act = ctx.pool.temp(timed(ctx, 'norm+silu', () => fn(x.t, s)));
        } else {
          act = ctx.pool.temp(x.owned ? x.t : tf.clone(x.t));
          x.owned = false;
        }
      } finally {
        if (x.owned) x.t.dispose();
      }
      if (a.releaseInput) for (let k = 0; k < n; k++) input.release(s + k);
      try {
        if (window.length === 0 && K > 0) {
          // "first" padding: the first activated frame, K times
          const first = n === 1 ? act.retain() : ctx.pool.temp(withFrames([act], ([t]) => tf.slice(t!, [0], [1])));
          window = Array.from({ length: K }, (_, k) => (k === 0 ? first : first.retain()));
        }
        // tap k reads frames [k, k + n) of window ++ act
        let y = withFrames([...window, act], (ts) => {
          const inputs: tf.Tensor4D[] = [];
          const made: tf.Tensor4D[] = [];
          try {
            for (let k = 0; k <= K; k++) {
              if (n === 1) {
                inputs.push(ts[k]!);
                continue;
              }
              const parts: tf.Tensor4D[] = [];
              for (let j = k; j < Math.min(K, k + n); j++) parts.push(ts[j]!);
              const fromAct = k + n - K; // act frames [0, fromAct)
              if (fromAct > 0) {
                const sl = fromAct === n ? ts[K]! : tf.slice(ts[K]!, [0], [fromAct]);
                if (sl !== ts[K]) made.push(sl);
                parts.push(sl);
              }
              const cat = parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
              if (parts.length > 1) made.push(cat);
              inputs.push(cat);
            }
            return timed(ctx, 'conv3d', () => causalConvStep(inputs, conv));
          } finally {
            made.forEach((t) => t.dispose());
          }
        });
        if (a.epilogue) {
          const e = a.epilogue;
          const z = timed(ctx, 'residual', () => e(y, s));
          y.dispose();
          y = z;
        }
        timed(ctx, 'store+moments', () => a.out.push(y));
        // slide: keep the last K frames of window ++ act
        window = slideWindow(ctx, window, act, n, K);
      } finally {
        act.release();
      }
    }
    if (!ctx.keepCaches) return [];
    for (const f of window) f.settle();
    const cache = window;
    window = [];
    return cache;
  } finally {
    window.forEach((f) => f.release());
  }
}

/** The last K single frames of window ++ act (act holds n frames); releases what drops out, retains what stays. */
function slideWindow(ctx: RunContext, window: Frame[], act: Frame, n: number, K: number): Frame[] {
  if (K === 0) return window;
  const next: Frame[] = [];
  const fromWindow = Math.max(0, K - n);
  for (let k = window.length - fromWindow; k < window.length; k++) next.push(window[k]!.retain());
  const fromAct = K - fromWindow;
  if (n === 1 && fromAct === 1) {
    next.push(act.retain());
  } else if (fromAct > 0) {
    const parts = withFrames([act], ([t]) => tf.tidy(() => tf.split(tf.slice(t!, [n - fromAct], [fromAct]), fromAct, 0) as tf.Tensor4D[]));
    for (const p of parts) next.push(ctx.pool.temp(p));
  }
  window.forEach((f) => f.release());
  return next;
}

/**
 * CogVideoXResnetBlock3D: h = conv1(silu(norm1(x))); out = conv2(silu(norm2(h))) + (x or conv_shortcut(x)).
 * Consumes x; threads the conv caches under `key`.
 */
export function resnetSeq(ctx: RunContext, w: ResnetW, x: FrameSeq, caches: ConvCaches, key: string, zq: ZqSource | null): FrameSeq {
  const h = new FrameSeq(ctx.pool, w.cout, true);
  const short = w.shortcut ? new FrameSeq(ctx.pool, w.cout, false) : null;
  const out = new FrameSeq(ctx.pool, w.cout, true);
  try {
    const n1 = normSilu(w.norm1, x, zq);
    try {
      threadCache(caches, `${key}.conv1`, (cache) =>
        convSeq(ctx, {
          input: x,
          conv: w.conv1,
          act: n1.act,
          cache,
          out: h,
          onInput: short ? (xt) => short.push(pointwiseConv(xt, w.shortcut!)) : undefined,
          releaseInput: short !== null,
        }),
      );
    } finally {
      n1.dispose();
    }
    const residual = short ?? x;
    const n2 = normSilu(w.norm2, h, zq);
    try {
      threadCache(caches, `${key}.conv2`, (cache) =>
        convSeq(ctx, {
          input: h,
          conv: w.conv2,
          act: n2.act,
          cache,
          out,
          epilogue: (y, start) => {
            const r = residual.range(start, y.shape[0]);
            try {
              return tf.add(y, r.t) as tf.Tensor4D;
            } finally {
              if (r.owned) r.t.dispose();
              for (let k = 0; k < y.shape[0]; k++) residual.release(start + k);
            }
          },
          releaseInput: true,
        }),
      );
    } finally {
      n2.dispose();
    }
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    x.dispose();
    h.dispose();
    short?.dispose();
  }
}

/** Runs a conv with the cache stored under key and stores its new cache (the old one is released once replaced). */
export function threadCache(caches: ConvCaches, key: string, run: (cache: Frame[] | undefined) => Frame[]): void {
  const old = caches.get(key);
  const next = run(old);
  old?.forEach((f) => f.release());
  if (next.length > 0) caches.set(key, next);
  else caches.delete(key);
}

/**
 * CogVideoXDownsample3D: with compress_time, frames are averaged in pairs over time (an odd count keeps frame 0 as
 * it is); then each frame is zero-padded by 1 at the bottom and right and convolved 3×3 with stride 2. Consumes x.
 */
export function downsampleSeq(ctx: RunContext, w: ResampleW, x: FrameSeq): FrameSeq {
  const T = x.length;
  const groups: number[][] = [];
  if (!w.compressTime) {
    for (let i = 0; i < T; i++) groups.push([i]);
  } else {
    let i = 0;
    if (T % 2 === 1) groups.push([i++]);
    for (; i + 1 < T; i += 2) groups.push([i, i + 1]);
  }
  const out = new FrameSeq(ctx.pool, x.channels, true);
  const averaged = (g: number[]): tf.Tensor4D =>
    g.length === 1
      ? withFrames([x.at(g[0]!)], ([t]) => tf.clone(t!))
      : withFrames([x.at(g[0]!), x.at(g[1]!)], ([a, b]) => tf.tidy(() => tf.div(tf.add(a!, b!), 2) as tf.Tensor4D));
  const down = (t: tf.Tensor4D) => conv2d(t, w.conv, { stride: 2, pad: [[0, 1], [0, 1]] });
  try {
    if (ctx.mode === 'frame') {
      for (const g of groups) {
        const a = averaged(g);
        const y = down(a);
        a.dispose();
        g.forEach((i) => x.release(i));
        out.push(y);
      }
    } else {
      const all = groups.map(averaged);
      const cat = tf.concat(all, 0);
      all.forEach((t) => t.dispose());
      const y = down(cat);
      cat.dispose();
      out.push(y);
    }
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    x.dispose();
  }
}

/**
 * How an Upsample3D with compress_time repeats frames over time:
 *   'fun-first' — Fun's first call (first_frame_flag): the single frame is upsampled in 2-D only;
 *   'fun'       — Fun's later calls: 3-D nearest ×2, every frame twice;
 *   'diffusers' — diffusers: t > 1 odd → frame 0 once, the rest twice; t = 1 → once; t even → every frame twice.
 */
export type UpsampleMode = 'fun-first' | 'fun' | 'diffusers';

export function upsampleRepeats(t: number, compressTime: boolean, mode: UpsampleMode): number[] {
  if (!compressTime) return new Array<number>(t).fill(1);
  switch (mode) {
    case 'fun-first':
      if (t !== 1) throw new Error(`Upsample3D first-frame pass over ${t} frames (the reference squeezes a single frame)`);
      return [1];
    case 'fun':
      return new Array<number>(t).fill(2);
    case 'diffusers':
      if (t === 1) return [1];
      if (t % 2 === 1) return [1, ...new Array<number>(t - 1).fill(2)];
      return new Array<number>(t).fill(2);
  }
}

/** Fun's CogVideoXUpsample3D: nearest ×2 in H, W (and in time per `mode`), then a 3×3 conv per frame. Consumes x. */
export function upsampleSeq(ctx: RunContext, w: ResampleW, x: FrameSeq, mode: UpsampleMode): FrameSeq {
  const T = x.length;
  const reps = upsampleRepeats(T, w.compressTime, mode);
  const out = new FrameSeq(ctx.pool, x.channels, true);
  const up = (t: tf.Tensor4D) =>
    tf.tidy(() => conv2d(tf.image.resizeNearestNeighbor(t, [2 * t.shape[1], 2 * t.shape[2]]), w.conv));
  try {
    if (ctx.mode === 'frame') {
      for (let i = 0; i < T; i++) {
        const y = withFrames([x.at(i)], ([t]) => up(t!));
        x.release(i);
        // the conv of a repeated frame is the conv of the frame: compute once, store twice
        const m = out.push(y);
        if (reps[i] === 2) out.pushRepeat(lastFrame(out), m);
      }
    } else {
      const r = x.range(0, T);
      const y = up(r.t);
      if (r.owned) r.t.dispose();
      const idx = reps.flatMap((n, i) => new Array<number>(n).fill(i));
      const rep = tf.tidy(() => tf.gather(y, tf.tensor1d(idx, 'int32'), 0) as tf.Tensor4D);
      y.dispose();
      out.push(rep);
    }
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    x.dispose();
  }
}

function lastFrame(s: FrameSeq): Frame {
  return s.at(s.length - 1);
}

/** A causal conv with its cache threaded under key; consumes x. act null = raw input. */
export function causalConvLayer(
  ctx: RunContext,
  conv: CausalConv3d,
  x: FrameSeq,
  act: Act | null,
  caches: ConvCaches,
  key: string,
  withMoments: boolean,
): FrameSeq {
  const out = new FrameSeq(ctx.pool, conv.cout, withMoments);
  try {
    threadCache(caches, key, (cache) => convSeq(ctx, { input: x, conv, act, cache, out, releaseInput: true }));
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    x.dispose();
  }
}

export type { ChannelMoments };
