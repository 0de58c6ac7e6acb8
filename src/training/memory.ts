// A training step's memory, estimated from the checkpoint's config (and the VAE's safetensors headers) and the largest
// bucket before anything is loaded, so a run that cannot fit is refused up front with what to change. Terms, in
// float32 bytes, fitted to the peak RSS bench/train.ts measures (README, Training):
//   runtime                                              node + TensorFlow's libraries and pools: RUNTIME_BYTES
//   weights: full fine-tune resident, P·4; LoRA read per block (trainer.ts), the weights outside the blocks and one
//     block's                                            (P − P_blocks + P_blocks / layers)·4
//   full fine-tune: the trainables' host copy, their tape copies, the gradients (device and host), Adam m and v
//     (+ the EMA shadow)                                 FULL_COPIES·P_train·4 (+ P_train·4)
//   LoRA: W + ΔW of every wrapped Linear, alive until the backward pass (lora.ts keeps only the factors besides),
//     plus the factors' copies as above              P_linear·4 + FULL_COPIES·P_factors·4
//   activations kept for the backward pass, per block: B·(ACT_ROW·S·D + ACT_ATTN·heads·S²)·4 (the linear / norm /
//     GELU intermediates, and the attention probabilities with their gradient)
//       every block's without gradient checkpointing; with it, one block's (recomputed in the backward pass) plus
//       the block boundaries, B·S·D·4 per block (src/nn/checkpoint.ts)
//   the VAE encoder (inpaint: the masked video is encoded every step): its float32 weights
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WeightStore } from '../weights/checkpoint.js';
import { TRANSFORMER_DEFAULTS, transformerExpectedShapes, type TransformerConfig } from '../weights/transformer_names.js';

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

const GiB = 2 ** 30;
// Fitted to bench/train.ts (see the README's table); each rounded up.
const RUNTIME_BYTES = 1 * GiB;
const FULL_COPIES = 8;
const ACT_ROW = 132;
const ACT_ATTN = 6.6;

function vaeBytes(dir: string): number {
  const store = WeightStore.open(dir);
  try {
    let bytes = 0;
    for (const k of store.keys()) bytes += store.entry(k).shape.reduce((a, b) => a * b, 1) * 4;
    return bytes;
  } finally {
    store.close();
  }
}

export function planTrainingMemory(r: TrainingMemoryRequest, limit = os.totalmem()): TrainingMemoryPlan {
  const file = path.join(r.modelDir, 'transformer', 'config.json');
  const cfg = { ...TRANSFORMER_DEFAULTS, ...(JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<TransformerConfig>) } as TransformerConfig;
  const heads = cfg.num_attention_heads;
  const D = heads * cfg.attention_head_dim;
  const p = cfg.patch_size;
  const pt = cfg.patch_size_t ?? 1;
  const [f, h, w] = r.latent;
  const S = cfg.max_text_seq_length + Math.ceil(f / pt) * (h / p) * (w / p);
  let params = 0;
  let blocks = 0;
  let linear = 0;
  let factors = 0;
  for (const [name, s] of transformerExpectedShapes(cfg)) {
    const n = s.reduce((a, b) => a * b, 1);
    params += n;
    if (name.startsWith('transformer_blocks.')) blocks += n;
    if (name.endsWith('.weight') && s.length === 2) {
      linear += n;
      factors += r.rank * (s[0]! + s[1]!);
    }
  }
  const weights = RUNTIME_BYTES + (r.mode === 'full' ? params : params - blocks + blocks / cfg.num_layers) * 4;
  const optimizer = r.mode === 'full' ? params * 4 * (FULL_COPIES + (r.useEma ? 1 : 0)) : linear * 4 + factors * 4 * (FULL_COPIES + (r.useEma ? 1 : 0));
  const perBlock = r.batch * (ACT_ROW * S * D + ACT_ATTN * heads * S * S) * 4;
  const boundary = r.batch * S * D * 4;
  const activations = r.gradientCheckpointing ? perBlock + cfg.num_layers * boundary : perBlock * cfg.num_layers;
  const vae = r.inpaint ? vaeBytes(path.join(r.modelDir, 'vae')) : 0;
  return { weights, optimizer, activations, vae, total: weights + optimizer + activations + vae, limit };
}

const gib = (n: number) => `${(n / GiB).toFixed(1)} GiB`;

/** Throws (before anything is loaded) when the estimate exceeds 90 % of RAM, naming the parts and what to change. */
export function checkTrainingMemory(r: TrainingMemoryRequest, limit = os.totalmem()): TrainingMemoryPlan {
  const plan = planTrainingMemory(r, limit);
  if (plan.total <= 0.9 * limit) return plan;
  const hints: string[] = [];
  if (!r.gradientCheckpointing) {
    const ck = planTrainingMemory({ ...r, gradientCheckpointing: true }, limit);
    hints.push(`--gradient-checkpointing (about ${gib(ck.total)}${ck.total <= 0.9 * limit ? ', fits' : ''})`);
  }
  if (r.mode === 'full') hints.push('--mode lora');
  hints.push('a smaller --video-sample-size / --video-sample-n-frames or --train-batch-size');
  throw new Error(
    `training needs about ${gib(plan.total)} (weights ${gib(plan.weights)}, ${r.mode === 'full' ? 'gradients + Adam state' : 'LoRA factors + merged weights'} ` +
      `${gib(plan.optimizer)}, activations ${gib(plan.activations)} for ${r.batch}×${r.latent.join('×')} latents` +
      `${r.gradientCheckpointing ? ' with gradient checkpointing' : ''}, VAE ${gib(plan.vae)}) ` +
      `but this machine has ${gib(limit)} (90 % usable): use ${hints.join(', or ')}`,
  );
}
