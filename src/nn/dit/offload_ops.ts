// The DiT block's operations for sizes whose [B, S, D] activations do not fit the backend (1344×1344×49 on Fun-2b:
// S ≈ 92 k tokens, one [2, S, 1920] tensor is 1.4 GB; wasm's heap is 4 GiB). The residual stream, q/k/v and the
// attention output live in host memory; the device sees row chunks for everything token-wise (norms, modulation,
// projections, FF) and one (sequence, head) at a time for attention. The operations per row are those of tf_ops.ts,
// so the numbers are the same up to matMul blocking (tested). The modulated norm, the attention and the feed-forward
// are evaluated lazily, per sequence and row chunk, inside the residual update that consumes them: host memory holds
// the stream [B, S, D] and one sequence's q, k, v and attention output (4 × [S, D]).
import * as tf from '@tensorflow/tfjs-core';
import { attention } from '../attention.js';
import { feedForward, linear, type Linear } from '../linear.js';
import { layerNorm } from '../norm.js';
import { applyRotary } from '../rope.js';
import { modulate } from './tf_ops.js';
import type { AttentionWeights, BlockOps, DitShape, Emit, NormWeights, PerStream, Rotary, ShiftScale } from './types.js';

const MiB = 2 ** 20;

/** Device bytes a row chunk may use (about 16 [rows, D] tensors at its peak: the FF's 4D-wide pair included). */
export const OFFLOAD_CHUNK_BYTES = 128 * MiB;

/** The residual stream in host memory, [B, S, D], text rows first. */
export interface HostStream {
  readonly hid: Float32Array;
}

/**
 * What the block hands between operations: a norm, feed-forward or attention still to evaluate. The residual update
 * evaluates it one sequence and row chunk at a time.
 */
export type OffloadRows =
  | { kind: 'norm'; s: HostStream; norm: NormWeights; eps: number; mod: PerStream<ShiftScale> }
  | { kind: 'ff'; x: OffloadRows; up: Linear; down: Linear }
  | { kind: 'attention'; x: OffloadRows; w: AttentionWeights; rope: Rotary | null; emit: Emit | null; prefix: string };

export interface OffloadOptions {
  shape: DitShape;
  /** rows per chunk (default from OFFLOAD_CHUNK_BYTES) */
  rows?: number;
  attentionScratchBytes: number;
}

interface Chunk {
  r0: number;
  n: number;
  text: boolean;
}

export function offloadOps(o: OffloadOptions): BlockOps<HostStream, OffloadRows> {
  const { B, Lt, N, heads: H, headDim: hd } = o.shape;
  const S = Lt + N;
  const D = H * hd;
  const rows = Math.max(1, o.rows ?? Math.floor(OFFLOAD_CHUNK_BYTES / (16 * 4 * D)));
  // chunks never straddle the text/video boundary: the two streams have their own modulation
  const chunks: Chunk[] = [];
  for (let r = 0; r < Lt; r += rows) chunks.push({ r0: r, n: Math.min(rows, Lt - r), text: true });
  for (let r = Lt; r < S; r += rows) chunks.push({ r0: r, n: Math.min(rows, S - r), text: false });
  const at = (b: number, r: number) => (b * S + r) * D;
  const upload = (buf: Float32Array, b: number, c: Chunk) => tf.tensor2d(buf.subarray(at(b, c.r0), at(b, c.r0 + c.n)), [c.n, D]);
  const store = (t: tf.Tensor, buf: Float32Array, b: number, r0: number) => buf.set(t.dataSync() as Float32Array, at(b, r0));
  const pick = (t: tf.Tensor, b: number) => tf.slice(t, [b, 0, 0], [1, 1, D]);
  const stream = <T>(p: PerStream<T>, c: Chunk) => (c.text ? p.text : p.video);

  /** Rows c of sequence b of a lazy value, as a [n, D] tensor (inside the caller's tidy). */
  const evaluate = (x: OffloadRows, b: number, c: Chunk): tf.Tensor => {
    if (x.kind === 'attention') throw new Error('offloaded attention is evaluated by the residual update that adds it');
    if (x.kind === 'ff') return feedForward(evaluate(x.x, b, c), x.up, x.down);
    const m = stream(x.mod, c);
    return tf.reshape(modulate(upload(x.s.hid, b, c), x.norm, x.eps, { shift: pick(m.shift, b), scale: pick(m.scale, b) }), [c.n, D]);
  };

  // per sequence: q, k, v, each [H, S, hd] (one head contiguous); the heads' outputs merged into rows [S, D]
  const Q = new Float32Array(H * S * hd);
  const K = new Float32Array(H * S * hd);
  const V = new Float32Array(H * S * hd);
  const O = new Float32Array(S * D);
  /** Sequence b of a lazy attention: q/k/v by row chunks, then one head at a time; returns the merged heads O. */
  const attendSequence = (a: Extract<OffloadRows, { kind: 'attention' }>, b: number, dumps: { q: tf.Tensor[]; k: tf.Tensor[] } | null): Float32Array => {
    const { w, rope } = a;
    // A: normed rows → q, k, v (q/k LayerNorm, RoPE on video rows) → host, head-major
    for (const c of chunks) {
      tf.tidy(() => {
        const xc = evaluate(a.x, b, c);
        const toHost = (lin: Linear, norm: NormWeights | null, dest: Float32Array) => {
          let t = tf.transpose(tf.reshape(linear(xc, lin), [c.n, H, hd]), [1, 0, 2]) as tf.Tensor3D; // [H, n, hd]
          if (norm) t = layerNorm(t, norm.w, norm.b, w.qkEps) as tf.Tensor3D;
          if (norm && rope && !c.text) {
            const r = c.r0 - Lt;
            t = applyRotary(t, tf.slice(rope.cos, [r, 0], [c.n, hd]), tf.slice(rope.sin, [r, 0], [c.n, hd]));
          }
          const data = t.dataSync() as Float32Array;
          for (let h = 0; h < H; h++) dest.set(data.subarray(h * c.n * hd, (h + 1) * c.n * hd), (h * S + c.r0) * hd);
        };
        toHost(w.q, w.normQ, Q);
        toHost(w.k, w.normK, K);
        toHost(w.v, null, V);
      });
    }
    if (dumps) {
      dumps.q.push(tf.tensor3d(Q.slice(), [H, S, hd]));
      dumps.k.push(tf.tensor3d(K.slice(), [H, S, hd]));
    }
    // B: attention, one head at a time, into that head's columns of the merged rows
    for (let h = 0; h < H; h++) {
      const out = tf.tidy(() => {
        const head = (src: Float32Array) => tf.tensor4d(src.subarray(h * S * hd, (h + 1) * S * hd), [1, 1, S, hd]);
        return attention(head(Q), head(K), head(V), { scale: 1 / Math.sqrt(hd), scratchBytes: o.attentionScratchBytes });
      });
      const ad = out.dataSync() as Float32Array;
      for (let r = 0; r < S; r++) O.set(ad.subarray(r * hd, (r + 1) * hd), r * D + h * hd);
      out.dispose();
    }
    return O;
  };

  return {
    name: 'offloaded row chunks',
    chunked: true,
    embed(text, video) {
      const hid = new Float32Array(B * S * D);
      for (let b = 0; b < B; b++) {
        tf.tidy(() => store(text(b, 1), hid, b, 0));
        for (const c of chunks) if (!c.text) tf.tidy(() => store(video(b, 1, c.r0 - Lt, c.n), hid, b, c.r0));
      }
      return { hid };
    },
    modulatedNorm(s, norm, eps, mod) {
      return { kind: 'norm', s, norm, eps, mod };
    },
    jointAttention(x, w, rope, emit, prefix) {
      return { kind: 'attention', x, w, rope, emit, prefix };
    },
    feedForward(x, up, down) {
      return { kind: 'ff', x, up, down };
    },
    gatedResidual(s, y, gate) {
      // In place, one sequence at a time: its new rows depend only on its old rows (a lazy attention reads all of
      // them before any is written) and on y's rows of that sequence.
      const dumps = y.kind === 'attention' && y.emit ? { q: [] as tf.Tensor[], k: [] as tf.Tensor[], out: [] as tf.Tensor[] } : null;
      for (let b = 0; b < B; b++) {
        const O = y.kind === 'attention' ? attendSequence(y, b, dumps) : null;
        const rowsOf = (c: Chunk): tf.Tensor =>
          y.kind === 'attention' ? linear(tf.tensor2d(O!.subarray(c.r0 * D, (c.r0 + c.n) * D), [c.n, D]), y.w.out) : evaluate(y, b, c);
        const outRows = dumps ? new Float32Array(S * D) : null;
        for (const c of chunks) {
          tf.tidy(() => {
            const r = rowsOf(c);
            if (outRows) outRows.set(r.dataSync() as Float32Array, c.r0 * D);
            store(tf.add(upload(s.hid, b, c), tf.mul(tf.reshape(pick(stream(gate, c), b), [1, D]), r)), s.hid, b, c.r0);
          });
        }
        if (dumps) dumps.out.push(tf.tensor2d(outRows!, [S, D]));
      }
      if (dumps && y.kind === 'attention') {
        const all = { q: tf.stack(dumps.q), k: tf.stack(dumps.k), out: tf.stack(dumps.out) };
        y.emit!(`${y.prefix}.q`, all.q);
        y.emit!(`${y.prefix}.k`, all.k);
        y.emit!(`${y.prefix}.out`, all.out);
        tf.dispose([all.q, all.k, all.out, ...dumps.q, ...dumps.k, ...dumps.out]);
      }
      return s;
    },
    videoRows(s, f) {
      let P = 0;
      let y: Float32Array | null = null;
      for (let b = 0; b < B; b++) {
        for (const c of chunks) {
          if (c.text) continue;
          tf.tidy(() => {
            const r = f(tf.reshape(upload(s.hid, b, c), [1, c.n, D]) as tf.Tensor3D, b, 1);
            P = r.shape[2];
            y ??= new Float32Array(B * N * P);
            y.set(r.dataSync() as Float32Array, (b * N + c.r0 - Lt) * P);
          });
        }
      }
      return tf.tensor3d(y!, [B, N, P]);
    },
    view(s) {
      return tf.tidy(() => {
        const all = tf.tensor3d(s.hid, [B, S, D]);
        return { text: tf.slice(all, [0, 0, 0], [B, Lt, D]), video: tf.slice(all, [0, Lt, 0], [B, N, D]) };
      });
    },
    sync() {},
    release() {},
  };
}
