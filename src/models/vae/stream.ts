// The streaming encode / decode of one batch element (and one spatial crop, for tiling): the chunk loop of passes.ts
// on the streaming strategy (src/nn/vae/stream_ops.ts), the conv caches carried from call to call, each call's output
// gathered in host memory. Generators that yield between blocks; returning one early disposes everything it holds.
import * as tf from '@tensorflow/tfjs-core';
import { FrameSeq } from '../../nn/vae/frames.js';
import { disposeCaches, type ConvCaches, type RunContext } from '../../nn/vae/stream_conv.js';
import type { ZqSource } from '../../nn/vae/stream_norm.js';
import { StreamOps, type OnSeq, type StreamAct } from '../../nn/vae/stream_ops.js';
import type { StreamW } from '../../nn/vae/stream_weights.js';
import type { DecodeChunking } from './chunking.js';
import { decodePass, encodePass, type OpsForCall } from './passes.js';
import type { DecoderW, EncoderW } from './weights.js';

/** A video in host memory, [C, T, H, W] row-major (one batch element). */
export interface HostVideo {
  data: Float32Array;
  c: number;
  t: number;
  h: number;
  w: number;
}

/** A crop x[b, :, :, i:i+h, j:j+w] of a batch element. */
export interface Crop {
  b: number;
  i: number;
  j: number;
  h: number;
  w: number;
}

/** Receives block outputs of call `call` as [1, C, t, H, W] (disposed after the callback). */
export type OnOutput = (name: string, call: number, t: tf.Tensor5D) => void;

function hook(fn: OnOutput, call: number): OnSeq {
  return (name, seq) => {
    const t = seq.toNCDHW();
    try {
      fn(name, call, t);
    } finally {
      t.dispose();
    }
  };
}

/** The streaming ops of call k: a fresh StreamOps on the shared conv caches, which the last call does not keep. */
function streamOps(ctx: RunContext, caches: ConvCaches, onOutput?: OnOutput): OpsForCall<FrameSeq, StreamAct, ZqSource, StreamW> {
  return (k, last) => {
    ctx.keepCaches = !last;
    return new StreamOps(ctx, caches, onOutput ? hook(onOutput, k) : undefined);
  };
}

/** Encodes a crop of x in chunks of 8 frames (the first taking the remainder) → moments in host memory. */
export function* encodeCrop(ctx: RunContext, w: EncoderW, x: tf.Tensor5D, c: Crop, onOutput?: OnOutput): Generator<void, HostVideo> {
  const caches: ConvCaches = new Map();
  const out: FrameSeq[] = [];
  const chunk = (start: number, end: number): FrameSeq => {
    const seq = new FrameSeq(ctx.pool, x.shape[1], false);
    try {
      for (let f = start; f < end; f++) seq.push(pixelFrame(x, c, f));
    } catch (e) {
      seq.dispose();
      throw e;
    }
    return seq;
  };
  try {
    yield* encodePass(w, x.shape[2], streamOps(ctx, caches, onOutput), chunk, (y) => out.push(y));
    return seqsToHost(out);
  } finally {
    out.forEach((s) => s.dispose());
    disposeCaches(caches);
  }
}

/** Decodes a crop of z with the calls of one chunking → pixels in host memory. */
export function* decodeCrop(
  ctx: RunContext,
  w: DecoderW,
  z: tf.Tensor5D,
  c: Crop,
  chunking: DecodeChunking,
  onOutput?: OnOutput,
): Generator<void, HostVideo> {
  const caches: ConvCaches = new Map();
  const out: HostVideo[] = [];
  const take = (seq: FrameSeq): void => {
    try {
      out.push(seqsToHost([seq]));
    } finally {
      seq.dispose();
    }
  };
  try {
    const chunk = (start: number, end: number): ZqSource => ({ z: latentChunk(z, c, start, end) });
    yield* decodePass(w, z.shape[2], chunking, streamOps(ctx, caches, onOutput), chunk, (zc) => zc.z.dispose(), take);
    return concatTime(out);
  } finally {
    disposeCaches(caches);
  }
}

/** x[b, :, f, i:i+h, j:j+w] as an NHWC frame [1, h, w, C]. */
function pixelFrame(x: tf.Tensor5D, c: Crop, f: number): tf.Tensor4D {
  const C = x.shape[1];
  return tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(tf.slice(x, [c.b, 0, f, c.i, c.j], [1, C, 1, c.h, c.w]), [C, c.h, c.w]), [1, 2, 0]), [1, c.h, c.w, C]));
}

/** z[b, :, start:end, i:i+h, j:j+w] as channels-last frames [t, h, w, C]. */
function latentChunk(z: tf.Tensor5D, c: Crop, start: number, end: number): tf.Tensor4D {
  const C = z.shape[1];
  const t = end - start;
  return tf.tidy(() => tf.transpose(tf.reshape(tf.slice(z, [c.b, 0, start, c.i, c.j], [1, C, t, c.h, c.w]), [C, t, c.h, c.w]), [1, 2, 3, 0]));
}

/** Frames of sequences (in order) → a host video [C, T, H, W]. Consumes nothing. */
function seqsToHost(seqs: FrameSeq[]): HostVideo {
  const T = seqs.reduce((n, s) => n + s.length, 0);
  const { channels: c, height: h, width: w } = seqs[0]!;
  const data = new Float32Array(c * T * h * w);
  let f = 0;
  for (const s of seqs) {
    for (let k = 0; k < s.length; k++, f++) {
      const r = s.range(k, 1);
      const chw = tf.tidy(() => tf.transpose(tf.reshape(r.t, [h, w, c]), [2, 0, 1]));
      if (r.owned) r.t.dispose();
      const v = chw.dataSync() as Float32Array;
      chw.dispose();
      for (let ch = 0; ch < c; ch++) data.set(v.subarray(ch * h * w, (ch + 1) * h * w), (ch * T + f) * h * w);
    }
  }
  return { data, c, t: T, h, w };
}

function concatTime(parts: HostVideo[]): HostVideo {
  const { c, h, w } = parts[0]!;
  const T = parts.reduce((n, p) => n + p.t, 0);
  const data = new Float32Array(c * T * h * w);
  let f0 = 0;
  for (const p of parts) {
    for (let ch = 0; ch < c; ch++) data.set(p.data.subarray(ch * p.t * h * w, (ch + 1) * p.t * h * w), (ch * T + f0) * h * w);
    f0 += p.t;
  }
  return { data, c, t: T, h, w };
}

/** Batch elements in host memory → one tensor [B, C, T, H, W]. */
export function stackHost(parts: HostVideo[]): tf.Tensor5D {
  const { c, t, h, w } = parts[0]!;
  const data = new Float32Array(parts.length * c * t * h * w);
  parts.forEach((p, b) => data.set(p.data, b * c * t * h * w));
  return tf.tensor5d(data, [parts.length, c, t, h, w]);
}
