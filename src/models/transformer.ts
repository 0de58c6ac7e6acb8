// CogVideoXTransformer3DModel (diffusers v0.32.2 / CogVideoX-Fun), spec §2:
//   emb = TimestepMLP(sinusoid(t)) (+ ofs MLP, 1.5-I2V)
//   x   = [text_proj(text) | patchify(latents ‖ inpaint latents)] + PE (2b: sincos; Fun: interpolated table)
//   L × block: expert AdaLN (shared LayerNorm, separate text/video modulation) → full attention over text+video with
//              QK-LayerNorm and 3D RoPE on video tokens → gated residual; AdaLN → one tanh-GELU FF → gated residual
//   out = unpatchify(proj_out(AdaLN_out(LayerNorm_final(video tokens))))  — a v-prediction [B, T, 16, h, w]
import * as tf from '@tensorflow/tfjs-core';
import { attention, attentionHost, mergeHeadsHost, splitHeadsHost } from '../nn/attention.js';
import { silu } from '../nn/activations.js';
import { isWasm } from '../nn/backend.js';
import {
  interpolatePositionTable,
  resizeCropRegion,
  rotaryTables,
  sincos3dTable,
  timestepEmbedding,
  type RotaryTables,
} from '../nn/embeddings.js';
import { disposeLinear, feedForward, linear, linearColumns, linearFromHost, linearRows, linearToHost, type HostRows, type Linear } from '../nn/linear.js';
import { layerNorm, modulatedLayerNormInto } from '../nn/norm.js';
import { hostFloats, nativeAttention, nativeLinear } from '../nn/native.js';
import { applyRotary } from '../nn/rope.js';
import { forwardOffloaded, needsOffload } from './transformer_offload.js';
import { readConfig, WeightStore } from '../weights/checkpoint.js';
import { HostTensor } from '../weights/host_tensor.js';
import { LoraMerge, type LoraSpec } from '../weights/lora.js';
import { chooseResidency, WeightSource, type Residency } from '../weights/residency.js';
import { blockNames, TRANSFORMER_DEFAULTS, transformerExpectedShapes, type TransformerConfig } from '../weights/transformer_names.js';

export type { TransformerConfig };

/** Which original implementation a checkpoint follows where the two differ (2b position embedding). */
export type TransformerFlavor = 'fun' | 'diffusers';

export interface TransformerLoadOptions {
  residency?: Residency | 'auto';
  /** Default: 'fun' for inpaint checkpoints (33 input channels), else 'diffusers'. */
  flavor?: TransformerFlavor;
  /**
   * CogVideoX-Fun LoRAs merged in order, as merge_lora (spec §4.9). Each weight gets the deltas when it is read
   * (once for resident/host, every block load for disk), in the stored dtype.
   */
  loras?: LoraSpec[];
}

export interface TransformerInputs {
  /** [B, T, C, h, w] noisy latents (C = in_channels, or 16 when inpaintLatents carries the rest) */
  hiddenStates: tf.Tensor5D;
  /** [B, L_text, text_embed_dim] */
  encoderHiddenStates: tf.Tensor3D;
  /** [B] (or one value for all) */
  timestep: number | ArrayLike<number>;
  /** [B, T, 17, h, w] mask ‖ masked-video latents (Fun inpaint models) */
  inpaintLatents?: tf.Tensor5D;
  /** RoPE tables [N, head_dim]; computed from the input size when omitted. */
  imageRotaryEmb?: { cos: tf.Tensor2D | Float32Array; sin: tf.Tensor2D | Float32Array };
  /** CogVideoX1.5-I2V only (the pipelines pass 2.0). */
  ofs?: number | ArrayLike<number>;
}

export interface TransformerForwardOptions {
  /** Receives intermediate outputs (names as in the reference dumps); do not dispose them. */
  onOutput?: (name: string, t: tf.Tensor) => void;
  onProfile?: (p: { block: number; loadMs: number; computeMs: number }) => void;
  /** Attention scratch bound in bytes (default: 256 MiB on wasm, 1 GiB otherwise). */
  attentionScratchBytes?: number;
  /** Feed-forward intermediate bound in bytes (default: 256 MiB on wasm, 2 GiB otherwise). */
  ffScratchBytes?: number;
  /**
   * Keep the [B, S, D] activations in host memory and send the device row chunks and single heads
   * (transformer_offload.ts). Default: when they would not fit the 4 GiB wasm heap, or half the RAM on tensorflow
   * (`needsOffload`).
   */
  offload?: boolean;
  /** Rows per chunk of the offloaded forward (default: 128 MiB of device scratch). */
  offloadRows?: number;
}

export interface Norm {
  w: tf.Tensor1D | null;
  b: tf.Tensor1D | null;
}

export interface Block {
  norm1: Linear;
  norm1Norm: Norm;
  q: Linear;
  k: Linear;
  v: Linear;
  normQ: Norm;
  normK: Norm;
  out: Linear;
  norm2: Linear;
  norm2Norm: Norm;
  ff1: Linear;
  ff2: Linear;
}

interface Globals {
  patch: Linear; // conv 2×2 (1.0) as a linear over (c, dy, dx), or the 1.5 Linear over (c, τ, dy, dx)
  textProj: Linear;
  time1: Linear;
  time2: Linear;
  ofs1: Linear | null;
  ofs2: Linear | null;
  normFinal: Norm;
  normOut: Linear;
  normOutNorm: Norm;
  projOut: Linear;
}

export class CogVideoXTransformer3DModel {
  private blocks: Block[] | null = null;
  private g: Globals;
  private readonly learnedPE: HostTensor | null;
  private readonly peCache = new Map<string, tf.Tensor3D>();

  private constructor(
    readonly config: TransformerConfig,
    readonly flavor: TransformerFlavor,
    private readonly source: WeightSource,
    private readonly tokenRowsHint: number,
  ) {
    this.g = this.loadGlobals();
    this.learnedPE = config.use_learned_positional_embeddings ? source.read('patch_embed.pos_embedding') : null;
    if (source.residency === 'resident') this.blocks = Array.from({ length: config.num_layers }, (_, i) => this.materializeBlock(i));
  }

  /** The weights outside the blocks, uploaded (read through the source: LoRA-merged, never cached on the host). */
  private loadGlobals(): Globals {
    const c = this.config;
    const D = this.innerDim;
    const source = this.source;
    const tokenRowsHint = this.tokenRowsHint;
    const get = (name: string) => source.read(name);
    const lin = (name: string, bias = true) => linearFromHost(get(`${name}.weight`), bias ? get(`${name}.bias`) : null, { rows: tokenRowsHint });
    const small = (name: string) => linearFromHost(get(`${name}.weight`), get(`${name}.bias`), { rows: 2 });
    const pw = get('patch_embed.proj.weight');
    const patchWeight = new HostTensor([D, pw.size / D], pw.storage, pw.data); // conv [D, C, p, p] = linear over (c, dy, dx)
    const patchBias = source.store.has('patch_embed.proj.bias') ? get('patch_embed.proj.bias') : null;
    return {
      patch: linearFromHost(patchWeight, patchBias, { rows: tokenRowsHint }),
      textProj: lin('patch_embed.text_proj'),
      time1: small('time_embedding.linear_1'),
      time2: small('time_embedding.linear_2'),
      ofs1: c.ofs_embed_dim ? small('ofs_embedding.linear_1') : null,
      ofs2: c.ofs_embed_dim ? small('ofs_embedding.linear_2') : null,
      normFinal: this.norm('norm_final'),
      normOut: small('norm_out.linear'),
      normOutNorm: this.norm('norm_out.norm'),
      projOut: lin('proj_out'),
    };
  }

  /** Loads a `transformer` folder (config.json + safetensors); the variant is chosen by config.json alone. */
  static async fromPretrained(dir: string, opts: TransformerLoadOptions = {}): Promise<CogVideoXTransformer3DModel> {
    const raw = readConfig<Partial<TransformerConfig>>(dir);
    const config = { ...TRANSFORMER_DEFAULTS, ...raw } as TransformerConfig;
    validateConfig(config, dir);
    const store = WeightStore.open(dir);
    let source: WeightSource | null = null;
    try {
      const shapes = transformerExpectedShapes(config);
      store.expect(shapes);
      let fp32Bytes = 0;
      for (const s of shapes.values()) fp32Bytes += 4 * s.reduce((a, b) => a * b, 1);
      const residency = !opts.residency || opts.residency === 'auto' ? chooseResidency(fp32Bytes, store.storedBytes) : opts.residency;
      const flavor = opts.flavor ?? (config.in_channels === 33 ? 'fun' : 'diffusers');
      const D = config.num_attention_heads * config.attention_head_dim;
      source = new WeightSource(store, residency);
      for (const spec of opts.loras ?? []) source.addPatch(LoraMerge.open(spec, store)); // checked before any upload
      return new CogVideoXTransformer3DModel(config, flavor, source, D >= 1024 ? 2 * 13_330 : 2 * 512);
    } catch (e) {
      if (source) source.close();
      else store.close();
      throw e;
    }
  }

  /**
   * Merges a CogVideoX-Fun LoRA into the loaded weights: W += m·(alpha/rank)·up·down, as merge_lora (applied after
   * the merges so far, rounded to the stored dtype). Resident weights are re-uploaded now; host/disk on next use.
   */
  mergeLora(spec: LoraSpec): void {
    this.source.addPatch(LoraMerge.open(spec, this.source.store, 1));
    this.reloadWeights();
  }

  /** Subtracts a LoRA's delta, as unmerge_lora (so merge + unmerge leaves fp rounding residue, as in Fun). */
  unmergeLora(spec: LoraSpec): void {
    this.source.addPatch(LoraMerge.open(spec, this.source.store, -1));
    this.reloadWeights();
  }

  private reloadWeights(): void {
    const old = this.g;
    this.g = this.loadGlobals();
    disposeGlobals(old);
    if (this.blocks) {
      this.blocks.forEach(disposeBlock);
      this.blocks = null; // if a re-upload fails, forward still works, loading blocks per use
      this.blocks = Array.from({ length: this.config.num_layers }, (_, i) => this.materializeBlock(i));
    }
  }

  get innerDim(): number {
    return this.config.num_attention_heads * this.config.attention_head_dim;
  }

  get residency(): Residency {
    return this.source.residency;
  }

  /**
   * RoPE tables for a latent size as the pipelines build them (`_prepare_rotary_positional_embeddings`):
   * 1.0 — Fun's linspace grid over the crop region of the base grid (sample size / patch); 1.5 — the "slice" grid.
   * `latentFrames` is the latent frame count T (before temporal patching).
   */
  prepareRotaryPositionalEmbeddings(latentHeight: number, latentWidth: number, latentFrames: number): RotaryTables {
    return prepareRotaryPositionalEmbeddings(this.config, latentHeight, latentWidth, latentFrames, this.flavor);
  }

  forward(inputs: TransformerInputs, opts: TransformerForwardOptions = {}): tf.Tensor5D {
    const c = this.config;
    const D = this.innerDim;
    const p = c.patch_size;
    const pt = c.patch_size_t ?? 1;
    const { B, T, h, w } = this.validate(inputs);
    const emit = opts.onOutput ?? (() => {});

    // 1.5 patches frame pairs: pad an odd frame count with zero frames (Fun does this for T = 1), crop at the end.
    const Tpad = Math.ceil(T / pt) * pt;
    const gh = h / p;
    const gw = w / p;
    const N = (Tpad / pt) * gh * gw;

    const rope = this.ropeTensors(inputs, h, w, T);
    const emb = this.timeEmbedding(inputs, B, emit);
    const Lt = inputs.encoderHiddenStates.shape[1];
    if (opts.offload ?? needsOffload(B, Lt + N, D, tf.getBackend())) {
      try {
        const { y, P } = forwardOffloaded({
          B, Lt, N, heads: c.num_attention_heads, headDim: c.attention_head_dim, normEps: c.norm_eps, layers: c.num_layers,
          text: (b) => tf.tidy(() => linear(tf.reshape(tf.slice(inputs.encoderHiddenStates, [b, 0, 0], [1, Lt, c.text_embed_dim]), [Lt, c.text_embed_dim]), this.g.textProj) as tf.Tensor2D),
          patches: (b) =>
            tf.tidy(() => {
              let x: tf.Tensor = tf.slice(inputs.hiddenStates, [b, 0, 0, 0, 0], [1, T, inputs.hiddenStates.shape[2], h, w]);
              if (inputs.inpaintLatents) x = tf.concat([x, tf.slice(inputs.inpaintLatents, [b, 0, 0, 0, 0], [1, T, inputs.inpaintLatents.shape[2], h, w])], 2);
              if (Tpad !== T) x = tf.concat([x, tf.zeros([1, Tpad - T, c.in_channels, h, w])], 1);
              const tokens = patchify(x, p, c.patch_size_t ?? null);
              return tf.reshape(tokens, [N, tokens.shape[2]]) as tf.Tensor2D;
            }),
          patch: this.g.patch,
          pe: this.positionTable(T, gh, gw, Lt),
          rope,
          emb,
          loadBlock: (i) => (this.blocks ? this.blocks[i]! : this.materializeBlock(i)),
          releaseBlock: (blk) => {
            if (!this.blocks) disposeBlock(blk);
          },
          final: { normFinal: this.g.normFinal, normOut: this.g.normOut, normOutNorm: this.g.normOutNorm, projOut: this.g.projOut },
          rows: opts.offloadRows,
          attentionScratchBytes: opts.attentionScratchBytes ?? (isWasm() ? 256 * 2 ** 20 : 2 ** 30),
          emit: opts.onOutput,
          onProfile: opts.onProfile,
        });
        return tf.tidy(() => {
          const v = unpatchify(tf.tensor3d(y, [B, N, P]), B, Tpad, gh, gw, c.out_channels, p, c.patch_size_t ?? null);
          return (Tpad !== T ? tf.slice(v, [0, 0, 0, 0, 0], [B, T, c.out_channels, h, w]) : v) as tf.Tensor5D;
        });
      } finally {
        emb.dispose();
        if (rope) tf.dispose([rope.cos, rope.sin]);
      }
    }
    let hidden: tf.Tensor3D;
    let encoder: tf.Tensor3D;
    {
      const seq = tf.tidy(() => {
        let x: tf.Tensor = inputs.hiddenStates;
        if (inputs.inpaintLatents) x = tf.concat([x, inputs.inpaintLatents], 2);
        if (Tpad !== T) x = tf.concat([x, tf.zeros([B, Tpad - T, c.in_channels, h, w])], 1);
        const tokens = linear(patchify(x, p, c.patch_size_t ?? null), this.g.patch); // [B, N, D]
        const text = linear(inputs.encoderHiddenStates, this.g.textProj);
        let s = tf.concat([text, tokens], 1);
        const pe = this.positionEmbedding(T, gh, gw, inputs.encoderHiddenStates.shape[1]);
        if (pe) {
          emit('patch_embed.pos', pe);
          s = tf.add(s, pe);
        }
        return s as tf.Tensor3D;
      });
      emit('patch_embed.output', seq);
      encoder = tf.slice(seq, [0, 0, 0], [B, Lt, D]);
      hidden = tf.slice(seq, [0, Lt, 0], [B, N, D]);
      seq.dispose();
    }

    try {
      for (let i = 0; i < c.num_layers; i++) {
        const t0 = performance.now();
        const blk = this.blocks ? this.blocks[i]! : this.materializeBlock(i);
        const t1 = performance.now();
        try {
          emit(`block.${i}.in.hidden`, hidden);
          emit(`block.${i}.in.encoder`, encoder);
          const [h2, e2] = this.block(i, blk, hidden, encoder, emb, rope, opts);
          hidden.dispose();
          encoder.dispose();
          hidden = h2;
          encoder = e2;
        } finally {
          if (!this.blocks) disposeBlock(blk);
        }
        emit(`block.${i}.out.hidden`, hidden);
        emit(`block.${i}.out.encoder`, encoder);
        if (opts.onProfile) {
          hidden.dataSync();
          opts.onProfile({ block: i, loadMs: t1 - t0, computeMs: performance.now() - t1 });
        }
      }
      const out = tf.tidy(() => {
        const nf = layerNorm(hidden, this.g.normFinal.w, this.g.normFinal.b, c.norm_eps);
        emit('norm_final.output', nf);
        const mod = linear(silu(emb), this.g.normOut); // [B, 2D]: shift first
        const shift = tf.reshape(tf.slice(mod, [0, 0], [B, D]), [B, 1, D]);
        const scale = tf.reshape(tf.slice(mod, [0, D], [B, D]), [B, 1, D]);
        const no = tf.add(tf.mul(layerNorm(nf, this.g.normOutNorm.w, this.g.normOutNorm.b, c.norm_eps), tf.add(scale, 1)), shift);
        emit('norm_out.output', no);
        const y = linear(no, this.g.projOut);
        emit('proj_out.output', y);
        const v = unpatchify(y as tf.Tensor3D, B, Tpad, gh, gw, c.out_channels, p, c.patch_size_t ?? null);
        return (Tpad !== T ? tf.slice(v, [0, 0, 0, 0, 0], [B, T, c.out_channels, h, w]) : v) as tf.Tensor5D;
      });
      return out;
    } finally {
      tf.dispose([hidden, encoder, emb]);
      if (rope) tf.dispose([rope.cos, rope.sin]);
    }
  }

  dispose(): void {
    this.blocks?.forEach(disposeBlock);
    this.blocks = null;
    disposeGlobals(this.g);
    for (const t of this.peCache.values()) t.dispose();
    this.peCache.clear();
    this.source.close();
  }

  // --- pieces --------------------------------------------------------------------------------------------

  private block(
    i: number,
    w: Block,
    hidden: tf.Tensor3D,
    encoder: tf.Tensor3D,
    emb: tf.Tensor2D,
    rope: { cos: tf.Tensor2D; sin: tf.Tensor2D } | null,
    opts: TransformerForwardOptions,
  ): [tf.Tensor3D, tf.Tensor3D] {
    const c = this.config;
    const D = this.innerDim;
    const H = c.num_attention_heads;
    const hd = c.attention_head_dim;
    const [B, N] = hidden.shape;
    const Lt = encoder.shape[1];
    const S = Lt + N;
    const emit = opts.onOutput ?? (() => {});
    const wasm = isWasm();

    // Expert AdaLN: one LayerNorm, separate (shift, scale, gate) for video and text tokens.
    const modulation = (lin: Linear): tf.Tensor3D[] =>
      tf.tidy(() => {
        const m = linear(silu(emb), lin); // [B, 6D]
        if (lin === w.norm1) emit(`block.${i}.norm1`, m);
        return tf.split(tf.reshape(m, [B, 6, D]), 6, 1) as tf.Tensor3D[]; // each [B, 1, D]
      });
    const modulate = (x: tf.Tensor, norm: Norm, shift: tf.Tensor, scale: tf.Tensor) =>
      tf.add(tf.mul(layerNorm(x, norm.w, norm.b, c.norm_eps), tf.add(scale, 1)), shift);

    // --- attention ---
    const [shift, scale, gate, eShift, eScale, eGate] = modulation(w.norm1);
    const scratchBytes = opts.attentionScratchBytes ?? (wasm ? 256 * 2 ** 20 : 2 ** 30);
    const normed = () =>
      tf.tidy(() => tf.concat([modulate(encoder, w.norm1Norm, eShift!, eScale!), modulate(hidden, w.norm1Norm, shift!, scale!)], 1));
    // tensorflow with the native GEMM: the modulated LayerNorms are written by the addon into the host rows the GEMM
    // reads (text then video rows of each sequence), skipping TensorFlow's element-wise passes and copies.
    const native = !wasm && [w.q, w.k, w.v, w.ff1, w.ff2].every((l) => l.layout === 'host') && nativeLinear() !== null;
    const normedHost = (): HostRows => {
      const data = hostFloats(B * S * D); // every row written below
      modulatedLayerNormInto(encoder, w.norm1Norm.w, w.norm1Norm.b, c.norm_eps, eScale!, eShift!, data, S, 0);
      modulatedLayerNormInto(hidden, w.norm1Norm.w, w.norm1Norm.b, c.norm_eps, scale!, shift!, data, S, Lt);
      return { data, rows: B * S, cols: D };
    };
    // Native: projections, q/k norm, rotary, head layout, attention and the output projection on host arrays; only
    // the projected output enters TensorFlow.
    const attentionNative = (): tf.Tensor3D => {
      const s = normedHost();
      const ropeOpt = rope ? { cos: rope.cos, sin: rope.sin, offset: Lt } : undefined;
      const q = splitHeadsHost(linearToHost(s, w.q), B, S, H, hd, { norm: { ...w.normQ, eps: 1e-6 }, rope: ropeOpt });
      const k = splitHeadsHost(linearToHost(s, w.k), B, S, H, hd, { norm: { ...w.normK, eps: 1e-6 }, rope: ropeOpt });
      const v = splitHeadsHost(linearToHost(s, w.v), B, S, H, hd);
      if (opts.onOutput) {
        const [qt, kt] = [q, k].map((a) => tf.tensor4d(a, [B, H, S, hd]));
        emit(`block.${i}.attn.q`, qt!);
        emit(`block.${i}.attn.k`, kt!);
        tf.dispose([qt!, kt!]);
      }
      const a = attentionHost(q, k, v, B * H, S, hd, 1 / Math.sqrt(hd));
      const o = tf.tidy(() => tf.reshape(linear(mergeHeadsHost(a, B, S, H, hd), w.out), [B, S, D]) as tf.Tensor3D);
      emit(`block.${i}.attn.out`, o);
      return o;
    };
    const attnOut = wasm
      ? this.attentionHeadwise(i, w, normed, B, Lt, N, rope, scratchBytes, opts.onOutput)
      : native && w.out.layout === 'host' && nativeAttention()
        ? attentionNative()
        : tf.tidy(() => {
          const s = native ? normedHost() : normed();
          const heads = (lin: Linear, norm: Norm, rotate: boolean): tf.Tensor4D =>
            tf.tidy(() => {
              let t = tf.transpose(tf.reshape(linear(s, lin), [B, S, H, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
              t = layerNorm(t, norm.w, norm.b, 1e-6) as tf.Tensor4D;
              if (rotate && rope) {
                const text = tf.slice(t, [0, 0, 0, 0], [B, H, Lt, hd]);
                const video = applyRotary(tf.slice(t, [0, 0, Lt, 0], [B, H, N, hd]) as tf.Tensor4D, rope.cos, rope.sin);
                t = tf.concat([text, video], 2) as tf.Tensor4D;
              }
              return t;
            });
          const q = heads(w.q, w.normQ, true);
          const k = heads(w.k, w.normK, true);
          emit(`block.${i}.attn.q`, q);
          emit(`block.${i}.attn.k`, k);
          const v = tf.transpose(tf.reshape(linear(s, w.v), [B, S, H, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
          const a = attention(q, k, v, { scale: 1 / Math.sqrt(hd), scratchBytes });
          const o = linear(tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [B, S, D]), w.out);
          emit(`block.${i}.attn.out`, o);
          return o;
        });
    let [h1, e1] = tf.tidy(() => {
      const h = tf.add(hidden, tf.mul(gate!, tf.slice(attnOut, [0, Lt, 0], [B, N, D])));
      const e = tf.add(encoder, tf.mul(eGate!, tf.slice(attnOut, [0, 0, 0], [B, Lt, D])));
      return [h, e];
    });
    tf.dispose([attnOut, shift!, scale!, gate!, eShift!, eScale!, eGate!]);

    // --- feed-forward, one for both streams; chunked over tokens so its 4D-wide intermediate stays bounded ---
    const [shift2, scale2, gate2, eShift2, eScale2, eGate2] = modulation(w.norm2);
    const ffBudget = opts.ffScratchBytes ?? (wasm ? 256 * 2 ** 20 : 2 * 2 ** 30);
    const rowsPerChunk = Math.max(1, Math.floor(ffBudget / (2 * 4 * 4 * D)));
    const ff = (x: tf.Tensor3D): tf.Tensor3D =>
      tf.tidy(() => {
        const rows = tf.reshape(x, [-1, D]);
        const n = rows.shape[0]!;
        const parts: tf.Tensor[] = [];
        for (let r = 0; r < n; r += rowsPerChunk) {
          const xr = n <= rowsPerChunk ? rows : tf.slice(rows, [r, 0], [Math.min(rowsPerChunk, n - r), D]);
          parts.push(feedForward(xr, w.ff1, w.ff2));
        }
        return tf.reshape(parts.length === 1 ? parts[0]! : tf.concat(parts, 0), x.shape) as tf.Tensor3D;
      });
    // Native: both streams' rows in one host array ([B, S, D], text rows first, as in attention), one feed-forward call
    // (one GEMM of 2·S rows is faster than two of 2·Lt and 2·N).
    const ffBoth = (): [tf.Tensor3D, tf.Tensor3D] => {
      const data = hostFloats(B * S * D);
      modulatedLayerNormInto(e1 as tf.Tensor3D, w.norm2Norm.w, w.norm2Norm.b, c.norm_eps, eScale2!, eShift2!, data, S, 0);
      modulatedLayerNormInto(h1 as tf.Tensor3D, w.norm2Norm.w, w.norm2Norm.b, c.norm_eps, scale2!, shift2!, data, S, Lt);
      return tf.tidy(() => {
        const f = tf.reshape(feedForward({ data, rows: B * S, cols: D }, w.ff1, w.ff2, rowsPerChunk), [B, S, D]);
        return [tf.slice(f, [0, 0, 0], [B, Lt, D]) as tf.Tensor3D, tf.slice(f, [0, Lt, 0], [B, N, D]) as tf.Tensor3D];
      });
    };
    const [h2, e2] = tf.tidy(() => {
      const [fe, fh] = native
        ? ffBoth()
        : [ff(modulate(e1, w.norm2Norm, eShift2!, eScale2!) as tf.Tensor3D), ff(modulate(h1, w.norm2Norm, shift2!, scale2!) as tf.Tensor3D)];
      return [tf.add(h1, tf.mul(gate2!, fh!)) as tf.Tensor3D, tf.add(e1, tf.mul(eGate2!, fe!)) as tf.Tensor3D];
    });
    tf.dispose([h1, e1, shift2!, scale2!, gate2!, eShift2!, eScale2!, eGate2!]);
    return [h2, e2];
  }

  /**
   * Attention without any [B, S, D]-per-head intermediate (wasm: 4 GiB heap): for each sequence and head, q/k/v come
   * from that head's weight columns, get QK-LayerNorm and RoPE, attend in query blocks, and are projected back through
   * that head's rows of the output weight into one accumulator. Same numbers as the batched form.
   */
  private attentionHeadwise(
    i: number,
    w: Block,
    normed: () => tf.Tensor,
    B: number,
    Lt: number,
    N: number,
    rope: { cos: tf.Tensor2D; sin: tf.Tensor2D } | null,
    scratchBytes: number,
    emit: ((n: string, t: tf.Tensor) => void) | undefined,
  ): tf.Tensor3D {
    const c = this.config;
    const H = c.num_attention_heads;
    const hd = c.attention_head_dim;
    const D = this.innerDim;
    const S = Lt + N;
    const s = normed(); // [B, S, D]
    const outs: tf.Tensor[] = [];
    const qs: tf.Tensor[] = [];
    const ks: tf.Tensor[] = [];
    try {
      for (let b = 0; b < B; b++) {
        let acc: tf.Tensor2D | null = null;
        const sb = tf.tidy(() => tf.reshape(tf.slice(s, [b, 0, 0], [1, S, D]), [S, D]) as tf.Tensor2D);
        for (let h = 0; h < H; h++) {
          const part = tf.tidy(() => {
            const proj = (lin: Linear, norm: Norm | null, rotate: boolean): tf.Tensor2D => {
              let t = linearColumns(sb, lin, h * hd, hd);
              if (norm) t = layerNorm(t, norm.w, norm.b, 1e-6) as tf.Tensor2D;
              if (rotate && rope) t = tf.concat([tf.slice(t, [0, 0], [Lt, hd]), applyRotary(tf.slice(t, [Lt, 0], [N, hd]), rope.cos, rope.sin)], 0);
              return t;
            };
            const q = proj(w.q, w.normQ, true);
            const k = proj(w.k, w.normK, true);
            if (emit) {
              qs.push(tf.keep(tf.clone(q)));
              ks.push(tf.keep(tf.clone(k)));
            }
            const v = proj(w.v, null, false);
            const as4 = (t: tf.Tensor2D) => tf.reshape(t, [1, 1, S, hd]) as tf.Tensor4D;
            const a = attention(as4(q), as4(k), as4(v), { scale: 1 / Math.sqrt(hd), scratchBytes });
            return linearRows(tf.reshape(a, [S, hd]) as tf.Tensor2D, w.out, h * hd, hd);
          });
          const next: tf.Tensor2D = acc ? (tf.add(acc, part) as tf.Tensor2D) : part;
          if (acc) {
            acc.dispose();
            part.dispose();
          }
          acc = next;
        }
        sb.dispose();
        outs.push(tf.tidy(() => (w.out.b ? tf.add(acc!, w.out.b) : tf.clone(acc!))));
        acc!.dispose();
      }
    } finally {
      s.dispose();
    }
    const o = tf.tidy(() => tf.reshape(tf.concat(outs, 0), [B, S, D])) as tf.Tensor3D;
    tf.dispose(outs);
    if (emit) {
      const gather = (list: tf.Tensor[]) => tf.tidy(() => tf.reshape(tf.stack(list), [B, H, S, hd]));
      const q4 = gather(qs);
      const k4 = gather(ks);
      emit(`block.${i}.attn.q`, q4);
      emit(`block.${i}.attn.k`, k4);
      emit(`block.${i}.attn.out`, o);
      tf.dispose([q4, k4, ...qs, ...ks]);
    }
    return o;
  }

  private timeEmbedding(inputs: TransformerInputs, B: number, emit: (n: string, t: tf.Tensor) => void): tf.Tensor2D {
    const c = this.config;
    const D = this.innerDim;
    const t = inputs.timestep;
    const ts = typeof t === 'number' || t.length === 1 ? new Array(B).fill(typeof t === 'number' ? t : t[0]) : Array.from(t);
    return tf.tidy(() => {
      const tEmb = tf.tensor2d(timestepEmbedding(ts, D, c.freq_shift), [B, D]);
      emit('time.t_emb', tEmb);
      let emb = linear(silu(linear(tEmb, this.g.time1)), this.g.time2);
      emit('time.emb', emb);
      if (this.g.ofs1 && this.g.ofs2) {
        const o = inputs.ofs ?? 2.0;
        // diffusers passes ofs as a [1] tensor: its embedding [1, dim] broadcasts over the batch.
        const os = typeof o === 'number' ? [o] : Array.from(o);
        if (os.length !== 1 && os.length !== B) throw new Error(`ofs must have 1 or ${B} values, got ${os.length}`);
        const oT = tf.tensor2d(timestepEmbedding(os, c.ofs_embed_dim!, c.freq_shift), [os.length, c.ofs_embed_dim!]);
        emit('ofs.t_emb', oT);
        const oEmb = linear(silu(linear(oT, this.g.ofs1)), this.g.ofs2);
        emit('ofs.emb', oEmb);
        emb = tf.add(emb, oEmb);
      }
      return emb as tf.Tensor2D;
    });
  }

  /** [1, L_text + N, D] positional table added to the sequence (zeros on text rows), or null (RoPE models). */
  private positionEmbedding(T: number, gh: number, gw: number, Lt: number): tf.Tensor | null {
    const key = `${T}x${gh}x${gw}x${Lt}`;
    let cached = this.peCache.get(key);
    if (cached) return cached;
    const table = this.positionTable(T, gh, gw, Lt);
    if (!table) return null;
    cached = tf.tensor3d(table, [1, Lt + T * gh * gw, this.innerDim]);
    tf.keep(cached); // created inside the caller's tidy; the cache owns it
    this.peCache.set(key, cached);
    return cached;
  }

  /** The same table on the host, [(L_text + N)·D]. */
  private positionTable(T: number, gh: number, gw: number, Lt: number): Float32Array | null {
    const c = this.config;
    if (c.use_rotary_positional_embeddings && !c.use_learned_positional_embeddings) return null;
    const D = this.innerDim;
    const framesDiffer = (T - 1) * c.temporal_compression_ratio + 1 !== c.sample_frames;
    if (this.learnedPE && !framesDiffer) {
      // THUDM 5b-I2V: the stored table at the native size (checked in validate); text rows are stored too.
      return this.learnedPE.toFloat32().subarray(0, (Lt + T * gh * gw) * D);
    }
    const table = new Float32Array((Lt + T * gh * gw) * D);
    table.set(sincosPositionTable(c, this.learnedPE ? 'diffusers' : this.flavor, T, gh, gw), Lt * D);
    return table;
  }

  private ropeTensors(inputs: TransformerInputs, h: number, w: number, T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } | null {
    const c = this.config;
    if (!c.use_rotary_positional_embeddings) return null;
    const hd = c.attention_head_dim;
    const N = (Math.ceil(T / (c.patch_size_t ?? 1)) * h * w) / (c.patch_size * c.patch_size);
    const given = inputs.imageRotaryEmb;
    const toTensor = (x: tf.Tensor2D | Float32Array, what: string): tf.Tensor2D => {
      const t = x instanceof tf.Tensor ? tf.clone(x) : tf.tensor2d(x, [x.length / hd, hd]);
      if (t.shape[0] !== N || t.shape[1] !== hd) {
        t.dispose();
        throw new Error(`imageRotaryEmb.${what} must be [${N}, ${hd}] for this input, got [${(x instanceof tf.Tensor ? x.shape : [x.length / hd, hd]).join(', ')}]`);
      }
      return t;
    };
    if (given) return { cos: toTensor(given.cos, 'cos'), sin: toTensor(given.sin, 'sin') };
    const r = this.prepareRotaryPositionalEmbeddings(h, w, T);
    return { cos: tf.tensor2d(r.cos, [r.rows, r.headDim]), sin: tf.tensor2d(r.sin, [r.rows, r.headDim]) };
  }

  /** Checks every input before any compute; returns the sizes. */
  private validate(inputs: TransformerInputs): { B: number; T: number; h: number; w: number } {
    const c = this.config;
    const x = inputs.hiddenStates;
    if (!(x instanceof tf.Tensor) || x.rank !== 5) {
      throw new Error(`hiddenStates must be a rank-5 tensor [B, T, C, h, w], got ${x instanceof tf.Tensor ? `rank ${x.rank}` : typeof x}`);
    }
    const [B, T, C, h, w] = x.shape;
    const extra = inputs.inpaintLatents ? inputs.inpaintLatents.shape[2] : 0;
    if (inputs.inpaintLatents) {
      const s = inputs.inpaintLatents.shape;
      if (inputs.inpaintLatents.rank !== 5 || s[0] !== B || s[1] !== T || s[3] !== h || s[4] !== w) {
        throw new Error(`inpaintLatents must be [${B}, ${T}, C, ${h}, ${w}], got [${s.join(', ')}]`);
      }
    }
    if (C + extra !== c.in_channels) {
      throw new Error(
        `channels: hiddenStates has ${C}${inputs.inpaintLatents ? ` + inpaintLatents ${extra}` : ''} = ${C + extra}, ` +
          `but this model takes ${c.in_channels}` + (c.in_channels === 33 && !inputs.inpaintLatents ? ' (16 latents + inpaintLatents with 17)' : ''),
      );
    }
    if (h % c.patch_size || w % c.patch_size) {
      throw new Error(`latent height/width ${h}×${w} must be multiples of the patch size ${c.patch_size} (pixel H/W multiples of 16)`);
    }
    if (T < 1) throw new Error('hiddenStates has no frames');
    const e = inputs.encoderHiddenStates;
    if (!(e instanceof tf.Tensor) || e.rank !== 3 || e.shape[0] !== B || e.shape[2] !== c.text_embed_dim) {
      throw new Error(`encoderHiddenStates must be [${B}, L, ${c.text_embed_dim}], got ${e instanceof tf.Tensor ? `[${e.shape.join(', ')}]` : typeof e}`);
    }
    const ts = typeof inputs.timestep === 'number' ? [inputs.timestep] : Array.from(inputs.timestep);
    if (ts.length !== B && ts.length !== 1) throw new Error(`timestep must have ${B} values (one per batch element), got ${ts.length}`);
    if (ts.some((t) => !Number.isFinite(t))) throw new Error('timestep values must be finite numbers');
    const usesPE = !c.use_rotary_positional_embeddings || c.use_learned_positional_embeddings;
    if (usesPE) {
      const T0 = (c.sample_frames - 1) / c.temporal_compression_ratio + 1;
      if (this.flavor === 'fun' && !c.use_learned_positional_embeddings && T > T0) {
        throw new Error(`this model's position table covers ${T0} latent frames (${c.sample_frames} video frames); got ${T}`);
      }
      if (c.use_learned_positional_embeddings && (h !== c.sample_height || w !== c.sample_width)) {
        throw new Error(
          `this model (learned position embeddings) only runs at its native latent size ${c.sample_height}×${c.sample_width}, got ${h}×${w}`,
        );
      }
    }
    return { B, T, h, w };
  }

  private norm(name: string): Norm {
    const s = this.source;
    return {
      w: s.store.has(`${name}.weight`) ? tf.tensor1d(s.read(`${name}.weight`).toFloat32()) : null,
      b: s.store.has(`${name}.bias`) ? tf.tensor1d(s.read(`${name}.bias`).toFloat32()) : null,
    };
  }

  private materializeBlock(i: number): Block {
    const n = blockNames(i);
    const get = (name: string) => this.source.get(name);
    const has = (name: string) => this.source.store.has(name);
    const lin = (name: string) => linearFromHost(get(`${name}.weight`), has(`${name}.bias`) ? get(`${name}.bias`) : null, { rows: this.tokenRowsHint });
    const mod = (name: string) => linearFromHost(get(`${name}.weight`), get(`${name}.bias`), { rows: 2 });
    const norm = (name: string): Norm => ({
      w: has(`${name}.weight`) ? tf.tensor1d(get(`${name}.weight`).toFloat32()) : null,
      b: has(`${name}.bias`) ? tf.tensor1d(get(`${name}.bias`).toFloat32()) : null,
    });
    return {
      norm1: mod(n.norm1Linear),
      norm1Norm: norm(n.norm1Norm),
      q: lin(n.q),
      k: lin(n.k),
      v: lin(n.v),
      normQ: norm(n.normQ),
      normK: norm(n.normK),
      out: lin(n.out),
      norm2: mod(n.norm2Linear),
      norm2Norm: norm(n.norm2Norm),
      ff1: lin(n.ff1),
      ff2: lin(n.ff2),
    };
  }
}

/**
 * RoPE tables for a config and latent size, as the reference pipelines compute them (see the method). The grid of
 * 1.0 models differs between CogVideoX-Fun (numpy linspace) and diffusers (torch linspace) when the crop is off-origin.
 */
export function prepareRotaryPositionalEmbeddings(
  c: TransformerConfig,
  latentHeight: number,
  latentWidth: number,
  latentFrames: number,
  flavor: TransformerFlavor = 'fun',
): RotaryTables {
  const p = c.patch_size;
  const gh = latentHeight / p;
  const gw = latentWidth / p;
  const baseW = Math.floor(c.sample_width / p);
  const baseH = Math.floor(c.sample_height / p);
  if (!c.patch_size_t) {
    const crop = resizeCropRegion(gh, gw, baseW, baseH);
    return rotaryTables(c.attention_head_dim, gh, gw, latentFrames, { type: flavor === 'fun' ? 'linspace' : 'torch-linspace', crop });
  }
  const frames = Math.floor((latentFrames + c.patch_size_t - 1) / c.patch_size_t);
  return rotaryTables(c.attention_head_dim, gh, gw, frames, { type: 'slice', maxH: baseH, maxW: baseW });
}

/**
 * The sincos position table's video rows [T·gh·gw, D] (rows t, y, x) for a token grid:
 * 'fun' — the table of the config's sample size, trilinearly resized to (gh, gw) and cut to T frames (CogVideoX-Fun);
 * 'diffusers' — recomputed for the grid (diffusers; identical at the native size).
 */
export function sincosPositionTable(c: TransformerConfig, flavor: TransformerFlavor, T: number, gh: number, gw: number): Float32Array {
  const D = c.num_attention_heads * c.attention_head_dim;
  if (flavor === 'diffusers') return sincos3dTable(D, gw, gh, T, c.spatial_interpolation_scale, c.temporal_interpolation_scale);
  const p = c.patch_size;
  const H0 = c.sample_height / p;
  const W0 = c.sample_width / p;
  const T0 = (c.sample_frames - 1) / c.temporal_compression_ratio + 1;
  if (T > T0) throw new Error(`the position table covers ${T0} latent frames; got ${T}`);
  const base = sincos3dTable(D, W0, H0, T0, c.spatial_interpolation_scale, c.temporal_interpolation_scale);
  const resized = gh === H0 && gw === W0 ? base : interpolatePositionTable(base, D, T0, H0, W0, gh, gw);
  return resized.subarray(0, T * gh * gw * D);
}

/** [B, T, C, h, w] → [B, N, C·pt·p·p] tokens (t', y, x), features (c, τ, dy, dx) — the conv/Linear patch order. */
function patchify(x: tf.Tensor, p: number, pt: number | null): tf.Tensor3D {
  const [B, T, C, h, w] = x.shape as [number, number, number, number, number];
  const gh = h / p;
  const gw = w / p;
  if (pt === null) {
    const r = tf.reshape(x, [B * T, C, gh, p, gw, p]);
    return tf.reshape(tf.transpose(r, [0, 2, 4, 1, 3, 5]), [B, T * gh * gw, C * p * p]);
  }
  const r = tf.reshape(x, [B * (T / pt), pt, C, gh, p, gw, p]);
  return tf.reshape(tf.transpose(r, [0, 3, 5, 2, 1, 4, 6]), [B, (T / pt) * gh * gw, C * pt * p * p]);
}

/** [B, N, C·pt·p·p] → [B, T, C, h, w] (inverse of patchify). */
function unpatchify(y: tf.Tensor3D, B: number, T: number, gh: number, gw: number, C: number, p: number, pt: number | null): tf.Tensor5D {
  if (pt === null) {
    const r = tf.reshape(y, [B * T, gh, gw, C, p, p]);
    return tf.reshape(tf.transpose(r, [0, 3, 1, 4, 2, 5]), [B, T, C, gh * p, gw * p]);
  }
  const r = tf.reshape(y, [B * (T / pt), gh, gw, C, pt, p, p]);
  return tf.reshape(tf.transpose(r, [0, 4, 3, 1, 5, 2, 6]), [B, T, C, gh * p, gw * p]);
}

function disposeGlobals(g: Globals): void {
  for (const l of [g.patch, g.textProj, g.time1, g.time2, g.ofs1, g.ofs2, g.normOut, g.projOut]) if (l) disposeLinear(l);
  for (const n of [g.normFinal, g.normOutNorm]) tf.dispose([n.w, n.b].filter((t): t is tf.Tensor1D => !!t));
}

function disposeBlock(b: Block): void {
  for (const l of [b.norm1, b.q, b.k, b.v, b.out, b.norm2, b.ff1, b.ff2]) disposeLinear(l);
  for (const n of [b.norm1Norm, b.normQ, b.normK, b.norm2Norm]) tf.dispose([n.w, n.b].filter((t): t is tf.Tensor1D => !!t));
}

function validateConfig(c: TransformerConfig, dir: string): void {
  for (const key of ['num_attention_heads', 'attention_head_dim', 'in_channels', 'out_channels', 'time_embed_dim', 'text_embed_dim', 'num_layers', 'patch_size'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) throw new Error(`${dir}/config.json: "${key}" must be a positive integer, got ${JSON.stringify(c[key])}`);
  }
  if (c.activation_fn !== 'gelu-approximate') throw new Error(`${dir}/config.json: activation_fn "${c.activation_fn}" is not supported (CogVideoX uses "gelu-approximate")`);
  if (c.timestep_activation_fn !== 'silu') throw new Error(`${dir}/config.json: timestep_activation_fn "${c.timestep_activation_fn}" is not supported`);
  if (!c.flip_sin_to_cos) throw new Error(`${dir}/config.json: flip_sin_to_cos=false is not supported`);
  if (c.ofs_embed_dim && c.ofs_embed_dim !== c.time_embed_dim) {
    throw new Error(`${dir}/config.json: ofs_embed_dim (${c.ofs_embed_dim}) must equal time_embed_dim (${c.time_embed_dim})`);
  }
}
