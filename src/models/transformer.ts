// CogVideoXTransformer3DModel (diffusers v0.32.2 models/transformers/cogvideox_transformer_3d.py; CogVideoX-Fun
// cogvideox/models/transformer3d.py):
//   emb = TimestepMLP(sinusoid(t)) (+ ofs MLP, 1.5-I2V)
//   x   = [text_proj(text) | patchify(latents ‖ inpaint latents)] + PE (2b: sincos; Fun: interpolated table)
//   L × CogVideoXBlock (transformer/block.ts)
//   out = unpatchify(proj_out(AdaLN_out(LayerNorm_final(video tokens))))  — a v-prediction [B, T, C_out, h, w]
// The pieces: transformer/embedding.ts (patchify, conditioning, position tables), transformer/block.ts (the block and
// the output head), transformer/weights.ts (loading, parameter overrides), transformer/validate.ts. How the block runs
// (kernels, where activations live) is chosen per forward by src/nn/dit/plan.ts.
import * as tf from '@tensorflow/tfjs-core';
import { planDit, type DitPlanOptions } from '../nn/dit/plan.js';
import { tapeIsRecording } from '../nn/tape.js';
import type { RotaryTables } from '../nn/embeddings.js';
import { linear } from '../nn/linear.js';
import { readConfig, WeightStore } from '../weights/checkpoint.js';
import { LoraMerge, type LoraSpec } from '../weights/lora.js';
import { chooseResidency, WeightSource, type Residency } from '../weights/residency.js';
import { transformerFlavor, type TransformerFlavor } from '../weights/transformer_kind.js';
import { TRANSFORMER_DEFAULTS, transformerExpectedShapes, type TransformerConfig } from '../weights/transformer_names.js';
import { checkpointedBlock, cogVideoXBlock, outputHead } from './transformer/block.js';
import { conditioning, patchify, positionTable, prepareRotaryPositionalEmbeddings, unpatchify, type ScalarInput } from './transformer/embedding.js';
import { validateConfig, validateInputs } from './transformer/validate.js';
import { disposeBlock, disposeGlobals, loadBlock, loadGlobals, WeightView, type BlockWeights, type GlobalWeights, type ParamLookup } from './transformer/weights.js';

export { prepareRotaryPositionalEmbeddings, sincosPositionTable } from './transformer/embedding.js';
export type { TransformerConfig, TransformerFlavor };

export interface TransformerLoadOptions {
  residency?: Residency | 'auto';
  /** Default: what the checkpoint's config.json says (weights/transformer_kind.ts: CogVideoX-Fun or diffusers). */
  flavor?: TransformerFlavor;
  /**
   * CogVideoX-Fun LoRAs merged in order, as merge_lora (CogVideoX-Fun cogvideox/utils/lora_utils.py). Each weight gets
   * the deltas when it is read (once for resident/host, every block load for disk), in the stored dtype.
   */
  loras?: LoraSpec[];
}

export interface TransformerInputs {
  /** [B, T, C, h, w] noisy latents (C = in_channels, or the latent channels when inpaintLatents carries the rest) */
  hiddenStates: tf.Tensor5D;
  /** [B, L_text, text_embed_dim] */
  encoderHiddenStates: tf.Tensor3D;
  /** [B] (or one value for all): a number, an array or a tensor */
  timestep: ScalarInput;
  /** [B, T, latent + 1, h, w] mask ‖ masked-video latents (Fun inpaint models) */
  inpaintLatents?: tf.Tensor5D;
  /** RoPE tables [N, head_dim]; computed from the input size when omitted. */
  imageRotaryEmb?: { cos: tf.Tensor2D | Float32Array; sin: tf.Tensor2D | Float32Array };
  /** CogVideoX1.5-I2V only (the pipelines pass 2.0): a number, an array or a tensor. */
  ofs?: ScalarInput;
}

export interface TransformerForwardOptions extends DitPlanOptions {
  /** Receives intermediate outputs (names as in the reference dumps); do not dispose them. */
  onOutput?: (name: string, t: tf.Tensor) => void;
  onProfile?: (p: { block: number; loadMs: number; computeMs: number }) => void;
  /**
   * Replacement tensors by checkpoint name (`transformer_blocks.0.attn1.to_q.weight`, torch layout [out, in]); a name
   * it returns undefined for keeps the stored weight. The tensors stay the caller's (training variables, or W + ΔW
   * computed inside the gradient tape for LoRA).
   */
  params?: ParamLookup;
  /**
   * Recompute each block's activations in the backward pass instead of keeping them (CogVideoX-Fun's
   * --gradient_checkpointing: transformer3d.py:598-613): a gradient's memory is then the block boundaries plus one
   * block. Applies to differentiable forwards; the result and the gradients are the same.
   */
  gradientCheckpointing?: boolean;
}

export class CogVideoXTransformer3DModel {
  private blocks: BlockWeights[] | null = null;
  private g: GlobalWeights;
  private readonly learnedPE: Float32Array | null;
  private readonly peCache = new Map<string, Float32Array | null>();
  private readonly rows: { tokens: number };

  private constructor(
    readonly config: TransformerConfig,
    readonly flavor: TransformerFlavor,
    private readonly source: WeightSource,
  ) {
    this.rows = { tokens: this.innerDim >= 1024 ? 2 * 13_330 : 2 * 512 };
    this.g = loadGlobals(source, this.innerDim, !!config.ofs_embed_dim, this.rows);
    this.learnedPE = config.use_learned_positional_embeddings ? source.read('patch_embed.pos_embedding').toFloat32().slice() : null;
    if (source.residency === 'resident') this.blocks = Array.from({ length: config.num_layers }, (_, i) => loadBlock(source, i, this.rows));
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
      source = new WeightSource(store, residency);
      for (const spec of opts.loras ?? []) source.addPatch(LoraMerge.open(spec, store)); // checked before any upload
      return new CogVideoXTransformer3DModel(config, opts.flavor ?? transformerFlavor(config), source);
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
    this.g = loadGlobals(this.source, this.innerDim, !!this.config.ofs_embed_dim, this.rows);
    disposeGlobals(old);
    if (this.blocks) {
      this.blocks.forEach(disposeBlock);
      this.blocks = null; // if a re-upload fails, forward still works, loading blocks per use
      this.blocks = Array.from({ length: this.config.num_layers }, (_, i) => loadBlock(this.source, i, this.rows));
    }
  }

  get innerDim(): number {
    return this.config.num_attention_heads * this.config.attention_head_dim;
  }

  get residency(): Residency {
    return this.source.residency;
  }

  /** The trainable parameters' checkpoint names (the position tables are buffers, not parameters, in both originals). */
  parameterNames(): string[] {
    return [...transformerExpectedShapes(this.config).keys()].filter((n) => n !== 'patch_embed.pos_embedding');
  }

  /** A parameter's current value (LoRA merges applied) as a new fp32 tensor in torch's layout; the caller owns it. */
  readParameter(name: string): tf.Tensor {
    const shape = transformerExpectedShapes(this.config).get(name);
    if (!shape || name === 'patch_embed.pos_embedding') throw new Error(`readParameter: "${name}" is not a parameter of this transformer (see parameterNames())`);
    return tf.tensor(new Float32Array(this.source.read(name).toFloat32()), shape);
  }

  /**
   * RoPE tables for a latent size as the pipelines build them (`_prepare_rotary_positional_embeddings`):
   * 1.0 — the grid over the crop region of the base grid (sample size / patch); 1.5 — the "slice" grid.
   * `latentFrames` is the latent frame count T (before temporal patching).
   */
  prepareRotaryPositionalEmbeddings(latentHeight: number, latentWidth: number, latentFrames: number): RotaryTables {
    return prepareRotaryPositionalEmbeddings(this.config, latentHeight, latentWidth, latentFrames, this.flavor);
  }

  /**
   * The v-prediction [B, T, out_channels, h, w]. Under a gradient tape (tf.grad, tf.variableGrads, …) or with
   * `differentiable: true` it runs on TensorFlow ops only, so gradients flow to the inputs and to `params`.
   */
  forward(inputs: TransformerInputs, opts: TransformerForwardOptions = {}): tf.Tensor5D {
    const c = this.config;
    const D = this.innerDim;
    const p = c.patch_size;
    const pt = c.patch_size_t ?? null;
    const { B, T, h, w } = validateInputs(c, this.flavor, inputs);
    const emit = opts.onOutput ?? null;
    const emitAll = emit ?? (() => {});
    // 1.5 patches frame pairs: pad an odd frame count with zero frames (Fun does this for T = 1), crop at the end.
    const Tpad = Math.ceil(T / (pt ?? 1)) * (pt ?? 1);
    const gh = h / p;
    const gw = w / p;
    const N = (Tpad / (pt ?? 1)) * gh * gw;
    const Lt = inputs.encoderHiddenStates.shape[1];
    const differentiable = opts.differentiable === true || tapeIsRecording();
    const nn = planDit({ B, Lt, N, heads: c.num_attention_heads, headDim: c.attention_head_dim }, { ...opts, differentiable });
    const view = new WeightView(opts.params, differentiable);
    let rope: { cos: tf.Tensor2D; sin: tf.Tensor2D } | null = null;
    let emb: tf.Tensor2D | null = null;
    let s: unknown = null;
    // gradient checkpointing (Fun transformer3d.py:598 applies it when training; only meaningful under a tape)
    const checkpointing = opts.gradientCheckpointing === true && differentiable;
    let joined: tf.Tensor3D | null = null;
    try {
      const g = view.globals(this.g, [D, (c.in_channels * p * p * (pt ?? 1))]);
      rope = this.ropeTensors(inputs, h, w, T);
      emb = conditioning(c, g, inputs.timestep, inputs.ofs, B, emitAll);

      // --- embedding: text rows | video rows, + the position table
      const pe = this.positionTable(T, gh, gw, Lt);
      const peRows = (r0: number, n: number) => tf.tensor2d(pe!.subarray(r0 * D, (r0 + n) * D), [n, D]);
      if (emit && pe) tf.tidy(() => emit('patch_embed.pos', tf.reshape(peRows(0, Lt + N), [1, Lt + N, D])));
      let tokens: { b0: number; nb: number; t: tf.Tensor3D } | null = null;
      const patches = (b0: number, nb: number): tf.Tensor3D => {
        if (tokens?.b0 !== b0 || tokens.nb !== nb) {
          tokens?.t.dispose();
          const t = tf.tidy(() => {
            const part = (x: tf.Tensor5D) => (nb === B ? x : tf.slice(x, [b0, 0, 0, 0, 0], [nb, T, x.shape[2], h, w]));
            let x: tf.Tensor = part(inputs.hiddenStates);
            if (inputs.inpaintLatents) x = tf.concat([x, part(inputs.inpaintLatents)], 2);
            if (Tpad !== T) x = tf.concat([x, tf.zeros([nb, Tpad - T, c.in_channels, h, w])], 1);
            return patchify(x, p, pt);
          });
          tokens = { b0, nb, t: tf.keep(t) };
        }
        return tokens.t;
      };
      try {
        s = nn.embed(
          (b0, nb) =>
            tf.tidy(() => {
              const e = nb === B ? inputs.encoderHiddenStates : tf.slice(inputs.encoderHiddenStates, [b0, 0, 0], [nb, Lt, c.text_embed_dim]);
              const x = linear(e, g.textProj);
              return (pe ? tf.add(x, peRows(0, Lt)) : x) as tf.Tensor3D;
            }),
          (b0, nb, r0, n) =>
            tf.tidy(() => {
              const all = patches(b0, nb);
              const x = linear(n === N ? all : tf.slice(all, [0, r0, 0], [nb, n, all.shape[2]]), g.patch);
              return (pe ? tf.add(x, peRows(Lt + r0, n)) : x) as tf.Tensor3D;
            }),
        );
      } finally {
        (tokens as { t: tf.Tensor } | null)?.t.dispose();
      }
      if (emit) this.emitStream(nn, s, emit, null);

      // --- the blocks (checkpointed: the stream passes between blocks as one [B, L + N, D] tensor, the only
      //     activation a block keeps for the backward pass; no per-block dumps)
      if (checkpointing) {
        joined = nn.join!(s);
        s = null;
      }
      for (let i = 0; i < c.num_layers; i++) {
        const t0 = performance.now();
        const stored = this.blocks ? this.blocks[i]! : loadBlock(this.source, i, this.rows);
        const t1 = performance.now();
        try {
          if (joined) {
            const next = checkpointedBlock(nn, view.block(i, stored), joined, emb, rope, c.norm_eps, (t) => view.isOverride(t));
            joined.dispose();
            joined = next;
          } else {
            if (emit) this.emitStream(nn, s, emit, `block.${i}.in`);
            s = cogVideoXBlock(nn, view.block(i, stored), s, emb, rope, c.norm_eps, emit, `block.${i}`);
          }
        } finally {
          if (!this.blocks) disposeBlock(stored);
        }
        if (emit && !joined) this.emitStream(nn, s, emit, `block.${i}.out`);
        if (opts.onProfile) {
          if (joined) joined.dataSync();
          else nn.sync(s);
          opts.onProfile({ block: i, loadMs: t1 - t0, computeMs: performance.now() - t1 });
        }
      }
      if (joined) {
        s = nn.split!(joined);
        joined.dispose();
        joined = null;
      }

      // --- output head on the video rows, unpatchify
      const y = nn.videoRows(s, (x, b0, nb) =>
        tf.tidy(() => outputHead(x, g, nb === B ? emb! : tf.slice(emb!, [b0, 0], [nb, emb!.shape[1]]), c.norm_eps, nn.chunked ? null : emit)),
      );
      return tf.tidy(() => {
        const v = unpatchify(y, B, Tpad, gh, gw, c.out_channels, p, pt);
        y.dispose();
        return (Tpad !== T ? tf.slice(v, [0, 0, 0, 0, 0], [B, T, c.out_channels, h, w]) : v) as tf.Tensor5D;
      });
    } finally {
      if (s !== null) nn.release(s);
      joined?.dispose();
      if (emb) emb.dispose();
      if (rope) tf.dispose([rope.cos, rope.sin]);
      view.dispose();
    }
  }

  dispose(): void {
    this.blocks?.forEach(disposeBlock);
    this.blocks = null;
    disposeGlobals(this.g);
    this.peCache.clear();
    this.source.close();
  }

  /** Dumps the stream: `patch_embed.output` [B, L+N, D] (prefix null), else `<prefix>.hidden` / `<prefix>.encoder`. */
  private emitStream(nn: { view(s: unknown): { text: tf.Tensor3D; video: tf.Tensor3D } }, s: unknown, emit: (n: string, t: tf.Tensor) => void, prefix: string | null): void {
    const v = nn.view(s);
    try {
      if (prefix === null) tf.tidy(() => emit('patch_embed.output', tf.concat([v.text, v.video], 1)));
      else {
        emit(`${prefix}.hidden`, v.video);
        emit(`${prefix}.encoder`, v.text);
      }
    } finally {
      tf.dispose([v.text, v.video]);
    }
  }

  /** [(L_text + N)·D] position table for a token grid (cached per size), or null (RoPE models). */
  private positionTable(T: number, gh: number, gw: number, Lt: number): Float32Array | null {
    const key = `${T}x${gh}x${gw}x${Lt}`;
    if (!this.peCache.has(key)) this.peCache.set(key, positionTable(this.config, this.flavor, this.learnedPE, T, gh, gw, Lt));
    return this.peCache.get(key)!;
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
}
