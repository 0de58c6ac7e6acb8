// The transformer's weights as the forward uses them: uploaded from the checkpoint (names as diffusers saves them,
// src/weights/transformer_names.ts), or replaced per forward by caller-owned tensors (training: full fine-tuning
// variables, LoRA-adapted weights) through a `params(name)` lookup by the same names, in torch's layouts.
import * as tf from '@tensorflow/tfjs-core';
import { deviceLinear, disposeLinear, inFeatures, linearFromHost, linearFromTensors, linearWeights, outFeatures, type Linear } from '../../nn/linear.js';
import type { AttentionWeights, NormWeights } from '../../nn/dit/types.js';
import { HostTensor } from '../../weights/host_tensor.js';
import type { WeightSource } from '../../weights/residency.js';
import { blockNames } from '../../weights/transformer_names.js';

/** eps of the q/k LayerNorms: `Attention(..., qk_norm="layer_norm", eps=1e-6)` (diffusers cogvideox_transformer_3d.py:91-99). */
export const QK_NORM_EPS = 1e-6;

/** One CogVideoXBlock (diffusers cogvideox_transformer_3d.py:73-115). */
export interface BlockWeights {
  /** AdaLN modulation of the attention half: Linear(SiLU(emb)) → 6·D (shift, scale, gate; text shift, scale, gate) */
  norm1: Linear;
  norm1Norm: NormWeights;
  attn: AttentionWeights;
  norm2: Linear;
  norm2Norm: NormWeights;
  ff1: Linear;
  ff2: Linear;
}

/** Everything outside the blocks. */
export interface GlobalWeights {
  /** conv 2×2 (1.0) as a linear over (c, dy, dx), or the 1.5 Linear over (c, τ, dy, dx) */
  patch: Linear;
  textProj: Linear;
  time1: Linear;
  time2: Linear;
  ofs1: Linear | null;
  ofs2: Linear | null;
  normFinal: NormWeights;
  normOut: Linear;
  normOutNorm: NormWeights;
  projOut: Linear;
}

/** Caller-owned replacements by checkpoint name (torch layout), or undefined to keep the stored tensor. */
export type ParamLookup = (name: string) => tf.Tensor | undefined;

/** Rows a linear is expected to see: the token linears many, the modulation/time linears one per sequence. */
export interface RowsHint {
  tokens: number;
}

function uploadNorm(source: WeightSource, name: string, cache: boolean): NormWeights {
  const get = (n: string) => (cache ? source.get(n) : source.read(n));
  const has = (n: string) => source.store.has(n);
  return {
    w: has(`${name}.weight`) ? tf.tensor1d(get(`${name}.weight`).toFloat32()) : null,
    b: has(`${name}.bias`) ? tf.tensor1d(get(`${name}.bias`).toFloat32()) : null,
  };
}

function disposeNorm(n: NormWeights): void {
  tf.dispose([n.w, n.b].filter((t): t is tf.Tensor1D => !!t));
}

/** Block i, uploaded through the source (host residency keeps its host copy; LoRA patches applied on read). */
export function loadBlock(source: WeightSource, i: number, rows: RowsHint): BlockWeights {
  const n = blockNames(i);
  const get = (name: string) => source.get(name);
  const has = (name: string) => source.store.has(name);
  const lin = (name: string) => linearFromHost(get(`${name}.weight`), has(`${name}.bias`) ? get(`${name}.bias`) : null, { rows: rows.tokens });
  const mod = (name: string) => linearFromHost(get(`${name}.weight`), get(`${name}.bias`), { rows: 2 });
  return {
    norm1: mod(n.norm1Linear),
    norm1Norm: uploadNorm(source, n.norm1Norm, true),
    attn: { q: lin(n.q), k: lin(n.k), v: lin(n.v), normQ: uploadNorm(source, n.normQ, true), normK: uploadNorm(source, n.normK, true), qkEps: QK_NORM_EPS, out: lin(n.out) },
    norm2: mod(n.norm2Linear),
    norm2Norm: uploadNorm(source, n.norm2Norm, true),
    ff1: lin(n.ff1),
    ff2: lin(n.ff2),
  };
}

/** The weights outside the blocks (read through the source: LoRA-merged, never cached on the host). */
export function loadGlobals(source: WeightSource, D: number, hasOfs: boolean, rows: RowsHint): GlobalWeights {
  const get = (name: string) => source.read(name);
  const lin = (name: string) => linearFromHost(get(`${name}.weight`), get(`${name}.bias`), { rows: rows.tokens });
  const small = (name: string) => linearFromHost(get(`${name}.weight`), get(`${name}.bias`), { rows: 2 });
  const pw = get('patch_embed.proj.weight');
  const patchWeight = new HostTensor([D, pw.size / D], pw.storage, pw.data); // conv [D, C, p, p] = linear over (c, dy, dx)
  const patchBias = source.store.has('patch_embed.proj.bias') ? get('patch_embed.proj.bias') : null;
  return {
    patch: linearFromHost(patchWeight, patchBias, { rows: rows.tokens }),
    textProj: lin('patch_embed.text_proj'),
    time1: small('time_embedding.linear_1'),
    time2: small('time_embedding.linear_2'),
    ofs1: hasOfs ? small('ofs_embedding.linear_1') : null,
    ofs2: hasOfs ? small('ofs_embedding.linear_2') : null,
    normFinal: uploadNorm(source, 'norm_final', false),
    normOut: small('norm_out.linear'),
    normOutNorm: uploadNorm(source, 'norm_out.norm', false),
    projOut: lin('proj_out'),
  };
}

export function disposeBlock(b: BlockWeights): void {
  for (const l of [b.norm1, b.attn.q, b.attn.k, b.attn.v, b.attn.out, b.norm2, b.ff1, b.ff2]) disposeLinear(l);
  for (const n of [b.norm1Norm, b.attn.normQ, b.attn.normK, b.norm2Norm]) disposeNorm(n);
}

export function disposeGlobals(g: GlobalWeights): void {
  for (const l of [g.patch, g.textProj, g.time1, g.time2, g.ofs1, g.ofs2, g.normOut, g.projOut]) if (l) disposeLinear(l);
  for (const n of [g.normFinal, g.normOutNorm]) disposeNorm(n);
}

/**
 * Applies `params` overrides to loaded weights and, when `differentiable`, moves host (native GEMM) weights onto the
 * device so TensorFlow can differentiate through them. Tensors it creates are pushed to `created` (the caller
 * disposes them after the forward); override tensors stay the caller's.
 */
export class WeightView {
  constructor(
    private readonly params: ParamLookup | undefined,
    private readonly differentiable: boolean,
    readonly created: tf.Tensor[] = [],
  ) {}

  /** Tensors that came from `params` (or were computed from them): what a checkpointed block differentiates. */
  private readonly overrides = new Set<tf.Tensor>();

  isOverride(t: tf.Tensor): boolean {
    return this.overrides.has(t);
  }

  private lookup(name: string): tf.Tensor | undefined {
    const t = this.params?.(name);
    if (t) this.overrides.add(t);
    return t;
  }

  /** Whether this view changes nothing (no overrides, inference): the stored weights are used as they are. */
  get identity(): boolean {
    return !this.params && !this.differentiable;
  }

  linear(name: string, stored: Linear, reshapeTo?: [number, number]): Linear {
    const w = this.lookup(`${name}.weight`);
    const b = this.lookup(`${name}.bias`);
    if (!w && !b) return this.differentiable ? deviceLinear(stored, this.created) : stored;
    let base: { w: tf.Tensor2D | null; b: tf.Tensor1D | null } | null = null;
    if (!w) {
      base = linearWeights(stored);
      this.created.push(base.w!, ...(base.b ? [base.b] : []));
    } else if (!b && stored.b) {
      // only the weight replaced (LoRA): the stored bias, without a copy of the weight
      base = { w: null, b: stored.layout === 'host' ? tf.tensor1d(stored.b!) : tf.clone(stored.b!) };
      this.created.push(base.b!);
    }
    let weight = (w ?? base!.w) as tf.Tensor2D;
    if (reshapeTo && w) {
      weight = tf.reshape(w, reshapeTo);
      this.created.push(weight);
      this.overrides.add(weight);
    }
    const want = [outFeatures(stored), inFeatures(stored)];
    if (weight.shape.length !== 2 || weight.shape[0] !== want[0] || weight.shape[1] !== want[1] || (b && (b.rank !== 1 || b.shape[0] !== want[0]))) {
      throw new Error(`params("${name}.weight"/"${name}.bias"): expected [${want.join(', ')}] / [${want[0]}] (torch layout), got [${(w ?? weight).shape.join(', ')}]${b ? ` / [${b.shape.join(', ')}]` : ''}`);
    }
    return linearFromTensors(weight, (b ?? base?.b ?? null) as tf.Tensor1D | null);
  }

  norm(name: string, stored: NormWeights): NormWeights {
    const w = this.lookup(`${name}.weight`);
    const b = this.lookup(`${name}.bias`);
    return { w: (w ?? stored.w) as tf.Tensor1D | null, b: (b ?? stored.b) as tf.Tensor1D | null };
  }

  block(i: number, s: BlockWeights): BlockWeights {
    if (this.identity) return s;
    const n = blockNames(i);
    return {
      norm1: this.linear(n.norm1Linear, s.norm1),
      norm1Norm: this.norm(n.norm1Norm, s.norm1Norm),
      attn: {
        q: this.linear(n.q, s.attn.q),
        k: this.linear(n.k, s.attn.k),
        v: this.linear(n.v, s.attn.v),
        normQ: this.norm(n.normQ, s.attn.normQ),
        normK: this.norm(n.normK, s.attn.normK),
        qkEps: s.attn.qkEps,
        out: this.linear(n.out, s.attn.out),
      },
      norm2: this.linear(n.norm2Linear, s.norm2),
      norm2Norm: this.norm(n.norm2Norm, s.norm2Norm),
      ff1: this.linear(n.ff1, s.ff1),
      ff2: this.linear(n.ff2, s.ff2),
    };
  }

  globals(g: GlobalWeights, patchShape: [number, number]): GlobalWeights {
    if (this.identity) return g;
    const opt = (name: string, l: Linear | null) => (l ? this.linear(name, l) : null);
    return {
      patch: this.linear('patch_embed.proj', g.patch, patchShape),
      textProj: this.linear('patch_embed.text_proj', g.textProj),
      time1: this.linear('time_embedding.linear_1', g.time1),
      time2: this.linear('time_embedding.linear_2', g.time2),
      ofs1: opt('ofs_embedding.linear_1', g.ofs1),
      ofs2: opt('ofs_embedding.linear_2', g.ofs2),
      normFinal: this.norm('norm_final', g.normFinal),
      normOut: this.linear('norm_out.linear', g.normOut),
      normOutNorm: this.norm('norm_out.norm', g.normOutNorm),
      projOut: this.linear('proj_out', g.projOut),
    };
  }

  dispose(): void {
    tf.dispose(this.created);
    this.created.length = 0;
    this.overrides.clear();
  }
}
