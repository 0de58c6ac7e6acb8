// `train(options)`: CogVideoX-Fun's scripts/train.py (full / partial fine-tune) and train_lora.py (LoRA) loop on our
// building blocks. Order: check everything (options, metadata, every sample decodable and long enough, the checkpoint
// fits the mode) → cache T5 embeddings (captions and validation prompts) and VAE moments (T5 released before the
// transformer loads) → steps: text dropout, the batch size with --random-hw-adapt (collate.ts), inpaint masks per
// sample, prepareStep, forward/backward, clip, AdamW + LR schedule, EMA, checkpoint every --checkpointing-steps (and on
// abort), JSONL log line per step, validation videos every --validation-steps and --validation-epochs (validation.ts).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { CogVideoXTransformer3DModel } from '../models/transformer.js';
import { T5EncoderModel } from '../models/t5.js';
import { T5Tokenizer } from '../models/t5_tokenizer.js';
import { AutoencoderKLCogVideoX } from '../models/vae.js';
import { readConfig, readJson } from '../weights/checkpoint.js';
import { saveSafetensors, SafetensorsFile } from '../weights/safetensors.js';
import { latestCheckpoint, loadCheckpoint, pruneCheckpoints, saveCheckpoint, writeTransformerFolder, type TrainingState } from './checkpoint.js';
import { adaptiveMaxNorm, clipGradNorm, totalNorm } from './clip.js';
import { collatePlan, possibleShapes, type CollateExample, type CollateOptions } from './collate.js';
import { readMetadata, tokenTiling } from './data.js';
import { checkTrainingMemory } from './memory.js';
import { Ema } from './ema.js';
import { loraTargets, LoraNetwork } from './lora.js';
import { saveLora, type LoraFormat } from './lora_file.js';
import { yieldToEventLoop } from '../pipelines/common.js';
import { checkLrSchedule, groupLrs, type LrSchedule } from './lr_schedule.js';
import { getRandomMask, maskPixelValues, VIDEO_MASK_PROBS } from './masks.js';
import { AdamW, type ParamGroup } from './optimizer.js';
import { SeededRandom } from './random.js';
import { bucketPixels, cacheKey, componentId, decodeSample, DiskCache, encodeMoments, loadPixels, trainingEncodeOptions, type DecodedSample, type PreparedSample } from './samples.js';
import { NoiseSchedule } from './schedule.js';
import { disposePrepared, fullTrainables, lossAndGrads, loraTrainables, maskedVideoMoments, prepareStep, type Trainables } from './step.js';
import { TRAIN_DEFAULTS, type TrainOptions, type TrainProgress } from './options.js';
import { runValidation, VALIDATION_NEGATIVE_PROMPT, type TrainedWeights } from './validation.js';

export { TRAIN_DEFAULTS, type TrainOptions, type TrainProgress };

/** get_scheduler's arguments as train.py passes them (train.py:1206-1211). */
function lrSchedule(o: TrainOptions): LrSchedule {
  return { name: o.lrScheduler, warmupSteps: o.lrWarmupSteps, trainingSteps: o.maxTrainSteps, baseLr: o.learningRate };
}

function check(o: TrainOptions): void {
  const pos = (k: keyof TrainOptions, v: number, int = true) => {
    if (!Number.isFinite(v) || v <= 0 || (int && !Number.isInteger(v))) throw new Error(`--${kebab(k)} must be a positive ${int ? 'integer' : 'number'}, got ${v}`);
  };
  if (o.mode !== 'full' && o.mode !== 'lora') throw new Error(`--mode must be full or lora, got ${o.mode}`);
  if (o.trainMode !== 'inpaint' && o.trainMode !== 'normal') throw new Error(`--train-mode must be inpaint or normal, got ${o.trainMode}`);
  if (o.mode === 'lora') pos('rank', o.rank);
  pos('learningRate', o.learningRate, false);
  pos('trainBatchSize', o.trainBatchSize);
  pos('maxTrainSteps', o.maxTrainSteps);
  pos('checkpointingSteps', o.checkpointingSteps);
  if (o.checkpointsTotalLimit !== undefined) pos('checkpointsTotalLimit', o.checkpointsTotalLimit);
  pos('videoSampleNFrames', o.videoSampleNFrames);
  pos('videoSampleStride', o.videoSampleStride);
  if (o.lrWarmupSteps < 0 || !Number.isInteger(o.lrWarmupSteps)) throw new Error(`--lr-warmup-steps must be ≥ 0, got ${o.lrWarmupSteps}`);
  checkLrSchedule(lrSchedule(o));
  if (!(o.textDropRatio >= 0 && o.textDropRatio <= 1)) throw new Error(`--text-drop-ratio must be in [0, 1], got ${o.textDropRatio}`);
  if (o.videoMaskProbs !== undefined) {
    const p = o.videoMaskProbs;
    const sum = p.reduce((a, b) => a + b, 0);
    // np.random.choice accepts p summing to 1 within sqrt(eps); 1e-6 is tighter and still lets 0.05-style decimals through
    if (p.length !== 10 || p.some((x) => !(x >= 0)) || !(Math.abs(sum - 1) <= 1e-6)) {
      throw new Error(`--video-mask-probs: expected 10 probabilities ≥ 0 (mask types 0..9) summing to 1, got [${p.join(', ')}] (sum ${sum})`);
    }
  }
  if (o.maskKeptFrames !== undefined) {
    // k only enters mask types 2 (first k frames kept) and 3 (first and last k): a k that keeps every frame would
    // hand the model its own target as conditioning, and one that no drawn type uses would silently do nothing
    const k = o.maskKeptFrames;
    if (!(Number.isInteger(k) && k >= 1)) throw new Error(`--mask-kept-frames must be an integer ≥ 1, got ${k}`);
    const p = o.videoMaskProbs ?? VIDEO_MASK_PROBS;
    const n = o.videoSampleNFrames;
    if (o.trainMode !== 'inpaint') throw new Error(`--mask-kept-frames applies to --train-mode inpaint (mask types 2 and 3), got --train-mode ${o.trainMode}`);
    if (!(p[2]! > 0) && !(p[3]! > 0)) throw new Error(`--mask-kept-frames ${k} has no effect: --video-mask-probs gives mask types 2 and 3 probability 0`);
    if (p[2]! > 0 && k >= n) throw new Error(`--mask-kept-frames ${k} must be less than --video-sample-n-frames ${n}: mask type 2 would keep every frame`);
    if (p[3]! > 0 && 2 * k >= n) throw new Error(`--mask-kept-frames ${k}: mask type 3 keeps the first and last ${k} frames, so 2 × ${k} must be less than --video-sample-n-frames ${n}`);
  }
  pos('validationSteps', o.validationSteps);
  pos('validationEpochs', o.validationEpochs);
  pos('validationInferenceSteps', o.validationInferenceSteps);
  if (o.tokenizerMaxLength !== undefined) pos('tokenizerMaxLength', o.tokenizerMaxLength);
  if (o.validationPrompts?.some((p) => typeof p !== 'string' || p.trim() === '')) throw new Error('--validation-prompts: every prompt must be a non-empty string');
  for (const c of ['transformer', 'vae', 'text_encoder', 'tokenizer', 'scheduler']) {
    if (!fs.existsSync(path.join(o.model, c))) throw new Error(`--model ${o.model}: missing ${c}/ (a diffusers-layout CogVideoX(-Fun) folder)`);
  }
}

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export async function train(opts: Partial<TrainOptions> & Pick<TrainOptions, 'model' | 'data' | 'out'>): Promise<{ step: number; outputs: string[] }> {
  const o: TrainOptions = { ...TRAIN_DEFAULTS, ...opts };
  check(o);
  const tcfg = readConfig<Record<string, any>>(path.join(o.model, 'transformer'));
  const vcfg = readConfig<Record<string, any>>(path.join(o.model, 'vae'));
  const C = vcfg.latent_channels ?? 16;
  if (o.trainMode === 'inpaint' && tcfg.in_channels !== 2 * C + 1) {
    throw new Error(`--model ${o.model}: transformer in_channels ${tcfg.in_channels} is not a CogVideoX-Fun InP checkpoint (${2 * C + 1}); use --train-mode normal`);
  }
  // CogVideoXPatchEmbed adds its sincos / learned table to concat(text, video) (Fun transformer3d.py:150-160 slices
  // it at the text length and views the rest as the video grid; RoPE models have no table): another text length
  // fails there, so it is refused up front
  const textLength = o.tokenizerMaxLength ?? tcfg.max_text_seq_length ?? 226;
  if ((!tcfg.use_rotary_positional_embeddings || tcfg.use_learned_positional_embeddings) && textLength !== (tcfg.max_text_seq_length ?? 226)) {
    throw new Error(
      `--tokenizer-max-length ${textLength} must equal the transformer's max_text_seq_length ${tcfg.max_text_seq_length ?? 226} (${path.join(o.model, 'transformer', 'config.json')}): its position table covers exactly that many text tokens`,
    );
  }
  if (o.trainMode === 'normal' && tcfg.in_channels !== C) throw new Error(`--train-mode normal needs in_channels ${C}, the transformer has ${tcfg.in_channels}`);
  const samples = readMetadata(o.data, o.dataDir);
  const schedule = new NoiseSchedule(readJson(path.join(o.model, 'scheduler', 'scheduler_config.json')) as Record<string, unknown>);
  fs.mkdirSync(o.out, { recursive: true });
  const resumeDir = o.resumeFromCheckpoint === 'latest' ? latestCheckpoint(o.out) : (o.resumeFromCheckpoint ?? null);
  if (o.resumeFromCheckpoint && o.resumeFromCheckpoint !== 'latest' && !fs.existsSync(path.join(o.resumeFromCheckpoint, 'state.json'))) {
    throw new Error(`--resume-from-checkpoint ${o.resumeFromCheckpoint}: not a training checkpoint (no state.json)`);
  }
  const log = (line: Record<string, unknown>) => fs.appendFileSync(path.join(o.out, 'train_log.jsonl'), JSON.stringify(line) + '\n');
  const say = o.onMessage ?? (() => {});

  // ---- cache: pixels (all decoded and checked before any model runs), T5, VAE
  const sampleOpts = {
    videoSampleSize: o.videoSampleSize,
    imageSampleSize: o.imageSampleSize,
    videoSampleNFrames: o.videoSampleNFrames,
    videoSampleStride: o.videoSampleStride,
    temporalCompression: vcfg.temporal_compression_ratio ?? 4,
    patchSizeT: tcfg.patch_size_t ?? null,
  };
  const dataRng = new SeededRandom(o.seed + 1);
  const collateOpts: CollateOptions = {
    ...sampleOpts,
    tokenSampleSize: o.tokenSampleSize,
    randomHwAdapt: o.randomHwAdapt,
    trainingWithVideoTokenLength: o.trainingWithVideoTokenLength,
  };
  const pixels: { pixels: Float32Array; shape: [number, number, number] }[] = [];
  // what collate_fn sees of each sample (its frames after resize_frame) and the frames drawn, to re-decode the same
  // clip when --random-hw-adapt sizes a batch (the decoded frames are not kept)
  const raw: (CollateExample & { indices: number[] | null })[] = [];
  for (const s of samples) {
    const p = await loadPixels(s, sampleOpts, dataRng);
    const f0 = p.decoded.frames[0]!;
    raw.push({ type: s.type, frames: p.decoded.frames.length, height: f0.height, width: f0.width, indices: p.decoded.indices });
    pixels.push({ pixels: p.pixels, shape: p.shape });
  }
  // refuse a run that will not fit before any model is loaded (estimate from headers and the largest bucket; with
  // --random-hw-adapt, the largest size a batch can be given)
  const sp = vcfg.block_out_channels ? 2 ** (vcfg.block_out_channels.length - 1) : 8;
  const shapesOf = (i: number): [number, number, number][] => (o.randomHwAdapt ? possibleShapes(raw[i]!, collateOpts) : [pixels[i]!.shape]);
  const largest = pixels
    .flatMap((_, i) => shapesOf(i))
    .map((s) => [Math.floor((s[0] - 1) / sampleOpts.temporalCompression) + 1, s[1] / sp, s[2] / sp] as [number, number, number])
    .reduce((a, b) => (a[0] * a[1] * a[2] >= b[0] * b[1] * b[2] ? a : b));
  checkTrainingMemory(
    { modelDir: o.model, mode: o.mode, rank: o.rank, batch: o.trainBatchSize, latent: largest, useEma: o.useEma, inpaint: o.trainMode === 'inpaint', gradientCheckpointing: o.gradientCheckpointing },
    o.memoryLimitBytes,
  );
  /** The VAE moments of an all −1 (fully masked) video, per pixel shape (maskedVideoMoments). */
  const blankMoments = new Map<string, tf.Tensor5D>();
  const cache = new DiskCache(o.cacheDir ?? path.join(o.out, 'cache'));
  const t5Id = componentId(path.join(o.model, 'text_encoder'));
  // 226 keeps the key of caches written before --tokenizer-max-length existed
  const t5Key = (t: string) => (textLength === 226 ? cacheKey(t5Id, t) : cacheKey(t5Id, t, String(textLength)));
  const validationPrompts = o.validationPrompts ?? [];
  const texts = [...new Set([...samples.map((s) => s.text), '', ...(validationPrompts.length ? [...validationPrompts, VALIDATION_NEGATIVE_PROMPT] : [])])];
  const embeds = new Map<string, { data: Float32Array; shape: number[] }>();
  const missing = texts.filter((t) => {
    const hit = cache.get('t5', t5Key(t));
    if (hit) embeds.set(t, hit.get('embeds')!);
    return !hit;
  });
  if (missing.length) {
    say(`encoding ${missing.length} caption(s) with T5`);
    const tok = await T5Tokenizer.fromPretrained(path.join(o.model, 'tokenizer'));
    const enc = await T5EncoderModel.fromPretrained(path.join(o.model, 'text_encoder'));
    for (const t of missing) {
      const e = enc.forward(tok.call([t], { maxLength: textLength }).inputIds);
      const v = { data: Float32Array.from(e.dataSync() as Float32Array), shape: e.shape.slice(1) };
      e.dispose();
      cache.put('t5', t5Key(t), { embeds: v });
      embeds.set(t, v);
    }
    enc.dispose();
  }
  const vae = await AutoencoderKLCogVideoX.fromPretrained(path.join(o.model, 'vae'));
  const vaeId = componentId(path.join(o.model, 'vae'));
  // keyed by the VAE and the exact pixels it encodes (so the clip drawn, the bucket and the file's content all count)
  let encoded = 0; // VAE encodings made (not from the cache), for the progress message
  const momentsOf = (px: Float32Array, shape: [number, number, number]): { data: Float32Array; shape: number[] } => {
    const key = cacheKey(vaeId, createHash('sha256').update(new Uint8Array(px.buffer, px.byteOffset, px.byteLength)).digest('hex'), shape.join('x'));
    let m = cache.get('vae', key)?.get('moments') ?? null;
    if (!m) {
      encoded++;
      m = encodeMoments(vae, px, shape);
      cache.put('vae', key, { moments: m });
    }
    return m;
  };
  let lastSay = Date.now();
  const prepared: PreparedSample[] = samples.map((s, i) => {
    const p = pixels[i]!;
    if (!o.randomHwAdapt && Date.now() - lastSay > 30_000) {
      say(`VAE latents: ${i}/${samples.length} samples (${encoded} encoded, the rest from the cache)`);
      lastSay = Date.now();
    }
    // with --random-hw-adapt every batch is made and encoded at its own size (adaptBatch): only the bucket is kept
    if (o.randomHwAdapt) return { index: i, text: s.text, type: s.type, shape: p.shape, pixels: new Float32Array(0), moments: new Float32Array(0), momentsShape: [] };
    const m = momentsOf(p.pixels, p.shape);
    return { index: i, text: s.text, type: s.type, shape: p.shape, pixels: p.pixels, moments: m.data, momentsShape: m.shape };
  });
  pixels.length = 0; // held by `prepared` now (or dropped)
  // (the encoder reloads on use: --random-hw-adapt encodes each new batch size as it comes, then from the cache)
  if (o.trainMode !== 'inpaint') vae.release('both');

  // ---- model, trainables, optimiser
  // LoRA: every Linear runs as W + ΔW built from the checkpoint each step (lora.ts), so resident weights would be a
  // second full copy for nothing: blocks are read per use (the memory plan counts this).
  const model = await CogVideoXTransformer3DModel.fromPretrained(path.join(o.model, 'transformer'), { residency: o.mode === 'lora' ? 'disk' : 'resident' });
  const shapes = new Map<string, number[]>();
  for (const n of model.parameterNames()) {
    const p = model.readParameter(n);
    shapes.set(n, p.shape);
    p.dispose();
  }
  let trainables: Trainables;
  let host: Map<string, Float32Array>;
  let groups: ParamGroup[];
  let net: LoraNetwork | null = null;
  const rng = new SeededRandom(o.seed);
  if (o.mode === 'lora') {
    net = new LoraNetwork(loraTargets(shapes), { rank: o.rank, alpha: o.networkAlpha });
    net.initialize(rng);
    trainables = loraTrainables(net, (n) => model.readParameter(n));
    host = net.params;
    groups = [{ names: trainables.names, lr: o.learningRate }];
  } else {
    // train.py:840-971: substring match; group 0 at lr, group 1 (low-lr modules) at lr/2
    const main = [...shapes.keys()].filter((n) => o.trainableModules.some((m) => n.includes(m)));
    const low = [...shapes.keys()].filter((n) => !main.includes(n) && o.trainableModulesLowLearningRate.some((m) => n.includes(m)));
    if (main.length + low.length === 0) throw new Error(`--trainable-modules ${o.trainableModules.join(' ')} matches no parameter`);
    host = new Map();
    for (const n of [...main, ...low]) {
      const p = model.readParameter(n);
      host.set(n, Float32Array.from(p.dataSync() as Float32Array));
      p.dispose();
    }
    trainables = fullTrainables([...main, ...low], host, shapes);
    groups = [{ names: main, lr: o.learningRate }, { names: low, lr: o.learningRate / 2 }];
  }
  const opt = new AdamW(groups, { beta1: o.adamBeta1, beta2: o.adamBeta2, eps: o.adamEpsilon, weightDecay: o.adamWeightDecay });
  const ema = o.useEma && o.mode === 'full' ? new Ema(host) : null;
  let state: TrainingState = { step: 0, epoch: 0, position: 0, rng: rng.position, options: { mode: o.mode, rank: o.rank, seed: o.seed } };
  if (resumeDir) {
    state = loadCheckpoint(resumeDir, opt, ema);
    const w = path.join(resumeDir, 'trainables.safetensors');
    const f = SafetensorsFile.open(w);
    for (const [k, v] of host) v.set(f.read(k).toFloat32());
    f.close();
    say(`resumed from ${resumeDir} at step ${state.step}`);
  }
  const stepRng = new SeededRandom(o.seed, state.rng);
  let tokenizer: T5Tokenizer | null = null;

  // ---- outputs
  const outputs: string[] = [];
  const writeOutputs = (): string => {
    state.rng = stepRng.position;
    const written = saveCheckpoint(o.out, state, opt, ema, (dir) => {
      saveSafetensors(path.join(dir, 'trainables.safetensors'), Object.fromEntries([...host].map(([k, v]) => [k, { dtype: 'F32' as const, shape: shapes.get(k) ?? net!.shapeOf(k), data: v }])));
      if (net) {
        const file = path.join(o.out, `checkpoint-${state.step}.safetensors`);
        saveLora(file, net, o.loraFormat as LoraFormat, 'F32');
        outputs.push(file);
      } else {
        const weights = ema ? ema.shadow : host;
        const tensors = model.parameterNames().map((n): [string, { dtype: 'F32'; shape: number[]; data: Float32Array }] => {
          const own = weights.get(n);
          if (own) return [n, { dtype: 'F32', shape: shapes.get(n)!, data: own }];
          const p = model.readParameter(n);
          const data = Float32Array.from(p.dataSync() as Float32Array);
          p.dispose();
          return [n, { dtype: 'F32', shape: shapes.get(n)!, data }];
        });
        writeTransformerFolder(path.join(dir, 'transformer'), tcfg, tensors);
        outputs.push(path.join(o.out, `checkpoint-${state.step}`, 'transformer'));
      }
    });
    if (o.checkpointsTotalLimit !== undefined) {
      // the returned outputs name only what is still on disk
      pruneCheckpoints(o.out, o.checkpointsTotalLimit, state.step);
      outputs.splice(0, outputs.length, ...outputs.filter((f) => fs.existsSync(f)));
    }
    return written;
  };

  // ---- the loop: batches of one bucket (same F, H, W), a permutation per epoch
  const buckets = new Map<string, number[]>();
  for (const p of prepared) {
    const k = `${p.type}:${p.shape.join('x')}`;
    if (!buckets.has(k)) buckets.set(k, []);
    buckets.get(k)!.push(p.index);
  }
  if (![...buckets.values()].some((b) => b.length >= o.trainBatchSize)) {
    throw new Error(`--train-batch-size ${o.trainBatchSize}: no bucket holds that many samples (buckets: ${[...buckets].map(([k, v]) => `${k}×${v.length}`).join(', ')})`);
  }
  const sf = vcfg.scaling_factor ?? 1.15258426;
  let smoothed: number | null = null;
  const t0 = Date.now();
  const startStep = state.step;
  const pending = new Map<string, number[]>();
  // the models are freed however the loop ends (done, Ctrl-C, an error): train() keeps no tensor
  try {
    while (state.step < o.maxTrainSteps) {
      const perm = new SeededRandom(o.seed + 1000 + state.epoch).pySample(prepared.length, prepared.length);
      while (state.position < perm.length && state.step < o.maxTrainSteps) {
        // the steps are synchronous: without a turn of the event loop a signal handler (Ctrl-C, SIGTERM) never runs
        await yieldToEventLoop();
        if (o.signal?.aborted) {
          const dir = writeOutputs();
          say(`stopped: checkpoint written to ${dir}`);
          return { step: state.step, outputs };
        }
        // the position saved in a checkpoint is the next sample to read (a partial batch in progress is not kept)
        const p = prepared[perm[state.position++]!]!;
        const k = `${p.type}:${p.shape.join('x')}`;
        if (!pending.has(k)) pending.set(k, []);
        const b = pending.get(k)!;
        b.push(p.index);
        if (b.length < o.trainBatchSize) continue;
        pending.set(k, []);
        const started = Date.now();
        // --random-hw-adapt: collate_fn sizes the batch from the clips as the dataset hands them over, so they are
        // decoded again (the same frames; no draw)
        const decoded = o.randomHwAdapt ? await Promise.all(b.map((i) => decodeSample(samples[i]!, sampleOpts, raw[i]!.indices ?? []))) : null;
        const { loss, shape, seconds, gradNorm, maxGradNorm } = runStep(b.map((i) => prepared[i]!), decoded);
        state.step += 1;
        const lr = groupLrs(lrSchedule(o), state.step - 1, [o.learningRate])[0]!;
        smoothed = smoothed === null ? loss : 0.9 * smoothed + 0.1 * loss;
        const secPerStep = (Date.now() - t0) / 1000 / (state.step - startStep);
        const progress: TrainProgress = { step: state.step, maxSteps: o.maxTrainSteps, loss, smoothedLoss: smoothed, lr, secPerStep, etaSec: secPerStep * (o.maxTrainSteps - state.step) };
        log({ ...progress, gradNorm, maxGradNorm, stepSec: (Date.now() - started) / 1000, seconds, samples: b, shape });
        o.onProgress?.(progress);
        if (state.step % o.checkpointingSteps === 0 || state.step === o.maxTrainSteps) say(`checkpoint: ${writeOutputs()}`);
        // train.py:1681-1701 (after the checkpoint of the same step)
        if (validationPrompts.length && state.step % o.validationSteps === 0) await validate();
      }
      // train.py:1707-1722: after each epoch's loop (also the last, cut short by --max-train-steps)
      if (validationPrompts.length && state.epoch % o.validationEpochs === 0) await validate();
      if (state.position >= perm.length) {
        state.epoch += 1;
        state.position = 0;
      }
    }
  } finally {
    model.dispose();
    vae.dispose();
    tf.dispose([...blankMoments.values()]);
  }
  return { step: state.step, outputs };

  async function validate(): Promise<void> {
    tokenizer ??= await T5Tokenizer.fromPretrained(path.join(o.model, 'tokenizer'));
    const weights: TrainedWeights = net ? { kind: 'lora', net } : { kind: 'full', values: ema ? ema.shadow : host, shapes };
    try {
      const files = await runValidation(
        {
          modelDir: o.model,
          out: o.out,
          trainMode: o.trainMode,
          mode: o.mode,
          prompts: validationPrompts,
          embeds,
          videoSampleSize: o.videoSampleSize,
          videoSampleNFrames: o.videoSampleNFrames,
          temporalCompression: sampleOpts.temporalCompression,
          numInferenceSteps: o.validationInferenceSteps,
          seed: o.seed,
        },
        state.step,
        { model, weights, vae, tokenizer },
      );
      say(`validation: ${files.map((f) => path.relative(o.out, f)).join(', ')}`);
    } catch (e) {
      // log_validation catches everything and training goes on (train.py:260-265)
      say(`validation at step ${state.step} failed: ${(e as Error).message}`);
    } finally {
      vae.release('decoder');
    }
  }

  /**
   * collate_fn with --random-hw-adapt (train.py:1040-1159, src/training/collate.ts): one size for the batch, drawn
   * after the captions' dropout (the dataset's draws come first); each example at that size, cut to the common frame
   * count; its VAE moments (cached per size). The masks are drawn on the full-length clips (`maskFrames`).
   */
  function adaptBatch(batch: PreparedSample[], decoded: DecodedSample[]): { samples: PreparedSample[]; maskFrames: number[] } {
    const ex = decoded.map((d, j) => ({ type: batch[j]!.type, frames: d.frames.length, height: d.frames[0]!.height, width: d.frames[0]!.width }));
    const plan = collatePlan(ex, collateOpts, stepRng);
    const shape: [number, number, number] = [plan.frames, plan.geometry.size[0], plan.geometry.size[1]];
    return {
      maskFrames: ex.map((e) => e.frames),
      samples: batch.map((s, j) => {
        const px = bucketPixels(decoded[j]!.frames, plan.geometry, plan.frames);
        const m = momentsOf(px, shape);
        return { ...s, shape, pixels: px, moments: m.data, momentsShape: m.shape };
      }),
    };
  }

  /** One step; `seconds` says where its time went (inputs + VAE encoding of the masked video, forward + backward, clip + AdamW + EMA). */
  function runStep(
    batchIn: PreparedSample[],
    decoded: DecodedSample[] | null,
  ): { loss: number; shape: number[]; gradNorm: number; maxGradNorm: number; seconds: { prepare: number; forwardBackward: number; optimizer: number } } {
    const t0 = performance.now();
    // text dropout (ds.py:300-313: random.random() < text_drop_ratio → "") then the masks, per sample
    let texts = batchIn.map((s) => (stepRng.pyRandom() < o.textDropRatio ? '' : s.text));
    const adapted = decoded ? adaptBatch(batchIn, decoded) : null;
    const samples = adapted?.samples ?? batchIn;
    const [F, H, W] = samples[0]!.shape;
    // collate_fn draws each mask on the example's full-length clip (all frames the dataset sampled, before the 4k+1
    // cut), then cuts it to the batch's frames (train.py:1149-1159)
    const maskFrames = adapted?.maskFrames ?? samples.map((s) => raw[s.index]!.frames);
    const drawn = o.trainMode === 'inpaint' ? samples.map((_, j) => getRandomMask([maskFrames[j]!, 3, H, W], stepRng, o.videoMaskProbs, o.maskKeptFrames)) : [];
    let masks = drawn.map((m) => m.data.slice(0, F * H * W));
    // masks that repeat on a clip whose pixels are fixed (no --random-hw-adapt): types 2 and 3 keep the first (and
    // last) k ≤ 4 frames, so their masked video is one of a few per clip; its encoding goes to the disk cache —
    // unless the checkpoint adds reference noise to the masked video before encoding it (add_noise_in_inpaint_model,
    // train.py's add_noise_to_reference_video): then no two are the same pixels, and a cache entry would never be read
    let repeats = drawn.map((m) => !adapted && !tcfg.add_noise_in_inpaint_model && (m.type === 2 || m.type === 3));
    // --training-with-video-token-length (train.py:1339-1365): a batch short in tokens is tiled ×2 / ×4 in torch.tile
    // order; the copies share pixels, masks and captions, and get their own VAE samples, noise and timesteps
    const k = o.trainingWithVideoTokenLength ? tokenTiling(o.videoSampleNFrames, o.tokenSampleSize, F * H * W) : 1;
    const tile = <T,>(xs: T[]): T[] => Array.from({ length: k }, () => xs).flat();
    const batch = tile(samples);
    texts = tile(texts);
    masks = tile(masks);
    repeats = tile(repeats);
    const B = batch.length;
    const ms = batch[0]!.momentsShape;
    const moments = tf.tidy(() => tf.concat(batch.map((s) => tf.tensor<tf.Rank>(s.moments, ms)), 0)) as tf.Tensor5D;
    const e = embeds.get(texts[0]!)!;
    const prompt = tf.tensor(Float32Array.from(texts.flatMap((t) => Array.from(embeds.get(t)!.data))), [B, e.shape[0]!, e.shape[1]!]) as tf.Tensor3D;
    const per = 3 * F * H * W;
    const mpv = new Float32Array(B * per);
    masks.forEach((m, b) => mpv.set(maskPixelValues(batch[b]!.pixels, m, F, H, W), b * per));
    const p = prepareStep(
      {
        moments,
        promptEmbeds: prompt,
        inpaint:
          o.trainMode === 'inpaint'
            ? {
                masks,
                maskPixelValues: mpv,
                pixelShape: [F, H, W],
                encode: (pixels, pixelShape, flags) =>
                  maskedVideoMoments(
                    (px, shape) => {
                      const x = tf.tidy(() => tf.transpose(tf.tensor<tf.Rank>(px, Array.from(shape)), [0, 2, 1, 3, 4]) as tf.Tensor5D);
                      const d = vae.encode(x, trainingEncodeOptions(vae, x.shape));
                      x.dispose();
                      const m = d.moments.clone();
                      d.dispose();
                      return m;
                    },
                    pixels,
                    pixelShape,
                    flags,
                    blankMoments,
                    { rows: repeats, moments: (px, shape) => momentsOf(px, [shape[1]!, shape[3]!, shape[4]!]) },
                  ),
              }
            : undefined,
      },
      { schedule, scalingFactor: sf, addNoiseInInpaintModel: !!tcfg.add_noise_in_inpaint_model, rng: stepRng },
    );
    const t1 = performance.now();
    const r = lossAndGrads(model, p, prompt, trainables, { loss: { motionSubLoss: o.motionSubLoss, motionSubLossRatio: o.motionSubLossRatio }, gradientCheckpointing: o.gradientCheckpointing });
    disposePrepared(p);
    tf.dispose([moments, prompt]);
    const t2 = performance.now();
    // the norm before clipping (for the bound, the clip and the log: computed once) and the bound it is clipped to
    const gradNorm = totalNorm(r.grads);
    let maxNorm = o.maxGradNorm;
    if (o.mode === 'full') {
      maxNorm = adaptiveMaxNorm(gradNorm, state.step, {
        maxGradNorm: o.maxGradNorm,
        initialGradNormRatio: o.initialGradNormRatio,
        abnormalNormClipStart: o.abnormalNormClipStart,
      }).actual;
    }
    clipGradNorm(r.grads, maxNorm, gradNorm);
    opt.step(host, r.grads, groupLrs(lrSchedule(o), state.step, groups.map((g) => g.lr)));
    ema?.step(host);
    // the batch as trained: B (after token tiling), F, H, W of the pixels
    const sec = (a: number, b: number) => Math.round(b - a) / 1000;
    return { loss: r.loss, shape: [B, F, H, W], gradNorm, maxGradNorm: maxNorm, seconds: { prepare: sec(t0, t1), forwardBackward: sec(t1, t2), optimizer: sec(t2, performance.now()) } };
  }
}

export { LR_SCHEDULERS, type LrSchedulerName } from './lr_schedule.js';
