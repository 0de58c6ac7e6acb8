// CogVideoXCausalConv3d (CogVideoX-Fun autoencoder_magvit.py:122-145) over one temporal chunk held as a FrameSeq,
// frame by frame: the padded sequence P is the previous call's conv_cache (its last k−1 padded input frames), or, in
// the first call, frame 0 repeated k−1 times, followed by the activated input; output frame t = conv3d(P[t … t+k−1]).
// The k−1 frames of P a step needs are a sliding window; at the end of a chunk the window is the next call's cache.
import * as tf from '@tensorflow/tfjs-core';
import { causalConvStep, type CausalConv3d } from '../../nn/conv.js';
import { Frame, FramePool, FrameSeq, withFrames } from './frames.js';

export interface RunContext {
  pool: FramePool;
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

/** The activation in front of a conv, applied to input frame `index` ([1, H, W, C]) → a new tensor. */
export type Act = (x: tf.Tensor4D, index: number) => tf.Tensor4D;

export interface ConvSeqArgs {
  input: FrameSeq;
  conv: CausalConv3d;
  /** null: the conv reads the input frames as they are */
  act: Act | null;
  cache: Frame[] | undefined;
  out: FrameSeq;
  /** Sees each raw input frame before it is released (e.g. to compute a shortcut). */
  onInput?: (x: tf.Tensor4D, index: number) => void;
  /** Transforms the conv output of frame `index` (e.g. adds the residual); returns a new tensor. */
  epilogue?: (y: tf.Tensor4D, index: number) => tf.Tensor4D;
  /** Release each input frame once it has been read. */
  releaseInput: boolean;
}

/** Runs the conv over the chunk, frame by frame, pushing to `out`. Returns the new cache (the last k−1 frames of P). */
export function convSeq(ctx: RunContext, a: ConvSeqArgs): Frame[] {
  const { input, conv } = a;
  const T = input.length;
  if (T === 0) throw new Error('causal conv over an empty chunk');
  const K = conv.kt - 1;
  if (a.cache && a.cache.length !== K) throw new Error(`conv cache holds ${a.cache.length} frames, expected ${K}`);
  let window: Frame[] = a.cache ? a.cache.map((f) => f.retain()) : [];
  try {
    for (let s = 0; s < T; s++) {
      const x = input.range(s, 1);
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
      if (a.releaseInput) input.release(s);
      try {
        // "first" padding: the first activated frame, k−1 times
        if (window.length === 0 && K > 0) window = Array.from({ length: K }, () => act.retain());
        let y = withFrames([...window, act], (ts) => timed(ctx, 'conv3d', () => causalConvStep(ts, conv)));
        if (a.epilogue) {
          const e = a.epilogue;
          const z = timed(ctx, 'residual', () => e(y, s));
          y.dispose();
          y = z;
        }
        timed(ctx, 'store+moments', () => a.out.push(y));
        window = slideWindow(window, act, K);
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

/** The last K frames of window ++ act; releases what drops out, retains what stays. */
function slideWindow(window: Frame[], act: Frame, K: number): Frame[] {
  if (K === 0) return window;
  const next = [...window.slice(window.length - (K - 1)).map((f) => f.retain()), act.retain()];
  window.forEach((f) => f.release());
  return next;
}

/** Runs a conv with the cache stored under key and stores its new cache (the old one is released once replaced). */
export function threadCache(caches: ConvCaches, key: string, run: (cache: Frame[] | undefined) => Frame[]): void {
  const old = caches.get(key);
  const next = run(old);
  old?.forEach((f) => f.release());
  if (next.length > 0) caches.set(key, next);
  else caches.delete(key);
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
