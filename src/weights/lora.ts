// LoRA merging as CogVideoX-Fun does it (`cogvideox/utils/lora_utils.py` merge_lora / unmerge_lora).
//
// File: safetensors, keys `<layer>.lora_down.weight` [r, in], `<layer>.lora_up.weight` [out, r], optional
// `<layer>.alpha` (one value). Layer names are module paths with '.' → '_' behind a prefix: `lora_unet_…` for the
// transformer (Fun's trainer writes `lora_unet__transformer_blocks_0_attn1_to_q`: an empty root name gives the double
// underscore), `lora_te_…` for the text encoder.
// Merge:   W ← W + m·s·(up·down),  s = alpha/r (r = up.shape[1]) if the layer has `alpha`, else 1.0 (not 1/r).
// The diffusers / PEFT format (`transformer.<module path>.lora_A.weight` = down, `.lora_B.weight` = up, no alpha; what
// diffusers' CogVideoX LoRA training saves and `load_lora_weights` reads) is detected from the keys: the module path
// is given, the scale is 1 (PEFT's lora_alpha = r when the file has no alphas) and m is fuse_lora's lora_scale.
// Unmerge: W ← W − m·s·(up·down).
// Numerics follow what Fun's callers get (merge_lora's defaults device='cpu', dtype=float32, used by predict_*.py
// and the UI): up/down widened to fp32, the product in fp32, the scalar m·s (a double) rounded to fp32, W + s·P in
// fp32, then rounded once to the weight's stored dtype (torch's in-place `bf16 += fp32`), once per layer and call.
// Several merges apply in order, each rounding into the stored dtype, so merge/unmerge pairs leave the same residue
// as in Fun. The product's summation order is the backend's matMul's, so fp32 results can differ from torch's by an
// ulp or so.
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsError, SafetensorsFile, type TensorEntry } from './safetensors.js';
import { HostTensor } from './host_tensor.js';
import type { WeightPatch } from './residency.js';

export interface LoraSpec {
  /** A Fun LoRA `.safetensors` file. */
  path: string;
  /** Strength m (Fun's `lora_weight` / `multiplier`; predict scripts use 0.55). Default 1. */
  multiplier?: number;
  /**
   * Skip `lora_te_*` (text-encoder) layers, as merge_lora(transformer_only=True). Without it a file that has any is
   * refused: Fun's default merges them into the T5 encoder, which a transformer-only merge would silently leave out.
   */
  transformerOnly?: boolean;
}

/** One layer of a LoRA file: the tensors' entries and its scale. */
export interface LoraLayer {
  /** The name in the file, e.g. `lora_unet__transformer_blocks_0_attn1_to_q`. */
  readonly name: string;
  readonly up: TensorEntry;
  readonly down: TensorEntry;
  /** `alpha` as stored, or null when the layer has none. */
  readonly alpha: number | null;
  /** up.shape[1] */
  readonly rank: number;
  /** alpha / rank, or 1 without alpha (merge_lora's `alpha` variable). */
  readonly ratio: number;
  /** Shape of up·down as added to the weight: [out, in] (or [out, in, 1, 1] for 1×1 conv LoRAs). */
  readonly deltaShape: number[];
  /** diffusers format: the module path, taken as is (Fun names are resolved by merge_lora's walk instead). */
  readonly module?: string;
  /** diffusers format: a `text_encoder.` layer. */
  readonly textEncoder?: boolean;
}

/** The file's key format: Fun / kohya (`<layer>.lora_up.weight`) or diffusers / PEFT (`<prefix>.<module>.lora_B.weight`). */
export function loraFormatOf(keys: readonly string[]): 'fun' | 'diffusers' {
  return keys.length > 0 && keys.some((k) => /\.lora_[AB]\.weight$/.test(k)) ? 'diffusers' : 'fun';
}

const TRANSFORMER_PREFIX = 'lora_unet';
const TEXT_ENCODER_PREFIX = 'lora_te';
const ELEMS = new Set(['lora_up.weight', 'lora_down.weight', 'alpha']);
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/** A LoRA file, grouped into layers and checked; up/down data is read only when a weight is merged. */
export class LoraFile {
  private constructor(
    private readonly file: SafetensorsFile,
    /** Layers in the order merge_lora visits them (the file's tensor data order, as safetensors' load_file yields). */
    readonly layers: readonly LoraLayer[],
  ) {}

  get path(): string {
    return this.file.path;
  }

  static open(path: string): LoraFile {
    const file = SafetensorsFile.open(path);
    try {
      return new LoraFile(file, readLayers(file));
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** The layer's up [out, r] and down [r, in] widened to float32. */
  read(layer: LoraLayer): { up: Float32Array; down: Float32Array } {
    return { up: this.file.read(layer.up.name).toFloat32(), down: this.file.read(layer.down.name).toFloat32() };
  }

  close(): void {
    this.file.close();
  }
}

function readLayers(file: SafetensorsFile): LoraLayer[] {
  if (loraFormatOf(file.keys()) === 'diffusers') return readDiffusersLayers(file);
  const fail = (msg: string, tensor?: string) => new SafetensorsError('shape', file.path, msg, tensor);
  // merge_lora: `layer, elem = key.split('.', 1)`, grouped in load_file's order: data order with the pinned
  // safetensors 0.8 (older releases sort by name). It matters only when two layers of one file hit the same weight.
  const keys = file.keys().sort((a, b) => file.entry(a).begin - file.entry(b).begin);
  const groups = new Map<string, Map<string, TensorEntry>>();
  for (const key of keys) {
    const dot = key.indexOf('.');
    if (dot < 0) throw fail(`key "${key}" has no "." (expected <layer>.lora_up.weight / .lora_down.weight / .alpha)`, key);
    const layer = key.slice(0, dot);
    const elem = key.slice(dot + 1);
    if (!ELEMS.has(elem)) {
      // merge_lora would ignore it; a LoRA with other tensors (DoRA scales, LoCon mid weights) merges wrongly there.
      throw fail(`unsupported LoRA tensor "${elem}" (Fun's merge_lora reads only lora_up.weight, lora_down.weight, alpha)`, key);
    }
    let g = groups.get(layer);
    if (!g) groups.set(layer, (g = new Map()));
    g.set(elem, file.entry(key));
  }
  const layers: LoraLayer[] = [];
  for (const [name, g] of groups) {
    const up = g.get('lora_up.weight');
    const down = g.get('lora_down.weight');
    if (!up || !down) throw fail(`layer "${name}" lacks ${up ? 'lora_down.weight' : 'lora_up.weight'}`, name);
    for (const e of [up, down]) if (!FLOAT_DTYPES.has(e.dtype)) throw fail(`dtype ${e.dtype}, expected a float type`, e.name);
    const flat = (e: TensorEntry): number[] => {
      // 4-D LoRAs of 1×1 convs: merge_lora squeezes the trailing 1×1 (anything else fails in its torch.mm).
      if (e.shape.length === 2) return e.shape.slice();
      if (e.shape.length === 4 && e.shape[2] === 1 && e.shape[3] === 1) return e.shape.slice(0, 2);
      throw fail(`shape [${e.shape.join(', ')}]: expected 2-D (Linear) or [*, *, 1, 1] (1×1 conv)`, e.name);
    };
    const [out, rank] = flat(up) as [number, number];
    const [rDown, inp] = flat(down) as [number, number];
    if (up.shape.length !== down.shape.length) {
      throw fail(`lora_up is ${up.shape.length}-D but lora_down is ${down.shape.length}-D`, up.name);
    }
    if (rDown !== rank) throw fail(`rank mismatch: lora_up [${up.shape.join(', ')}] vs lora_down [${down.shape.join(', ')}]`, up.name);
    let alpha: number | null = null;
    const a = g.get('alpha');
    if (a) {
      const values = file.read(a.name).toFloat32();
      if (values.length !== 1) throw fail(`alpha must hold one value, got shape [${a.shape.join(', ')}]`, a.name);
      alpha = values[0]!;
    }
    layers.push({
      name,
      up,
      down,
      alpha,
      rank,
      ratio: alpha === null ? 1 : alpha / rank,
      deltaShape: up.shape.length === 4 ? [out, inp, 1, 1] : [out, inp],
    });
  }
  return layers;
}

const DIFFUSERS_ELEMS = /^(transformer|text_encoder)\.(.+)\.lora_([AB])\.weight$/;

/** diffusers / PEFT keys → layers (module path given; scale 1). */
function readDiffusersLayers(file: SafetensorsFile): LoraLayer[] {
  const fail = (msg: string, tensor?: string) => new SafetensorsError('shape', file.path, msg, tensor);
  const keys = file.keys().sort((a, b) => file.entry(a).begin - file.entry(b).begin);
  const groups = new Map<string, { a?: TensorEntry; b?: TensorEntry; te: boolean; module: string }>();
  for (const key of keys) {
    const m = DIFFUSERS_ELEMS.exec(key);
    if (!m) {
      throw fail(`key "${key}" is not <transformer|text_encoder>.<module>.lora_A.weight / .lora_B.weight (diffusers LoRA format)`, key);
    }
    const layer = `${m[1]}.${m[2]}`;
    let g = groups.get(layer);
    if (!g) groups.set(layer, (g = { te: m[1] === 'text_encoder', module: m[2]! }));
    if (m[3] === 'A') g.a = file.entry(key);
    else g.b = file.entry(key);
  }
  const layers: LoraLayer[] = [];
  for (const [name, g] of groups) {
    if (!g.a || !g.b) throw fail(`layer "${name}" lacks ${g.a ? 'lora_B.weight' : 'lora_A.weight'}`, name);
    for (const e of [g.a, g.b]) {
      if (!FLOAT_DTYPES.has(e.dtype)) throw fail(`dtype ${e.dtype}, expected a float type`, e.name);
      if (e.shape.length !== 2) throw fail(`shape [${e.shape.join(', ')}]: expected 2-D`, e.name);
    }
    const [out, rank] = g.b.shape as [number, number];
    const [rA, inp] = g.a.shape as [number, number];
    if (rA !== rank) throw fail(`rank mismatch: lora_B [${g.b.shape.join(', ')}] vs lora_A [${g.a.shape.join(', ')}]`, g.b.name);
    layers.push({ name, up: g.b, down: g.a, alpha: null, rank, ratio: 1, deltaShape: [out, inp], module: g.module, textEncoder: g.te });
  }
  return layers;
}

/** Whether merge_lora sends a layer to the text encoder (`"lora_te" in layer`). */
export function isTextEncoderLayer(layer: string): boolean {
  return layer.includes(TEXT_ENCODER_PREFIX);
}

/** The module tree implied by a checkpoint's tensor names (what merge_lora walks with `Module.__getattr__`). */
export class ModuleTree {
  private readonly children = new Map<string, Set<string>>();
  private readonly tensors = new Set<string>();

  constructor(tensorNames: Iterable<string>) {
    for (const name of tensorNames) {
      this.tensors.add(name);
      const parts = name.split('.');
      for (let k = 0; k < parts.length; k++) {
        const parent = parts.slice(0, k).join('.');
        let c = this.children.get(parent);
        if (!c) this.children.set(parent, (c = new Set()));
        c.add(parts[k]!);
      }
    }
  }

  child(path: string, name: string): string | null {
    return this.children.get(path)?.has(name) ? (path ? `${path}.${name}` : name) : null;
  }

  isTensor(path: string): boolean {
    return this.tensors.has(path);
  }
}

/**
 * The module path a transformer LoRA layer name refers to, found as merge_lora finds it: the part after the last
 * `lora_unet_` split on '_'; starting at the root, take one token and, while no child has that name, append the next
 * token with '_' (an empty token is dropped instead); on a match descend and start again with the next token.
 * merge_lora fails ('Error loading layer', then IndexError) when the tokens run out without a match; so does this.
 * Modules without tensors (Dropout, SiLU, Timesteps) are not in the tree: for CogVideoX no module name starts with
 * one of theirs plus '_', so the greedy walk reaches the same module.
 */
export function resolveLoraLayer(layer: string, tree: ModuleTree): string {
  const infos = layer.split(`${TRANSFORMER_PREFIX}_`).at(-1)!.split('_');
  let path = '';
  let temp = infos.shift()!;
  for (;;) {
    const next = tree.child(path, temp);
    if (next !== null) {
      path = next;
      if (infos.length === 0) return path;
      temp = infos.shift()!;
    } else {
      if (infos.length === 0) {
        const at = path ? `below "${path}"` : 'at the top level';
        throw new Error(`LoRA layer "${layer}" matches no module of the model (no module "${temp}" ${at})`);
      }
      temp = temp.length > 0 ? `${temp}_${infos.shift()}` : infos.shift()!;
    }
  }
}

/** What a LoRA merge needs to know of the checkpoint: tensor names and shapes. */
export interface TensorIndex {
  keys(): string[];
  entry(name: string): { shape: readonly number[] };
}

/**
 * One merge_lora (sign +1) or unmerge_lora (sign −1) call resolved against a checkpoint: every layer is matched to a
 * weight and shape-checked when this is created, before any data is read; `apply` then changes one weight.
 */
export class LoraMerge implements WeightPatch {
  /** Weight name → the file's layers that change it (normally one), in merge order. */
  private readonly byWeight = new Map<string, LoraLayer[]>();
  readonly targets: ReadonlySet<string>;
  /** Text-encoder layers of the file (skipped; only with transformerOnly). */
  readonly skippedLayers: readonly string[];

  private constructor(
    private readonly file: LoraFile,
    readonly multiplier: number,
    readonly sign: 1 | -1,
    checkpoint: TensorIndex,
    transformerOnly: boolean,
  ) {
    const tree = new ModuleTree(checkpoint.keys());
    const skipped: string[] = [];
    for (const layer of file.layers) {
      if (layer.textEncoder ?? isTextEncoderLayer(layer.name)) {
        skipped.push(layer.name);
        continue;
      }
      const where = `${file.path}: LoRA layer "${layer.name}"`;
      let module: string;
      try {
        module = layer.module ?? resolveLoraLayer(layer.name, tree);
      } catch (e) {
        throw new Error(`${file.path}: ${(e as Error).message}`);
      }
      if (tree.isTensor(module)) throw new Error(`${where} resolves to the tensor "${module}", not to a layer with a weight`);
      const weight = `${module}.weight`;
      if (!tree.isTensor(weight)) throw new Error(`${where} resolves to "${module}", which has no weight`);
      const shape = checkpoint.entry(weight).shape;
      if (shape.length !== layer.deltaShape.length || shape.some((d, i) => d !== layer.deltaShape[i])) {
        throw new Error(
          `${where}: up·down is [${layer.deltaShape.join(', ')}] (lora_up [${layer.up.shape.join(', ')}], ` +
            `lora_down [${layer.down.shape.join(', ')}]) but "${weight}" is [${shape.join(', ')}]`,
        );
      }
      let list = this.byWeight.get(weight);
      if (!list) this.byWeight.set(weight, (list = []));
      list.push(layer);
    }
    if (skipped.length && !transformerOnly) {
      throw new Error(
        `${file.path}: has ${skipped.length} text-encoder layers (lora_te_… / text_encoder.…, e.g. "${skipped[0]}"), which Fun's ` +
          `merge_lora merges into the T5 encoder; pass transformerOnly: true to merge only the transformer layers`,
      );
    }
    this.skippedLayers = skipped;
    this.targets = new Set(this.byWeight.keys());
  }

  /** Opens and checks a LoRA file against a checkpoint; sign −1 is unmerge_lora. */
  static open(spec: LoraSpec, checkpoint: TensorIndex, sign: 1 | -1 = 1): LoraMerge {
    const m = spec.multiplier ?? 1;
    if (!Number.isFinite(m)) throw new Error(`${spec.path}: LoRA multiplier must be a finite number, got ${spec.multiplier}`);
    const file = LoraFile.open(spec.path);
    try {
      return new LoraMerge(file, m, sign, checkpoint, spec.transformerOnly ?? false);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  get path(): string {
    return this.file.path;
  }

  /** The weight with this merge applied, in the same storage (bf16/fp16 rounded as torch rounds). */
  apply(name: string, weight: HostTensor): HostTensor {
    let w = weight;
    if (w.storage === 'i32' && this.byWeight.has(name)) throw new Error(`LoRA target "${name}" is an integer tensor`);
    // Each layer is one in-place `+=` in merge_lora: rounded to the stored dtype before the next.
    for (const layer of this.byWeight.get(name) ?? []) w = this.applyLayer(w, layer);
    return w;
  }

  /**
   * w + sign·fp32(scale·P) rounded to w's storage, P = up [out, r] · down [r, in] in fp32 on the backend. Row chunks
   * of ~1 MiB keep the three JS passes (widen, add, round) in cache; JS doubles give the correctly rounded fp32
   * product and sum (fp32 operands, one Float32Array store per operation).
   */
  private applyLayer(weight: HostTensor, layer: LoraLayer): HostTensor {
    const { up, down } = this.file.read(layer);
    // merge_lora: `multiplier * alpha` in Python doubles, then `scalar * fp32 tensor` rounds the scalar to fp32.
    const scale = Math.fround(this.multiplier * layer.ratio);
    const sign = this.sign;
    const [out, inp] = layer.deltaShape as [number, number];
    const r = layer.rank;
    const result = weight.storage === 'f32' ? new Float32Array(weight.size) : new Uint16Array(weight.size);
    const rowsPerChunk = Math.max(1, Math.floor(2 ** 18 / inp));
    const sum = new Float32Array(rowsPerChunk * inp);
    const d = tf.tensor2d(down, [r, inp]);
    try {
      for (let r0 = 0; r0 < out; r0 += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, out - r0);
        const p = tf.tidy(() => tf.matMul(tf.tensor2d(up.subarray(r0 * r, (r0 + rows) * r), [rows, r]), d));
        const product = p.dataSync() as Float32Array;
        p.dispose();
        const cur = weight.rows(r0, rows).toFloat32();
        const n = rows * inp;
        for (let j = 0; j < n; j++) sum[j] = cur[j]! + sign * Math.fround(scale * product[j]!);
        const chunk = sum.subarray(0, n);
        const at = r0 * inp;
        if (weight.storage === 'f32') result.set(chunk, at);
        else result.set(weight.storage === 'bf16' ? HostTensor.float32ToBf16(chunk) : HostTensor.float32ToF16(chunk), at);
      }
    } finally {
      d.dispose();
    }
    return new HostTensor(weight.shape.slice(), weight.storage, result);
  }

  close(): void {
    this.file.close();
  }
}
