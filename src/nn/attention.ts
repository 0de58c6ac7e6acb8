// Scaled dot-product attention without ever materialising the full [B, H, S, S] score tensor: queries are processed
// in blocks whose scratch stays under a byte budget. Each query row's softmax still sees every key, so the numbers
// equal the unblocked computation. On wasm, batched/transposed matMuls take a scalar slow path, so the work is a loop
// of per-head 2-D matMuls; the tensorflow backend gets native batched matMuls, or, when it is built, the fused
// kernel of src/nn/native.ts (no score tensor at all: TensorFlow's unfused form is memory-bound at 10⁴ tokens).
import * as tf from '@tensorflow/tfjs-core';
import { isWasm } from './backend.js';
import type { HostRows } from './linear.js';
import { hostFloats, hostOut, nativeAttention, nativeThreads, type NativeAttention } from './native.js';

export interface AttentionOptions {
  /** Multiplies the scores before the bias is added (T5 uses none; the DiT 1/√d). Default 1. */
  scale?: number;
  /** Added to the scores; broadcastable to [B, H, Sq, Sk] with leading dims of size 1 or B / H. */
  bias?: tf.Tensor4D;
  /** Upper bound for one block's score scratch, in bytes. Default 256 MiB. */
  scratchBytes?: number;
  /** Allow the native fused kernel when it is built (default true). It has no gradient: pass false under a tape. */
  fused?: boolean;
}

/** softmax(scale·q·kᵀ + bias)·v for q [B,H,Sq,d], k/v [B,H,Sk,d] → [B,H,Sq,d]. */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, opts: AttentionOptions = {}): tf.Tensor4D {
  const native = opts.fused !== false && !opts.bias && !isWasm() && k.shape[0] === q.shape[0] && k.shape[1] === q.shape[1] ? nativeAttention() : null;
  if (native) return fusedAttention(native, q, k, v, opts.scale ?? 1);
  if (opts.scale !== undefined && opts.scale !== 1) {
    // Scale the queries once ([S, d]) rather than every score block ([S, S]): one pass less over the big tensor.
    const scaled = tf.mul(q, opts.scale) as tf.Tensor4D;
    try {
      return attention(scaled, k, v, { ...opts, scale: 1 });
    } finally {
      scaled.dispose();
    }
  }
  const [B, H, Sq, d] = q.shape;
  const Sk = k.shape[2];
  const scale = opts.scale ?? 1;
  const budget = opts.scratchBytes ?? 256 * 1024 * 1024;
  const wasm = isWasm();
  // Scratch per query row: scores + probabilities (2 × Sk floats), for every (b, h) at once on tensorflow.
  const perRow = 2 * Sk * 4 * (wasm ? 1 : B * H);
  const block = Math.max(1, Math.min(Sq, Math.floor(budget / perRow)));
  const biasFor = (b: number, h: number, q0: number, n: number): tf.Tensor | null => {
    const bias = opts.bias;
    if (!bias) return null;
    const [bb, bh] = bias.shape;
    return tf.reshape(tf.slice(bias, [bb === 1 ? 0 : b, bh === 1 ? 0 : h, q0, 0], [1, 1, n, Sk]), [n, Sk]);
  };

  if (!wasm) {
    return tf.tidy(() => {
      const outs: tf.Tensor[] = [];
      for (let q0 = 0; q0 < Sq; q0 += block) {
        const n = Math.min(block, Sq - q0);
        // Each block's scores are freed before the next block starts: the scratch bound holds.
        outs.push(
          tf.tidy(() => {
            const qb = n === Sq ? q : tf.slice(q, [0, 0, q0, 0], [B, H, n, d]);
            let s = tf.matMul(qb, k, false, true);
            if (scale !== 1) s = tf.mul(s, scale);
            if (opts.bias) s = tf.add(s, n === Sq ? opts.bias : tf.slice(opts.bias, [0, 0, q0, 0], [-1, -1, n, Sk]));
            return tf.matMul(tf.softmax(s), v);
          }),
        );
      }
      return (outs.length === 1 ? outs[0]! : tf.concat(outs, 2)) as tf.Tensor4D;
    });
  }

  return tf.tidy(() => {
    const qs = tf.unstack(tf.reshape(q, [B * H, Sq, d]));
    const ks = tf.unstack(tf.reshape(k, [B * H, Sk, d]));
    const vs = tf.unstack(tf.reshape(v, [B * H, Sk, d]));
    const heads: tf.Tensor[] = [];
    for (let i = 0; i < B * H; i++) {
      const b = Math.floor(i / H);
      const h = i % H;
      const kT = tf.transpose(ks[i]!);
      const rows: tf.Tensor[] = [];
      for (let q0 = 0; q0 < Sq; q0 += block) {
        const n = Math.min(block, Sq - q0);
        rows.push(
          tf.tidy(() => {
            const qb = n === Sq ? qs[i]! : tf.slice(qs[i]!, [q0, 0], [n, d]);
            let s = tf.matMul(qb, kT);
            if (scale !== 1) s = tf.mul(s, scale);
            const bias = biasFor(b, h, q0, n);
            if (bias) s = tf.add(s, bias);
            return tf.matMul(tf.softmax(s), vs[i]!);
          }),
        );
      }
      heads.push(rows.length === 1 ? rows[0]! : tf.concat(rows, 0));
      kT.dispose();
    }
    return tf.reshape(tf.stack(heads), [B, H, Sq, d]) as tf.Tensor4D;
  });
}

/**
 * The native fused kernel on copies of q, k, v (host memory: 4 × B·H·S·d floats plus kᵀ, no scores). The scale
 * multiplies q once in fp32, as the TensorFlow path does.
 */
function fusedAttention(native: NativeAttention, q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number): tf.Tensor4D {
  const [B, H, Sq, d] = q.shape;
  const Sk = k.shape[2];
  if (k.shape[3] !== d || v.shape[2] !== Sk || v.shape[3] !== d || v.shape[0] !== B || v.shape[1] !== H) {
    throw new Error(`attention: q [${q.shape.join(', ')}], k [${k.shape.join(', ')}], v [${v.shape.join(', ')}] do not match`);
  }
  const out = hostFloats(B * H * Sq * d);
  const f32 = (t: tf.Tensor) => t.dataSync() as Float32Array;
  native.attention(f32(q), f32(k), f32(v), B * H, Sq, Sk, d, scale, out, nativeThreads());
  return tf.tensor4d(out, [B, H, Sq, d]);
}

// ---- host-array attention (tensorflow backend with the native addon) ----

export interface SplitHeadsOptions {
  /** per-head LayerNorm over hd (the DiT's q/k norm) */
  norm?: { w: tf.Tensor1D | null; b: tf.Tensor1D | null; eps: number };
  /** rotary embedding ([S − offset, hd] tables) on rows s ≥ offset (the video tokens after the text) */
  rope?: { cos: tf.Tensor2D; sin: tf.Tensor2D; offset: number };
}

function addon(): NativeAttention {
  const native = nativeAttention();
  if (!native) throw new Error('host-array attention needs the native addon (npm run setup:native)');
  return native;
}

const f32 = (t: tf.Tensor | null | undefined) => (t ? (t.dataSync() as Float32Array) : null);

/** Projection rows [B·S, H·hd] → heads [B, H, S, hd] (host), with the optional q/k LayerNorm and rotary embedding. */
export function splitHeadsHost(x: HostRows, B: number, S: number, H: number, hd: number, opts: SplitHeadsOptions = {}): Float32Array {
  if (x.rows !== B * S || x.cols !== H * hd) throw new Error(`splitHeadsHost: rows [${x.rows}, ${x.cols}] for B=${B} S=${S} H=${H} hd=${hd}`);
  const out = hostFloats(B * S * H * hd);
  const { norm, rope } = opts;
  addon().splitHeads(x.data, B, S, H, hd, !!norm, f32(norm?.w), f32(norm?.b), norm?.eps ?? 0, rope?.offset ?? 0, f32(rope?.cos), f32(rope?.sin), out, nativeThreads());
  return out;
}

/**
 * softmax(scale·q·kᵀ)·v for host q/k/v [BH, S, d] → [BH, S, d], by the fused kernel (no copies out of TensorFlow).
 * `into`: scratch of at least BH·S·d floats to write (none of q, k, v).
 */
export function attentionHost(q: Float32Array, k: Float32Array, v: Float32Array, BH: number, S: number, d: number, scale: number, into?: Float32Array): Float32Array {
  const out = hostOut(into, BH * S * d, 'attentionHost');
  addon().attention(q, k, v, BH, S, S, d, scale, out, nativeThreads());
  return out;
}

/** Heads [B, H, S, hd] (host) → rows [B·S, H·hd] for the output projection; `into`: scratch to write (not o). */
export function mergeHeadsHost(o: Float32Array, B: number, S: number, H: number, hd: number, into?: Float32Array): HostRows {
  const out = hostOut(into, B * S * H * hd, 'mergeHeadsHost');
  addon().mergeHeads(o, B, S, H, hd, out, nativeThreads());
  return { data: out, rows: B * S, cols: H * hd };
}
