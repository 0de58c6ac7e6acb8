// `train()` / `cogvideox-fun train` end to end on the bundled demo model (tiny random weights): a LoRA run writes
// Fun-format checkpoints that our --lora loader merges, a resumed run continues bit-exactly, the T5/VAE cache is reused,
// and bad input fails before the first step naming the file or option.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTrainArgs } from '../src/cli/train.js';
import { shutdownBackend } from '../src/nn/backend.js';
import { train } from '../src/training/trainer.js';
import { WeightStore } from '../src/weights/checkpoint.js';
import { LoraMerge } from '../src/weights/lora.js';
import { BACKENDS, FIXTURES, TINY_MODEL, useBackend } from './helpers.js';

const DEMO = TINY_MODEL; // tiny random weights (the former bundled stand-in)
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'train-e2e-'));
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackend();
});
fs.copyFileSync(path.join(FIXTURES, 'media', 'clip.mp4'), path.join(tmp, 'clip.mp4'));
const META = path.join(tmp, 'meta.json');
fs.writeFileSync(META, JSON.stringify([
  { file_path: 'clip.mp4', text: 'a red ball rolls', type: 'video' },
  { file_path: 'clip.mp4', text: 'a blue ball rolls', type: 'video' },
]));
const small = { videoSampleSize: 64, imageSampleSize: 64, videoSampleNFrames: 9, videoSampleStride: 1, rank: 4, networkAlpha: 2, learningRate: 1e-3 };
const losses = (out: string) => fs.readFileSync(path.join(out, 'train_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);

describe('train on the demo model', () => {
  it('LoRA: 4 steps, checkpoints every 2, resume from latest continues exactly, output merges with --lora', async () => {
    await useBackend(BACKENDS[0]!);
    const a = path.join(tmp, 'a');
    const r = await train({ model: DEMO, data: META, out: a, maxTrainSteps: 4, checkpointingSteps: 2, ...small });
    expect(r.outputs.map((f) => path.basename(f))).toEqual(['checkpoint-2.safetensors', 'checkpoint-4.safetensors']);
    const full = losses(a);
    expect(full.length).toBe(4);
    // each line also says how large the gradient was before clipping and the bound it was clipped to
    for (const l of fs.readFileSync(path.join(a, 'train_log.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x) as { gradNorm: number; maxGradNorm: number })) {
      expect(l.gradNorm).toBeGreaterThan(0);
      expect(Number.isFinite(l.gradNorm)).toBe(true);
      expect(l.maxGradNorm).toBe(1);
    }
    // interrupted at 2, resumed: same losses
    const b = path.join(tmp, 'b');
    await train({ model: DEMO, data: META, out: b, maxTrainSteps: 2, checkpointingSteps: 2, cacheDir: path.join(a, 'cache'), ...small });
    await train({ model: DEMO, data: META, out: b, maxTrainSteps: 4, checkpointingSteps: 2, resumeFromCheckpoint: 'latest', cacheDir: path.join(a, 'cache'), ...small });
    expect(losses(b)).toEqual(full);
    expect(fs.readdirSync(path.join(a, 'cache', 't5')).length).toBe(3); // two captions and ""
    // --checkpoints-total-limit 2 with a checkpoint every step: the newest two folders and their LoRA files stay
    const c = path.join(tmp, 'c');
    const rc = await train({ model: DEMO, data: META, out: c, maxTrainSteps: 4, checkpointingSteps: 1, checkpointsTotalLimit: 2, cacheDir: path.join(a, 'cache'), ...small });
    expect(rc.outputs.map((f) => path.basename(f))).toEqual(['checkpoint-3.safetensors', 'checkpoint-4.safetensors']);
    expect(fs.readdirSync(c).filter((n) => n.startsWith('checkpoint')).sort()).toEqual(['checkpoint-3', 'checkpoint-3.safetensors', 'checkpoint-4', 'checkpoint-4.safetensors']);
    expect(losses(c)).toEqual(full);
    // the LoRA loads into the transformer (Fun keys resolve, shapes match)
    const store = WeightStore.open(path.join(DEMO, 'transformer'));
    const m = LoraMerge.open({ path: r.outputs[1]!, multiplier: 1 }, store);
    expect(m.targets.size).toBe(5 + 8 * 2);
    m.close();
    store.close();
  }, 300_000);

  it('masked videos of repeating masks (types 2, 3) are encoded alone and cached: a run on the filled cache has the same losses', async () => {
    await useBackend(BACKENDS[0]!);
    const cacheDir = path.join(tmp, 'masked-cache');
    const opts = { model: DEMO, data: META, maxTrainSteps: 3, trainBatchSize: 2, videoMaskProbs: [0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0], cacheDir, ...small };
    // full masks only: the cache holds the clean clips' encodings
    await train({ ...opts, videoMaskProbs: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0], out: path.join(tmp, 'masked-0') });
    const clean = fs.readdirSync(path.join(cacheDir, 'vae')).length;
    await train({ ...opts, out: path.join(tmp, 'masked-1') });
    const written = fs.readdirSync(path.join(cacheDir, 'vae')).length;
    expect(written).toBeGreaterThan(clean);
    const mtimes = fs.readdirSync(path.join(cacheDir, 'vae')).map((f) => fs.statSync(path.join(cacheDir, 'vae', f)).mtimeMs);
    await train({ ...opts, out: path.join(tmp, 'masked-2') });
    expect(fs.readdirSync(path.join(cacheDir, 'vae')).length).toBe(written); // every masked video was a hit
    expect(fs.readdirSync(path.join(cacheDir, 'vae')).map((f) => fs.statSync(path.join(cacheDir, 'vae', f)).mtimeMs)).toEqual(mtimes);
    expect(losses(path.join(tmp, 'masked-2'))).toEqual(losses(path.join(tmp, 'masked-1')));
    // a checkpoint that adds reference noise to the masked video before encoding it (add_noise_in_inpaint_model, as
    // the bundled demo model): no two masked videos are the same pixels, so none is written to the cache
    const noisy = path.join(tmp, 'noisy-model');
    fs.mkdirSync(path.join(noisy, 'transformer'), { recursive: true });
    for (const c of ['vae', 'text_encoder', 'tokenizer', 'scheduler', 'model_index.json']) fs.symlinkSync(path.join(DEMO, c), path.join(noisy, c));
    for (const f of fs.readdirSync(path.join(DEMO, 'transformer')).filter((f) => f !== 'config.json')) {
      fs.symlinkSync(path.join(DEMO, 'transformer', f), path.join(noisy, 'transformer', f));
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(DEMO, 'transformer', 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.add_noise_in_inpaint_model).toBe(false);
    fs.writeFileSync(path.join(noisy, 'transformer', 'config.json'), JSON.stringify({ ...cfg, add_noise_in_inpaint_model: true }));
    const noisyCache = path.join(tmp, 'noisy-cache');
    await train({ ...opts, model: noisy, cacheDir: noisyCache, videoMaskProbs: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0], out: path.join(tmp, 'noisy-0') });
    const noisyClean = fs.readdirSync(path.join(noisyCache, 'vae')).length;
    await train({ ...opts, model: noisy, cacheDir: noisyCache, out: path.join(tmp, 'noisy-1') });
    expect(losses(path.join(tmp, 'noisy-1')).length).toBe(3);
    expect(fs.readdirSync(path.join(noisyCache, 'vae')).length).toBe(noisyClean);
  }, 300_000);

  it('full fine-tune: writes checkpoint-N/transformer in diffusers layout', async () => {
    await useBackend(BACKENDS[0]!);
    const out = path.join(tmp, 'full');
    const r = await train({ model: DEMO, data: META, out, mode: 'full', maxTrainSteps: 1, checkpointingSteps: 1, useEma: true, ...small });
    const dir = r.outputs[0]!;
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
    const a = WeightStore.open(dir);
    const b = WeightStore.open(path.join(DEMO, 'transformer'));
    expect(a.keys().sort()).toEqual(b.keys().filter((k) => k !== 'patch_embed.pos_embedding').sort());
    a.close();
    b.close();
  }, 300_000);

  it('bad input fails before the first step, naming the file or option', async () => {
    const out = path.join(tmp, 'bad');
    await expect(train({ model: DEMO, data: path.join(tmp, 'none.json'), out })).rejects.toThrow(/none.json: file not found/);
    fs.writeFileSync(path.join(tmp, 'empty.json'), '[]');
    await expect(train({ model: DEMO, data: path.join(tmp, 'empty.json'), out })).rejects.toThrow(/no samples/);
    fs.writeFileSync(path.join(tmp, 'notvideo.json'), JSON.stringify([{ file_path: 'meta.json', text: 'x', type: 'video' }]));
    await expect(train({ model: DEMO, data: path.join(tmp, 'notvideo.json'), out, ...small })).rejects.toThrow(/meta.json: cannot read the video/);
    await expect(train({ model: DEMO, data: META, out, ...small, videoSampleNFrames: 200, videoSampleStride: 50 })).rejects.toThrow(/too short/);
    await expect(train({ model: DEMO, data: META, out, ...small, tokenizerMaxLength: 32 })).rejects.toThrow(/--tokenizer-max-length 32 must equal the transformer's max_text_seq_length 226/);
    await expect(train({ model: DEMO, data: META, out, ...small, tokenizerMaxLength: 0 })).rejects.toThrow(/--tokenizer-max-length must be a positive integer, got 0/);
    await expect(train({ model: path.join(FIXTURES, 'tiny-pipe-2b'), data: META, out })).rejects.toThrow(/not a CogVideoX-Fun InP checkpoint/);
    await expect(train({ model: DEMO, data: META, out, rank: 0 })).rejects.toThrow(/--rank must be a positive integer/);
    await expect(train({ model: DEMO, data: META, out, checkpointsTotalLimit: 0 })).rejects.toThrow(/--checkpoints-total-limit must be a positive integer, got 0/);
    await expect(train({ model: DEMO, data: META, out, videoMaskProbs: [0.5, 0.5] })).rejects.toThrow(/--video-mask-probs: expected 10 probabilities .* got \[0.5, 0.5\] \(sum 1\)/);
    await expect(train({ model: DEMO, data: META, out, videoMaskProbs: [0, 0.6, 0.6, 0, 0, 0, 0, 0, 0, -0.2] })).rejects.toThrow(/--video-mask-probs: expected 10 probabilities ≥ 0/);
    await expect(train({ model: DEMO, data: META, out, videoMaskProbs: [0, 0.5, 0.4, 0, 0, 0, 0, 0, 0, 0] })).rejects.toThrow(/summing to 1, got .* \(sum 0.9\)/);
    await expect(train({ model: DEMO, data: META, out, maskKeptFrames: 0 })).rejects.toThrow(/--mask-kept-frames must be an integer ≥ 1, got 0/);
    await expect(train({ model: DEMO, data: META, out, ...small, maskKeptFrames: 9, videoMaskProbs: [0, 0, 1, 0, 0, 0, 0, 0, 0, 0] })).rejects.toThrow(/--mask-kept-frames 9 must be less than --video-sample-n-frames 9: mask type 2 would keep every frame/);
    await expect(train({ model: DEMO, data: META, out, ...small, maskKeptFrames: 5 })).rejects.toThrow(/--mask-kept-frames 5: mask type 3 keeps the first and last 5 frames, so 2 × 5 must be less than --video-sample-n-frames 9/);
    await expect(train({ model: DEMO, data: META, out, maskKeptFrames: 1, videoMaskProbs: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0] })).rejects.toThrow(/--mask-kept-frames 1 has no effect: --video-mask-probs gives mask types 2 and 3 probability 0/);
    await expect(train({ model: DEMO, data: META, out, maskKeptFrames: 1, trainMode: 'normal' })).rejects.toThrow(/--mask-kept-frames applies to --train-mode inpaint .* got --train-mode normal/);
    await expect(train({ model: DEMO, data: META, out, mode: 'full', memoryLimitBytes: 2 ** 20, ...small })).rejects.toThrow(/training needs about .* but this machine has 0.0 GiB .*: use .*--mode lora/);
    expect(fs.existsSync(path.join(out, 'train_log.jsonl'))).toBe(false);
  }, 120_000);

  // a session or machine shutting down sends SIGTERM: the run must keep its steps (checkpoint) like Ctrl-C does
  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('cogvideox-fun train stopped by %s after step 2: checkpoint of the steps done, exit %i', async (sig, code) => {
    const out = path.join(tmp, `sig-${sig}`);
    const bin = path.join(path.dirname(FIXTURES), '..', 'bin', 'cogvideox-fun.mjs');
    const args = ['train', '--model', DEMO, '--data', META, '--out', out, '--max-train-steps', '1000', '--checkpointing-steps', '1000'];
    const flags = ['--video-sample-size', '64', '--image-sample-size', '64', '--video-sample-n-frames', '9', '--video-sample-stride', '1', '--rank', '4'];
    const child = spawn(process.execPath, [bin, ...args, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (!sent && /step 2\/1000/.test(stderr)) {
        sent = true;
        child.kill(sig);
      }
    });
    // a run that does not stop fails here with its output, not by the test's timeout
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const exit = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(guard);
    expect(sent, stderr).toBe(true);
    expect(exit, stderr).toBe(code);
    const m = /stopped: checkpoint written to (\S+)/.exec(stderr);
    expect(m, stderr).not.toBeNull();
    const step = (JSON.parse(fs.readFileSync(path.join(m![1]!, 'state.json'), 'utf8')) as { step: number }).step;
    expect(step).toBeGreaterThanOrEqual(2);
    expect(step).toBeLessThan(1000);
    expect(losses(out).length).toBe(step);
  }, 240_000);

  it('command line: kebab-case options, usage errors name the flag', () => {
    const o = parseTrainArgs(['--model', 'm', '--data', 'd.csv', '--out', 'o', '--mode', 'full', '--lr-scheduler', 'constant_with_warmup', '--use-ema', '--trainable-modules', 'attn1', 'ff.']);
    expect(o?.mode).toBe('full');
    expect(o?.lrScheduler).toBe('constant_with_warmup');
    expect(o?.useEma).toBe(true);
    expect(o?.trainableModules).toEqual(['attn1', 'ff.']);
    expect(o?.gradientCheckpointing).toBe(false); // train.py's store_true
    expect(parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--gradient-checkpointing'])?.gradientCheckpointing).toBe(true);
    expect(parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--checkpoints-total-limit', '3'])?.checkpointsTotalLimit).toBe(3);
    expect(parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o'])?.checkpointsTotalLimit).toBeUndefined(); // keep all
    expect(() => parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--checkpoints-total-limit', '2.5'])).toThrow(/--checkpoints-total-limit takes an integer, got "2.5"/);
    expect(() => parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--rank', '0'])).toThrow(/--rank must be a positive integer/);
    expect(parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--lr-scheduler', 'cosine'])?.lrScheduler).toBe('cosine');
    expect(parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o'])?.videoMaskProbs).toBeUndefined(); // Fun's table
    expect(parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--video-mask-probs', '0,0.4,0.4,0.2,0,0,0,0,0,0'])?.videoMaskProbs).toEqual([0, 0.4, 0.4, 0.2, 0, 0, 0, 0, 0, 0]);
    expect(parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o'])?.maskKeptFrames).toBeUndefined(); // Fun's random k
    expect(parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--mask-kept-frames', '1'])?.maskKeptFrames).toBe(1);
    expect(() => parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--mask-kept-frames', '1.5'])).toThrow(/--mask-kept-frames takes an integer, got "1.5"/);
    expect(() => parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--video-mask-probs', '0,x'])).toThrow(/--video-mask-probs \(type 1\) takes a number, got "x"/);
    // train.py offers piecewise_constant's name nowhere (and passes no step_rules)
    expect(() => parseTrainArgs(['--model', 'm', '--data', 'd', '--out', 'o', '--lr-scheduler', 'piecewise_constant'])).toThrow(/--lr-scheduler takes linear \| cosine \| cosine_with_restarts \| polynomial \| constant \| constant_with_warmup, got "piecewise_constant"/);
    expect(() => parseTrainArgs(['--data', 'd', '--out', 'o'])).toThrow(/--model is required/);
    expect(parseTrainArgs(['--help'])).toBeNull();
  });
});
