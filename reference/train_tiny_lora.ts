// Input of reference/gen_diffusers_lora.py: LoRAs trained by OUR trainer (`train()`, --lora-format diffusers) on the
// tiny CogVideoX-2b and CogVideoX1.5 test pipelines (test/fixtures/tiny-pipe-2b, tiny-pipe-1.5: sincos / RoPE, Conv2d /
// Linear patch embedding; --train-mode normal), 3 steps at a high learning rate so lora_B is far from zero; rank 4,
// alpha 2 (alpha ≠ rank, so the alpha/rank folding into lora_B matters).
// From the repository root:  npx tsx reference/train_tiny_lora.ts
// writes test/fixtures/training/diffusers_lora/<model>/pytorch_lora_weights.safetensors (+ the run's train_log.jsonl).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setBackend, shutdownBackend } from '../src/nn/backend.js';
import { train } from '../src/training/trainer.js';

const FIX = path.join(import.meta.dirname, '..', 'test', 'fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-lora-'));
try {
  await setBackend('tensorflow');
  fs.copyFileSync(path.join(FIX, 'media', 'clip.mp4'), path.join(tmp, 'clip.mp4'));
  fs.writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify([{ file_path: 'clip.mp4', text: 'a red ball rolls', type: 'video' }]));
  for (const name of ['tiny-pipe-2b', 'tiny-pipe-1.5']) {
    const OUT = path.join(FIX, 'training', 'diffusers_lora', name);
    const run = path.join(tmp, name);
    const r = await train({
      model: path.join(FIX, name),
      data: path.join(tmp, 'meta.json'),
      out: run,
      trainMode: 'normal',
      mode: 'lora',
      loraFormat: 'diffusers',
      rank: 4,
      networkAlpha: 2,
      learningRate: 2e-2,
      maxTrainSteps: 3,
      checkpointingSteps: 3,
      videoSampleSize: 64,
      imageSampleSize: 64,
      videoSampleNFrames: 9,
      videoSampleStride: 1,
      seed: 7,
    });
    fs.mkdirSync(OUT, { recursive: true });
    fs.copyFileSync(r.outputs.at(-1)!, path.join(OUT, 'pytorch_lora_weights.safetensors'));
    fs.copyFileSync(path.join(run, 'train_log.jsonl'), path.join(OUT, 'train_log.jsonl'));
    console.log(`${OUT}/pytorch_lora_weights.safetensors written (${r.step} steps)`);
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackend();
}
