// T5 v1.1 encoder (HF transformers models/t5/modeling_t5.py `T5EncoderModel`):
//   h = shared[ids]                      (no √d scaling)
//   per block: h += Attn(RMS(h)) with relative position bias from block 0, NO 1/√d scaling;
//              h += Wo · (gelu_tanh(Wi0·RMS(h)) ⊙ Wi1·RMS(h))
//   out = RMS_final(h)
import * as tf from '@tensorflow/tfjs-core';
import { attention } from '../nn/attention.js';
import { geluTanh } from '../nn/activations.js';
import { disposeLinear, linear, linearFromHost, type Linear } from '../nn/linear.js';
import { rmsNorm } from '../nn/norm.js';
import { readConfig, WeightStore } from '../weights/checkpoint.js';
import type { HostTensor } from '../weights/host_tensor.js';
import { chooseResidency, WeightSource, type Residency } from '../weights/residency.js';
import {
  t5BlockNames,
  t5ExpectedShapes,
  T5_EMBEDDING_NAMES,
  T5_FINAL_NORM,
  T5_RELATIVE_BIAS,
  type T5Config,
} from '../weights/t5_names.js';

export type { T5Config };

export interface T5LoadOptions {
  /** Where weights live between uses (see weights/residency.ts); 'auto' decides from sizes. Default 'auto'. */
  residency?: Residency | 'auto';
}

export interface T5ForwardOptions {
  /** [B, L] of 1 (attend) / 0 (ignore). The CogVideoX pipelines pass none: padding attends and is attended. */
  attentionMask?: ArrayLike<number>[] | tf.Tensor2D;
  /** Receives intermediate outputs ('embeddings', 'position_bias', 'block.{l}.output'); do not dispose them. */
  onOutput?: (name: string, t: tf.Tensor) => void;
  /** Per-block timings (weight materialisation vs compute; compute is synced to measure it). For benchmarks. */
  onProfile?: (p: { block: number; loadMs: number; computeMs: number }) => void;
}

interface T5Block {
  ln0: tf.Tensor1D;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  ln1: tf.Tensor1D;
  wi0: Linear;
  wi1: Linear;
  wo: Linear;
}

const T5_TYPICAL_ROWS = 2 * 226; // a CFG pair of prompts: picks the fast linear layout for few rows
const F32_MIN = -3.4028234663852886e38; // torch.finfo(float32).min, what HF adds at masked keys

/**
 * HF `_relative_position_bucket` (bidirectional) for r = key − query, with the large-distance branch in float32
 * exactly as torch computes it: trunc(f32(f32(ln f32(|r|/e)) / f32(ln(D/e))) · (n − e)).
 */
export function relativePositionBucket(r: number, numBuckets: number, maxDistance: number): number {
  const half = numBuckets / 2;
  let bucket = r > 0 ? half : 0;
  const a = Math.abs(r);
  const maxExact = half / 2;
  if (a < maxExact) return bucket + a;
  const f = Math.fround;
  const scaled = f(f(f(Math.log(f(a / maxExact))) / f(Math.log(maxDistance / maxExact))) * (half - maxExact));
  bucket += Math.min(maxExact + Math.trunc(scaled), half - 1);
  return bucket;
}

export class T5EncoderModel {
  private blocks: T5Block[] | null = null; // resident blocks
  private readonly embedding: HostTensor; // gathered on the host: never uploaded whole
  private readonly relBias: Float32Array; // [buckets, heads]
  private readonly finalNorm: tf.Tensor1D;

  private constructor(
    readonly config: T5Config,
    private readonly source: WeightSource,
  ) {
    const embName = T5_EMBEDDING_NAMES.find((n) => source.store.has(n));
    if (!embName) {
      throw new Error(`${source.store.location}: no token embedding (expected "${T5_EMBEDDING_NAMES.join('" or "')}")`);
    }
    this.embedding = source.store.read(embName);
    this.relBias = source.store.read(T5_RELATIVE_BIAS).toFloat32();
    this.finalNorm = tf.tensor1d(source.store.read(T5_FINAL_NORM).toFloat32());
    if (source.residency === 'resident') {
      this.blocks = Array.from({ length: config.num_layers }, (_, l) => this.materializeBlock(l));
    } else {
      source.preload(blockNameList(config));
    }
  }

  /** Loads a `text_encoder` folder: config.json + safetensors (single file or shards with an index). */
  static async fromPretrained(dir: string, opts: T5LoadOptions = {}): Promise<T5EncoderModel> {
    const config = readConfig<T5Config>(dir);
    validateConfig(config, dir);
    const store = WeightStore.open(dir);
    try {
      const shapes = t5ExpectedShapes(config);
      store.expect(shapes);
      const embName = T5_EMBEDDING_NAMES.find((n) => store.has(n));
      if (embName) {
        const s = store.entry(embName).shape;
        if (s.length !== 2 || s[1] !== config.d_model || s[0]! < config.vocab_size) {
          store.expect(new Map([[embName, [config.vocab_size, config.d_model]]]));
        }
      }
      let fp32Bytes = 0;
      for (const s of shapes.values()) fp32Bytes += 4 * s.reduce((a, b) => a * b, 1);
      const residency = !opts.residency || opts.residency === 'auto' ? chooseResidency(fp32Bytes, store.storedBytes) : opts.residency;
      return new T5EncoderModel(config, new WeightSource(store, residency));
    } catch (e) {
      store.close();
      throw e;
    }
  }

  get residency(): Residency {
    return this.source.residency;
  }

  /** ids [B, L] → last hidden state [B, L, d_model] (float32). */
  forward(inputIds: ArrayLike<number>[] | tf.Tensor2D, opts: T5ForwardOptions = {}): tf.Tensor3D {
    const run = this.layers(inputIds, opts);
    let r = run.next();
    while (!r.done) r = run.next();
    return r.value;
  }

  /**
   * `forward`, yielding to the event loop after every block so that `signal` (a timer, a closed socket) can stop it:
   * on abort everything made so far is freed and the signal's reason thrown.
   */
  async forwardAsync(inputIds: ArrayLike<number>[] | tf.Tensor2D, opts: T5ForwardOptions & { signal?: AbortSignal } = {}): Promise<tf.Tensor3D> {
    opts.signal?.throwIfAborted();
    const run = this.layers(inputIds, opts);
    let r = run.next();
    while (!r.done) {
      await new Promise((resolve) => setImmediate(resolve));
      if (opts.signal?.aborted) {
        run.return(undefined as never); // runs the generator's finally: frees the hidden state and the bias
        opts.signal.throwIfAborted();
      }
      r = run.next();
    }
    return r.value;
  }

  /** The encoder, pausing after each block (see forward / forwardAsync). */
  private *layers(inputIds: ArrayLike<number>[] | tf.Tensor2D, opts: T5ForwardOptions): Generator<void, tf.Tensor3D> {
    const ids = toRows(inputIds, 'inputIds');
    const B = ids.length;
    const L = ids[0]!.length;
    if (L === 0 || ids.some((r) => r.length !== L)) throw new Error(`inputIds must be a non-empty [B, L] array of equal-length rows`);
    const vocab = this.embedding.shape[0]!;
    for (const row of ids) {
      for (const id of row) {
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`token id ${id} outside the vocabulary [0, ${vocab})`);
      }
    }
    const mask = opts.attentionMask === undefined ? null : toRows(opts.attentionMask, 'attentionMask');
    if (mask && (mask.length !== B || mask.some((r) => r.length !== L))) {
      throw new Error(`attentionMask must have the shape of inputIds [${B}, ${L}]`);
    }

    let h = this.embed(ids);
    opts.onOutput?.('embeddings', h);
    const bias = this.positionBias(L, mask);
    opts.onOutput?.('position_bias', bias);
    try {
      for (let l = 0; l < this.config.num_layers; l++) {
        const t0 = performance.now();
        const block = this.blocks ? this.blocks[l]! : this.materializeBlock(l);
        const t1 = performance.now();
        try {
          const next = this.block(h, block, bias);
          h.dispose();
          h = next;
        } finally {
          if (!this.blocks) disposeBlock(block);
        }
        if (opts.onProfile) {
          h.dataSync();
          opts.onProfile({ block: l, loadMs: t1 - t0, computeMs: performance.now() - t1 });
        }
        opts.onOutput?.(`block.${l}.output`, h);
        yield;
      }
      return rmsNorm(h, this.finalNorm, this.config.layer_norm_epsilon) as tf.Tensor3D;
    } finally {
      h.dispose();
      bias.dispose();
    }
  }

  dispose(): void {
    this.blocks?.forEach(disposeBlock);
    this.blocks = null;
    this.finalNorm.dispose();
    this.source.close();
  }

  private block(h: tf.Tensor3D, w: T5Block, bias: tf.Tensor4D): tf.Tensor3D {
    const { num_heads: H, d_kv: dk, layer_norm_epsilon: eps } = this.config;
    const [B, L] = h.shape;
    return tf.tidy(() => {
      const n = rmsNorm(h, w.ln0, eps);
      const heads = (p: Linear) => tf.transpose(tf.reshape(linear(n, p), [B, L, H, dk]), [0, 2, 1, 3]) as tf.Tensor4D;
      const a = attention(heads(w.q), heads(w.k), heads(w.v), { bias });
      const merged = tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [B, L, H * dk]);
      const h1 = tf.add(h, linear(merged, w.o));
      const n1 = rmsNorm(h1, w.ln1, eps);
      const ff = linear(tf.mul(geluTanh(linear(n1, w.wi0)), linear(n1, w.wi1)), w.wo);
      return tf.add(h1, ff) as tf.Tensor3D;
    });
  }

  private embed(ids: number[][]): tf.Tensor3D {
    const D = this.config.d_model;
    const table = this.embedding;
    const out = new Float32Array(ids.length * ids[0]!.length * D);
    let o = 0;
    for (const row of ids) {
      for (const id of row) {
        out.set(table.rows(id, 1).toFloat32(), o);
        o += D;
      }
    }
    return tf.tensor3d(out, [ids.length, ids[0]!.length, D]);
  }

  /** [1 | B, H, L, L]: bias[h, q, k] = table[bucket(k − q), h], plus f32-min at masked keys. */
  private positionBias(L: number, mask: number[][] | null): tf.Tensor4D {
    const { num_heads: H, relative_attention_num_buckets: nb, relative_attention_max_distance: md } = this.config;
    const buckets = new Int32Array(2 * L - 1);
    for (let r = -(L - 1); r <= L - 1; r++) buckets[r + L - 1] = relativePositionBucket(r, nb, md);
    const rows = mask ? mask.length : 1;
    const out = new Float32Array(rows * H * L * L);
    for (let b = 0; b < rows; b++) {
      for (let h = 0; h < H; h++) {
        const base = (b * H + h) * L * L;
        for (let q = 0; q < L; q++) {
          for (let k = 0; k < L; k++) {
            let v = this.relBias[buckets[k - q + L - 1]! * H + h]!;
            if (mask && !mask[b]![k]) v += F32_MIN;
            out[base + q * L + k] = v;
          }
        }
      }
    }
    return tf.tensor4d(out, [rows, H, L, L]);
  }

  private materializeBlock(l: number): T5Block {
    const n = t5BlockNames(l);
    const g = (name: string) => this.source.get(name);
    const vec = (name: string) => tf.tensor1d(g(name).toFloat32());
    const lin = (name: string) => linearFromHost(g(name), null, { rows: T5_TYPICAL_ROWS });
    return {
      ln0: vec(n.ln0),
      q: lin(n.q),
      k: lin(n.k),
      v: lin(n.v),
      o: lin(n.o),
      ln1: vec(n.ln1),
      wi0: lin(n.wi0),
      wi1: lin(n.wi1),
      wo: lin(n.wo),
    };
  }
}

function blockNameList(c: T5Config): string[] {
  const names: string[] = [];
  for (let l = 0; l < c.num_layers; l++) names.push(...Object.values(t5BlockNames(l)));
  return names;
}

function disposeBlock(b: T5Block): void {
  b.ln0.dispose();
  b.ln1.dispose();
  for (const p of [b.q, b.k, b.v, b.o, b.wi0, b.wi1, b.wo]) disposeLinear(p);
}

function validateConfig(c: T5Config, dir: string): void {
  for (const key of ['vocab_size', 'd_model', 'd_kv', 'd_ff', 'num_layers', 'num_heads'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) throw new Error(`${dir}/config.json: "${key}" must be a positive integer`);
  }
  c.relative_attention_num_buckets ??= 32;
  c.relative_attention_max_distance ??= 128;
  c.layer_norm_epsilon ??= 1e-6;
  const act = c.dense_act_fn ?? (c.feed_forward_proj === 'gated-gelu' ? 'gelu_new' : c.feed_forward_proj);
  if (c.feed_forward_proj !== 'gated-gelu' || (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh')) {
    throw new Error(
      `${dir}/config.json: feed_forward_proj "${c.feed_forward_proj}" / dense_act_fn "${c.dense_act_fn}" is not supported ` +
        '(only T5 v1.1 "gated-gelu" with the tanh GELU, as CogVideoX uses)',
    );
  }
}

function toRows(x: ArrayLike<number>[] | tf.Tensor2D, what: string): number[][] {
  if (x instanceof tf.Tensor) {
    if (x.rank !== 2) throw new Error(`${what} must be rank 2 [B, L], got rank ${x.rank}`);
    return x.arraySync() as number[][];
  }
  if (!Array.isArray(x) || x.length === 0) throw new Error(`${what} must be a non-empty [B, L] array`);
  return x.map((r) => Array.from(r));
}
