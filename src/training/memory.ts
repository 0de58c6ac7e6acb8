// A training step's memory, estimated from the checkpoint's headers and the largest bucket before anything is loaded,
// so a run that cannot fit is refused up front with what to change. An upper-bound ESTIMATE, not a measurement:
//   weights (float32, resident)                       P·4
//   full fine-tune: host copy, gradient, Adam m and v  4·P_train·4 (+ EMA shadow P_train·4)
//   LoRA: the same for the factors, plus W + ΔW per wrapped Linear inside the tape (one copy of those weights)
//   activations kept by the tape (no gradient checkpointing: every block's): per block ≈ B·S·(40·D) floats for the
//   linear/norm/GELU intermediates (the 4·D feed-forward counted three times) + B·heads·S² floats for the attention
//   probabilities twice (softmax output and its gradient)
//   the VAE encoder (inpaint: the masked video is encoded every step): its float32 weights
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WeightStore } from '../weights/checkpoint.js';

export interface TrainingMemoryRequest {
  modelDir: string;
  mode: 'full' | 'lora';
  rank: number;
  batch: number;
  /** latent frames, height, width of the largest bucket */
  latent: [number, number, number];
  useEma: boolean;
  inpaint: boolean;
  /** --gradient-checkpointing: one block's activations plus the block boundaries instead of every block's */
  gradientCheckpointing?: boolean;
}

export interface TrainingMemoryPlan {
  weights: number;
  optimizer: number;
  activations: number;
  vae: number;
  total: number;
  limit: number;
}

function fp32Bytes(dir: string): { bytes: number; linear: number } {
  const store = WeightStore.open(dir);
  try {
    let bytes = 0;
    let linear = 0;
    for (const k of store.keys()) {
      const s = store.entry(k).shape;
      const n = s.reduce((a, b) => a * b, 1) * 4;
      bytes += n;
      if (k.endsWith('.weight') && s.length === 2) linear += n;
    }
    return { bytes, linear };
  } finally {
    store.close();
  }
}

export function planTrainingMemory(r: TrainingMemoryRequest, limit = os.totalmem()): TrainingMemoryPlan {
  const cfg = JSON.parse(fs.readFileSync(path.join(r.modelDir, 'transformer', 'config.json'), 'utf8')) as Record<string, number | null>;
  const D = cfg.num_attention_heads! * cfg.attention_head_dim!;
  const p = cfg.patch_size!;
  const pt = cfg.patch_size_t ?? 1;
  const [f, h, w] = r.latent;
  const S = 226 + Math.ceil(f / pt) * (h / p) * (w / p);
  const t = fp32Bytes(path.join(r.modelDir, 'transformer'));
  let optimizer: number;
  if (r.mode === 'full') optimizer = t.bytes * (4 + (r.useEma ? 1 : 0));
  else {
    const factors = (t.linear / 4 / D) * r.rank * 2 * 4; // ≈ rank·(in + out) per layer, in·out ≈ D·(in or out)
    optimizer = factors * 4 + t.linear;
  }
  const perBlock = r.batch * S * 40 * D * 4 + 2 * r.batch * cfg.num_attention_heads! * S * S * 4;
  const activations = perBlock * cfg.num_layers!;
  const vae = r.inpaint ? fp32Bytes(path.join(r.modelDir, 'vae')).bytes : 0;
  const total = t.bytes + optimizer + activations + vae;
  return { weights: t.bytes, optimizer, activations, vae, total, limit };
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;

/** Throws (before anything is loaded) when the estimate exceeds 90 % of RAM, naming the parts and what to change. */
export function checkTrainingMemory(r: TrainingMemoryRequest, limit = os.totalmem()): TrainingMemoryPlan {
  const plan = planTrainingMemory(r, limit);
  if (plan.total > 0.9 * limit) {
    throw new Error(
      `training needs about ${gib(plan.total)} (weights ${gib(plan.weights)}, ${r.mode === 'full' ? 'gradients + Adam state' : 'LoRA factors + merged weights'} ` +
        `${gib(plan.optimizer)}, activations ${gib(plan.activations)} for ${r.batch}×${r.latent.join('×')} latents, VAE ${gib(plan.vae)}) ` +
        `but this machine has ${gib(limit)}: use --mode lora, a smaller --video-sample-size / --video-sample-n-frames or --train-batch-size`,
    );
  }
  return plan;
}
