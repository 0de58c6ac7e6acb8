// LoRA training network as CogVideoX-Fun builds it (cogvideox/utils/lora_utils.py: create_network + apply_to with the
// transformer as the root module, scripts/train_lora.py:811-821): EVERY nn.Linear of the transformer gets a LoRA
// (the v1.0 patch Conv2d is skipped: only 1×1 convs would be wrapped), named `lora_unet_` + "_" + the module path with
// '.' → '_' (hence the double underscore). Per layer (lora_utils.py:56-112):
//   lora_down [r, in] ~ kaiming_uniform(a=√5) = U(−1/√in, 1/√in), lora_up [out, r] = 0, alpha (default rank),
//   y = W x + b + multiplier · (alpha / r) · up(down(x)).
// Here the layer is applied as the weight W + multiplier·(alpha/r)·up·down inside the gradient tape (same function;
// the product is summed in another order).
import * as tf from '@tensorflow/tfjs-core';
import type { TrainingRandom } from './random.js';

export interface LoraTarget {
  /** Fun / kohya layer name, e.g. `lora_unet__transformer_blocks_0_attn1_to_q`. */
  readonly name: string;
  /** The module path in the checkpoint, e.g. `transformer_blocks.0.attn1.to_q` (its weight is `<module>.weight`). */
  readonly module: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

// Linear layers of CogVideoXTransformer3DModel in module registration order (cogvideox/models/transformer3d.py:386-445;
// diffusers Attention / FeedForward / TimestepEmbedding / CogVideoXLayerNormZero / AdaLayerNorm), which is the order
// create_network visits them and the order of network.parameters().
const TOP_BEFORE = ['patch_embed.proj', 'patch_embed.text_proj', 'time_embedding.linear_1', 'time_embedding.linear_2', 'ofs_embedding.linear_1', 'ofs_embedding.linear_2'];
const BLOCK = ['norm1.linear', 'attn1.to_q', 'attn1.to_k', 'attn1.to_v', 'attn1.to_out.0', 'norm2.linear', 'ff.net.0.proj', 'ff.net.2'];
const TOP_AFTER = ['norm_out.linear', 'proj_out'];

/** The LoRA targets of a transformer checkpoint, from its tensor names and shapes. */
export function loraTargets(shapes: ReadonlyMap<string, readonly number[]>): LoraTarget[] {
  const linear = (module: string): LoraTarget | null => {
    const s = shapes.get(`${module}.weight`);
    if (!s || s.length !== 2) return null; // absent, or the v1.0 patch Conv2d (4-D): not wrapped
    return { name: `lora_unet__${module.replace(/\./g, '_')}`, module, inFeatures: s[1]!, outFeatures: s[0]! };
  };
  const out: LoraTarget[] = [];
  const push = (m: string) => {
    const t = linear(m);
    if (t) out.push(t);
  };
  TOP_BEFORE.forEach(push);
  for (let i = 0; shapes.has(`transformer_blocks.${i}.norm1.linear.weight`); i++) BLOCK.forEach((m) => push(`transformer_blocks.${i}.${m}`));
  TOP_AFTER.forEach(push);
  // anything else 2-D named `.weight` is a Linear this table does not know: refuse rather than silently skip it
  const known = new Set(out.map((t) => `${t.module}.weight`));
  const unknown = [...shapes].filter(([k, s]) => k.endsWith('.weight') && s.length === 2 && !known.has(k)).map(([k]) => k);
  if (unknown.length) throw new Error(`LoRA: unexpected linear layers in the transformer: ${unknown.slice(0, 5).join(', ')}`);
  if (!out.some((t) => t.module.startsWith('transformer_blocks.'))) throw new Error('LoRA: the checkpoint has no transformer_blocks.*');
  return out;
}

export interface LoraOptions {
  rank: number;
  /** network_alpha; Fun: `alpha = rank if alpha is None or alpha == 0` */
  alpha?: number | null;
  multiplier?: number;
}

/** LoRA factors for every target, host float32, named as Fun's state_dict (`<name>.lora_down.weight`, …). */
export class LoraNetwork {
  readonly rank: number;
  readonly alpha: number;
  readonly multiplier: number;
  readonly params = new Map<string, Float32Array>();
  private readonly byWeight = new Map<string, LoraTarget>();

  constructor(readonly targets: readonly LoraTarget[], o: LoraOptions) {
    if (!Number.isInteger(o.rank) || o.rank <= 0) throw new Error(`--rank must be a positive integer, got ${o.rank}`);
    this.rank = o.rank;
    this.alpha = o.alpha === null || o.alpha === undefined || o.alpha === 0 ? o.rank : o.alpha;
    if (!Number.isFinite(this.alpha)) throw new Error(`--network-alpha must be a number, got ${o.alpha}`);
    this.multiplier = o.multiplier ?? 1;
    for (const t of targets) {
      this.params.set(`${t.name}.lora_down.weight`, new Float32Array(this.rank * t.inFeatures));
      this.params.set(`${t.name}.lora_up.weight`, new Float32Array(t.outFeatures * this.rank));
      this.byWeight.set(`${t.module}.weight`, t);
    }
  }

  /** alpha / rank (LoRAModule.scale). */
  get scale(): number {
    return this.alpha / this.rank;
  }

  /** Trainable tensor names in network.parameters() order (per layer: lora_down, lora_up). */
  parameterNames(): string[] {
    return [...this.params.keys()];
  }

  shapeOf(name: string): [number, number] {
    const dot = name.indexOf('.');
    const t = this.targets.find((x) => x.name === name.slice(0, dot));
    if (!t) throw new Error(`LoRA: no layer for "${name}"`);
    return name.endsWith('lora_down.weight') ? [this.rank, t.inFeatures] : [t.outFeatures, this.rank];
  }

  /** lora_down ~ U(−1/√in, 1/√in) (kaiming_uniform_ with a = √5), lora_up = 0, from our draw source. */
  initialize(rng: TrainingRandom): void {
    for (const t of this.targets) {
      const bound = 1 / Math.sqrt(t.inFeatures);
      const down = this.params.get(`${t.name}.lora_down.weight`)!;
      for (let i = 0; i < down.length; i++) down[i] = Math.fround((2 * rng.pyRandom() - 1) * bound);
      this.params.get(`${t.name}.lora_up.weight`)!.fill(0);
    }
  }

  /** Copies given factors in (a resumed run, or a test's injected initialisation). */
  load(values: ReadonlyMap<string, Float32Array>): void {
    for (const [k, v] of this.params) {
      const src = values.get(k);
      if (!src) throw new Error(`LoRA: missing "${k}"`);
      if (src.length !== v.length) throw new Error(`LoRA: "${k}" has ${src.length} values, expected ${v.length}`);
      v.set(src);
    }
  }

  /** The target of a checkpoint weight name, if it has a LoRA. */
  targetOf(weightName: string): LoraTarget | undefined {
    return this.byWeight.get(weightName);
  }

  /**
   * W + multiplier·scale·(up·down) for one weight, with `down`/`up` the tape's variables (so gradients flow to them).
   * `weight` is the frozen base [out, in].
   */
  effectiveWeight(weight: tf.Tensor2D, down: tf.Tensor, up: tf.Tensor): tf.Tensor2D {
    const s = Math.fround(this.multiplier * this.scale);
    // The tape would keep `weight` (tf.add saves both inputs) until the backward pass: a second copy of every wrapped
    // weight. It is a constant here, so the gradient is written out (the tape's own: d(s·up·down) = s·dy, then
    // matMul's) and only the factors are kept.
    const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [d, u, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([d, u]);
      return {
        value: tf.add(weight, tf.mul(tf.matMul(u as tf.Tensor2D, d as tf.Tensor2D), s)),
        gradFunc: (dy: tf.Tensor, [d2, u2]: tf.Tensor[]) => {
          const grads = tf.tidy(() => {
            const g = tf.mul(dy, s) as tf.Tensor2D;
            return [tf.matMul(u2 as tf.Tensor2D, g, true, false), tf.matMul(g, d2 as tf.Tensor2D, false, true)];
          });
          // dy, the gradient of W + ΔW (a weight-sized tensor), has no other use once this node is done, but the tape
          // keeps every gradient until the whole backward pass ends (tfjs-core 4.22 dist/tape.js
          // backpropagateGradients): freed here, or every wrapped weight's gradient would be alive at once
          dy.dispose();
          return grads;
        },
      };
    });
    return op(down, up) as tf.Tensor2D;
  }
}
