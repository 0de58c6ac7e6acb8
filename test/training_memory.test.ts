// The training memory plan (src/training/memory.ts) on Fun-2b-InP's real config, from the config alone (the folder
// holds no weights: nothing is loaded): gradient checkpointing counts one block plus the boundaries, and a run that
// will not fit is refused naming the option and the sizes, expected vs available.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkTrainingMemory, planTrainingMemory, type TrainingMemoryRequest } from '../src/training/memory.js';

const GiB = 2 ** 30;
// CogVideoX-Fun-V1.1-2b-InP transformer/config.json (the fields the plan reads; the rest are the defaults)
const FUN_2B = { num_attention_heads: 30, attention_head_dim: 64, num_layers: 30, in_channels: 33, out_channels: 16, patch_size: 2, text_embed_dim: 4096, time_embed_dim: 512, max_text_seq_length: 226 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'train-memory-'));
fs.mkdirSync(path.join(dir, 'transformer'));
fs.writeFileSync(path.join(dir, 'transformer', 'config.json'), JSON.stringify(FUN_2B));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// LoRA rank 128 at 256×256×13 frames: 4×32×32 latents, 226 + 1024 tokens
const lora: TrainingMemoryRequest = { modelDir: dir, mode: 'lora', rank: 128, batch: 1, latent: [4, 32, 32], useEma: false, inpaint: false };

describe('training memory plan', () => {
  it('gradient checkpointing keeps one block plus the boundaries', () => {
    const off = planTrainingMemory(lora, 24 * GiB);
    const on = planTrainingMemory({ ...lora, gradientCheckpointing: true }, 24 * GiB);
    const S = 226 + 4 * 16 * 16;
    const boundary = S * 1920 * 4;
    // every block's activations vs one block's + 30 boundaries
    expect(off.activations / 30 + 30 * boundary).toBeCloseTo(on.activations, -3);
    expect(on.weights).toBe(off.weights);
    expect(on.optimizer).toBe(off.optimizer);
    // LoRA reads the blocks per use: the weights outside them and one block's; LoRA's W + ΔW holds every Linear
    // (fp32 Fun-2b: 1.69e9 parameters, 1.68e9 of them in Linears)
    expect(on.weights).toBeLessThan(2 * GiB);
    expect(on.optimizer).toBeGreaterThan(6.7e9);
    // full fine-tuning keeps them resident
    expect(planTrainingMemory({ ...lora, mode: 'full' }, 24 * GiB).weights).toBeGreaterThan(6.7e9);
  });

  it('Fun-2b LoRA at 256×256×13 on 24 GiB: refused without --gradient-checkpointing (naming it), accepted with it', () => {
    expect(() => checkTrainingMemory(lora, 24 * GiB)).toThrow(/training needs about \d+\.\d GiB .* but this machine has 24\.0 GiB .*use --gradient-checkpointing \(about \d+\.\d GiB, fits\)/);
    expect(checkTrainingMemory({ ...lora, gradientCheckpointing: true }, 24 * GiB).total).toBeLessThan(0.9 * 24 * GiB);
  });

  it('full fine-tuning of Fun-2b does not fit 24 GiB even with checkpointing: refused, suggesting --mode lora', () => {
    const full = { ...lora, mode: 'full' as const, gradientCheckpointing: true };
    expect(() => checkTrainingMemory(full, 24 * GiB)).toThrow(/training needs about \d+\.\d GiB \(weights .*gradients \+ Adam state .* with gradient checkpointing.*\) but this machine has 24\.0 GiB .*use --mode lora/);
  });

  it('grows with the latent size and the batch', () => {
    const a = planTrainingMemory({ ...lora, gradientCheckpointing: true }).total;
    const b = planTrainingMemory({ ...lora, gradientCheckpointing: true, latent: [13, 60, 90] }).total;
    const c = planTrainingMemory({ ...lora, gradientCheckpointing: true, latent: [13, 60, 90], batch: 2 }).total;
    expect(b).toBeGreaterThan(a);
    expect(c).toBeGreaterThan(b);
  });
});
