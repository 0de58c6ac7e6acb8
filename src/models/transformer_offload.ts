// The transformer forward for sizes whose [B, S, D] activations do not fit the 4 GiB wasm heap (1344×1344×49 on
// Fun-2b: S ≈ 92 k tokens, one [2, S, 1920] tensor is 1.4 GB). The residual stream, q/k/v and the attention output
// live in host memory; the device sees row chunks for everything token-wise (norms, modulation, projections, FF)
// and one (sequence, head) at a time for attention. The operations per row are those of the in-heap forward, so
// the numbers are the same up to matMul blocking (tested).
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { attention } from '../nn/attention.js';
import { silu } from '../nn/activations.js';
import { feedForward, linear, outFeatures, type Linear } from '../nn/linear.js';
import { layerNorm } from '../nn/norm.js';
import { applyRotary } from '../nn/rope.js';
import type { Block, Norm } from './transformer.js';

const MiB = 2 ** 20;

/** Device bytes a row chunk may use (about 16 [rows, D] tensors at its peak: the FF's 4D-wide pair included). */
export const OFFLOAD_CHUNK_BYTES = 128 * MiB;

export interface OffloadForward {
  B: number;
  /** text tokens, video tokens */
  Lt: number;
  N: number;
  heads: number;
  headDim: number;
  normEps: number;
  layers: number;
  /** [Lt, D] projected text of sequence b */
  text(b: number): tf.Tensor2D;
  /** [N, C·pt·p·p] patchified latents of sequence b (small: latent channels, not D) */
  patches(b: number): tf.Tensor2D;
  patch: Linear;
  /** [(Lt + N)·D] position table added to every sequence (text rows included), or null */
  pe: Float32Array | null;
  rope: { cos: tf.Tensor2D; sin: tf.Tensor2D } | null;
  /** [B, time_embed_dim] */
  emb: tf.Tensor2D;
  loadBlock(i: number): Block;
  releaseBlock(b: Block): void;
  final: { normFinal: Norm; normOut: Linear; normOutNorm: Norm; projOut: Linear };
  /** rows per chunk (default from OFFLOAD_CHUNK_BYTES) */
  rows?: number;
  attentionScratchBytes: number;
  emit?: (name: string, t: tf.Tensor) => void;
  onProfile?: (p: { block: number; loadMs: number; computeMs: number }) => void;
}

/** Runs embedding, every block and the output head with host-resident activations; returns proj_out [B, N, P]. */
export function forwardOffloaded(f: OffloadForward): { y: Float32Array; P: number } {
  const { B, Lt, N, heads: H, headDim: hd } = f;
  const S = Lt + N;
  const D = H * hd;
  const rows = Math.max(1, f.rows ?? Math.floor(OFFLOAD_CHUNK_BYTES / (16 * 4 * D)));
  // chunks never straddle the text/video boundary: the two streams have their own modulation
  const chunks: { r0: number; n: number; text: boolean }[] = [];
  for (let r = 0; r < Lt; r += rows) chunks.push({ r0: r, n: Math.min(rows, Lt - r), text: true });
  for (let r = Lt; r < S; r += rows) chunks.push({ r0: r, n: Math.min(rows, S - r), text: false });

  const hid = new Float32Array(B * S * D); // the residual stream, [B, S, D], text rows first
  const at = (b: number, r: number) => (b * S + r) * D;
  const upload = (b: number, r0: number, n: number) => tf.tensor2d(hid.subarray(at(b, r0), at(b, r0 + n)), [n, D]);
  const store = (t: tf.Tensor, b: number, r0: number) => hid.set(t.dataSync() as Float32Array, at(b, r0));

  // -- embedding: text_proj(text) | patch(latents), + position table
  const pe = f.pe;
  for (let b = 0; b < B; b++) {
    tf.tidy(() => {
      let t: tf.Tensor = f.text(b);
      if (pe) t = tf.add(t, tf.tensor2d(pe.subarray(0, Lt * D), [Lt, D]));
      store(t, b, 0);
      const p = f.patches(b);
      for (const c of chunks) {
        if (c.text) continue;
        tf.tidy(() => {
          let x = linear(tf.slice(p, [c.r0 - Lt, 0], [c.n, p.shape[1]]), f.patch);
          if (pe) x = tf.add(x, tf.tensor2d(pe.subarray(c.r0 * D, (c.r0 + c.n) * D), [c.n, D]));
          store(x, b, c.r0);
        });
      }
    });
  }
  const emitState = (name: string) => {
    if (!f.emit) return;
    const all = tf.tensor3d(hid, [B, S, D]);
    if (name === 'patch_embed.output') f.emit(name, all);
    else {
      const e = tf.slice(all, [0, 0, 0], [B, Lt, D]);
      const h = tf.slice(all, [0, Lt, 0], [B, N, D]);
      f.emit(`${name}.hidden`, h);
      f.emit(`${name}.encoder`, e);
      tf.dispose([e, h]);
    }
    all.dispose();
  };
  emitState('patch_embed.output');

  // per sequence: q, k, v, attention output, each [H, S, hd] (one head contiguous)
  const Q = new Float32Array(H * S * hd);
  const K = new Float32Array(H * S * hd);
  const V = new Float32Array(H * S * hd);
  const O = new Float32Array(H * S * hd);
  const modulate = (x: tf.Tensor, norm: Norm, shift: tf.Tensor, scale: tf.Tensor) =>
    tf.add(tf.mul(layerNorm(x, norm.w, norm.b, f.normEps), tf.add(scale, 1)), shift);
  // [6, D] rows of sequence b's modulation: shift, scale, gate, e_shift, e_scale, e_gate
  const modulation = (lin: Linear, b: number) =>
    tf.tidy(() => tf.split(tf.reshape(tf.slice(linear(silu(f.emb), lin), [b, 0], [1, 6 * D]), [6, D]), 6, 0)) as tf.Tensor2D[];

  for (let i = 0; i < f.layers; i++) {
    const t0 = performance.now();
    const w = f.loadBlock(i);
    const t1 = performance.now();
    try {
      for (let b = 0; b < B; b++) {
        const m1 = modulation(w.norm1, b);
        const m2 = modulation(w.norm2, b);
        try {
          // A: normed rows → q, k, v (QK-LayerNorm, RoPE on video rows) → host, head-major
          for (const c of chunks) {
            tf.tidy(() => {
              const x = modulate(upload(b, c.r0, c.n), w.norm1Norm, c.text ? m1[3]! : m1[0]!, c.text ? m1[4]! : m1[1]!);
              const toHost = (lin: Linear, norm: Norm | null, dest: Float32Array) => {
                let t = tf.transpose(tf.reshape(linear(x, lin), [c.n, H, hd]), [1, 0, 2]) as tf.Tensor3D; // [H, n, hd]
                if (norm) t = layerNorm(t, norm.w, norm.b, 1e-6) as tf.Tensor3D;
                if (norm && f.rope && !c.text) {
                  const r = c.r0 - Lt;
                  t = applyRotary(t, tf.slice(f.rope.cos, [r, 0], [c.n, hd]), tf.slice(f.rope.sin, [r, 0], [c.n, hd]));
                }
                const data = t.dataSync() as Float32Array;
                for (let h = 0; h < H; h++) dest.set(data.subarray(h * c.n * hd, (h + 1) * c.n * hd), (h * S + c.r0) * hd);
              };
              toHost(w.q, w.normQ, Q);
              toHost(w.k, w.normK, K);
              toHost(w.v, null, V);
            });
          }
          // B: attention, one head at a time
          for (let h = 0; h < H; h++) {
            const a = tf.tidy(() => {
              const head = (src: Float32Array) => tf.tensor4d(src.subarray(h * S * hd, (h + 1) * S * hd), [1, 1, S, hd]);
              return attention(head(Q), head(K), head(V), { scale: 1 / Math.sqrt(hd), scratchBytes: f.attentionScratchBytes });
            });
            O.set(a.dataSync() as Float32Array, h * S * hd);
            a.dispose();
          }
          // C: output projection, gated residual, AdaLN → FF → gated residual; written back in place
          for (const c of chunks) {
            const o = new Float32Array(c.n * D);
            for (let r = 0; r < c.n; r++) {
              for (let h = 0; h < H; h++) o.set(O.subarray((h * S + c.r0 + r) * hd, (h * S + c.r0 + r + 1) * hd), r * D + h * hd);
            }
            tf.tidy(() => {
              const x1 = tf.add(upload(b, c.r0, c.n), tf.mul(c.text ? m1[5]! : m1[2]!, linear(tf.tensor2d(o, [c.n, D]), w.out)));
              const n2 = modulate(x1, w.norm2Norm, c.text ? m2[3]! : m2[0]!, c.text ? m2[4]! : m2[1]!);
              const ff = feedForward(n2, w.ff1, w.ff2);
              store(tf.add(x1, tf.mul(c.text ? m2[5]! : m2[2]!, ff)), b, c.r0);
            });
          }
        } finally {
          tf.dispose([...m1, ...m2]);
        }
      }
    } finally {
      f.releaseBlock(w);
    }
    emitState(`block.${i}.out`);
    f.onProfile?.({ block: i, loadMs: t1 - t0, computeMs: performance.now() - t1 });
  }

  // -- output head on video rows: LayerNorm → AdaLN-out → proj_out
  const P = outFeatures(f.final.projOut);
  const y = new Float32Array(B * N * P);
  const mod = tf.tidy(() => linear(silu(f.emb), f.final.normOut)); // [B, 2D]: shift first
  try {
    for (let b = 0; b < B; b++) {
      for (const c of chunks) {
        if (c.text) continue;
        tf.tidy(() => {
          const nf = layerNorm(upload(b, c.r0, c.n), f.final.normFinal.w, f.final.normFinal.b, f.normEps);
          const no = modulate(nf, f.final.normOutNorm, tf.slice(mod, [b, 0], [1, D]), tf.slice(mod, [b, D], [1, D]));
          y.set(linear(no, f.final.projOut).dataSync() as Float32Array, (b * N + c.r0 - Lt) * P);
        });
      }
    }
  } finally {
    mod.dispose();
  }
  return { y, P };
}

/**
 * Whether a forward needs the offloaded path: on wasm when its [B, S, D] activations (≈ 10 alive at a block's peak,
 * see the memory plan) plus one block's fp32 weights would not leave room in the 4 GiB heap; on tensorflow when its
 * ≈ 22 live [B, S, D] tensors (its allocator pools them) would take more than half of the machine's RAM.
 */
export function needsOffload(B: number, S: number, D: number, backend: string, ramBytes = os.totalmem()): boolean {
  const seqBytes = B * S * D * 4;
  if (backend === 'wasm') return 10 * seqBytes + 12 * D * D * 4 > 2.5 * 2 ** 30;
  return 22 * seqBytes > 0.5 * ramBytes;
}
