// `cogvideox-fun train --model DIR --data META.json|csv --out DIR [...]`: CogVideoX-Fun's train.py / train_lora.py
// options in kebab-case (defaults: the scripts' argparse defaults). Every value is checked before anything is read;
// the library checks the data and the model before the first step. Ctrl-C (SIGINT) or SIGTERM writes a checkpoint and exits 130 / 143.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { setBackend, shutdownBackend } from '../nn/backend.js';
import { LR_SCHEDULERS, TRAIN_DEFAULTS, train, type TrainOptions } from '../training/trainer.js';
import { UsageError } from './errors.js';

export const TRAIN_USAGE = `Usage: cogvideox-fun train --model DIR --data META.json|META.csv --out DIR [options]

Fine-tunes a CogVideoX(-Fun) transformer as CogVideoX-Fun's scripts/train.py (--mode full) or train_lora.py
(--mode lora) do. The metadata lists {file_path, text, type: video|image}; T5 embeddings and VAE latents (and the
masked videos that repeat: mask types 2 and 3, without add_noise_in_inpaint_model) are computed once and cached in <out>/cache (or --cache-dir).

  --mode full|lora                 (lora)          --train-mode inpaint|normal  (inpaint)
  --rank N                         (128)           --network-alpha A            (64)
  --lora-format fun|diffusers      (fun)           --learning-rate LR           (1e-4)
  --lr-scheduler S                 (constant)      --lr-warmup-steps N          (500)
      S: constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial (to 1e-7); the decaying
      ones end at --max-train-steps (changing it on resume changes the curve, as in the original)
  --adam-weight-decay W            (1e-2)          --adam-epsilon E             (1e-8)
  --adam-beta1 B1 --adam-beta2 B2  (0.9, 0.999)    --max-grad-norm G            (1.0)
  --initial-grad-norm-ratio R      (5)             --abnormal-norm-clip-start N (1000)  (full: adaptive clip)
  --use-ema                                        --trainable-modules M [M…]   (.)
  --gradient-checkpointing         (blocks recomputed in the backward pass: less memory, ~1.5× the step time)
  --trainable-modules-low-learning-rate M [M…]     --train-batch-size N         (1)
  --max-train-steps N              (1000)          --checkpointing-steps N      (500)
  --checkpoints-total-limit N      (keep the newest N checkpoints; default all)
  --resume-from-checkpoint latest|DIR              --train-data-dir DIR
  --video-sample-size S            (512)           --image-sample-size S        (512)
  --video-sample-n-frames N        (17)            --video-sample-stride N      (4)
  --token-sample-size S            (512)           --training-with-video-token-length
  --random-hw-adapt                                --text-drop-ratio P          (0.1)
  --motion-sub-loss --motion-sub-loss-ratio R      --validation-prompts P [P…]  (sample/sample-STEP-I.gif)
  --video-mask-probs P0,…,P9       (ours; default Fun's 0.05,0.2,0.2,0.2,0.05,0.05,0.05,0.1,0.05,0.05: the inpaint
      mask types' probabilities, 1 = text to video, 2 = first frames kept, 3 = first and last kept)
  --mask-kept-frames K             (ours; default Fun's random 1–4: the frames types 2 and 3 keep at the start / at
      both ends; 1 = image to video and start + end images, where the caption alone says how the object moves)
  --validation-steps N             (2000)          --validation-epochs N        (5)
  --validation-inference-steps N   (50)            --tokenizer-max-length N     (the transformer's max_text_seq_length)
  --seed N                         (42)            --cache-dir DIR
  --backend tensorflow|wasm        --quiet         --debug
`;

const OPTIONS = {
  model: { type: 'string', short: 'm' },
  data: { type: 'string' },
  'train-data-dir': { type: 'string' },
  out: { type: 'string', short: 'o' },
  mode: { type: 'string' },
  'train-mode': { type: 'string' },
  rank: { type: 'string' },
  'network-alpha': { type: 'string' },
  'lora-format': { type: 'string' },
  'learning-rate': { type: 'string' },
  'lr-scheduler': { type: 'string' },
  'lr-warmup-steps': { type: 'string' },
  'adam-weight-decay': { type: 'string' },
  'adam-epsilon': { type: 'string' },
  'adam-beta1': { type: 'string' },
  'adam-beta2': { type: 'string' },
  'max-grad-norm': { type: 'string' },
  'initial-grad-norm-ratio': { type: 'string' },
  'abnormal-norm-clip-start': { type: 'string' },
  'use-ema': { type: 'boolean' },
  'gradient-checkpointing': { type: 'boolean' },
  'trainable-modules': { type: 'string', multiple: true },
  'trainable-modules-low-learning-rate': { type: 'string', multiple: true },
  'train-batch-size': { type: 'string' },
  'max-train-steps': { type: 'string' },
  'checkpointing-steps': { type: 'string' },
  'checkpoints-total-limit': { type: 'string' },
  'resume-from-checkpoint': { type: 'string' },
  'video-sample-size': { type: 'string' },
  'image-sample-size': { type: 'string' },
  'video-sample-n-frames': { type: 'string' },
  'video-sample-stride': { type: 'string' },
  'token-sample-size': { type: 'string' },
  'training-with-video-token-length': { type: 'boolean' },
  'random-hw-adapt': { type: 'boolean' },
  'text-drop-ratio': { type: 'string' },
  'tokenizer-max-length': { type: 'string' },
  'motion-sub-loss': { type: 'boolean' },
  'motion-sub-loss-ratio': { type: 'string' },
  'video-mask-probs': { type: 'string' },
  'mask-kept-frames': { type: 'string' },
  'validation-prompts': { type: 'string', multiple: true },
  'validation-steps': { type: 'string' },
  'validation-epochs': { type: 'string' },
  'validation-inference-steps': { type: 'string' },
  seed: { type: 'string' },
  'cache-dir': { type: 'string' },
  backend: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

function num(flag: string, v: string | undefined, fallback: number, int = false): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n))) throw new UsageError(`--${flag} takes ${int ? 'an integer' : 'a number'}, got "${v}"`);
  return n;
}

function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!allowed.includes(v as T)) throw new UsageError(`--${flag} takes ${allowed.join(' | ')}, got "${v}"`);
  return v as T;
}

/** The command line → train() options (usage errors name the flag). */
export function parseTrainArgs(argv: readonly string[]): (Partial<TrainOptions> & Pick<TrainOptions, 'model' | 'data' | 'out'>) | null {
  // the scripts' nargs="+" lists: `--trainable-modules attn1 ff.` → one flag per value
  const lists = new Set(['--trainable-modules', '--trainable-modules-low-learning-rate', '--validation-prompts']);
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    args.push(flag);
    if (lists.has(flag)) {
      args.push(argv[++i] ?? '');
      while (i + 1 < argv.length && !argv[i + 1]!.startsWith('-')) args.push(flag, argv[++i]!);
    }
  }
  let v: Record<string, string | boolean | string[] | undefined>;
  try {
    v = parseArgs({ args, options: OPTIONS, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (v.help) return null;
  const s = (k: string) => v[k] as string | undefined;
  for (const k of ['model', 'data', 'out']) if (!s(k)) throw new UsageError(`--${k} is required (see cogvideox-fun train --help)`);
  const d = TRAIN_DEFAULTS;
  const rank = num('rank', s('rank'), d.rank, true);
  if (rank <= 0) throw new UsageError(`--rank must be a positive integer, got ${rank}`);
  return {
    model: s('model')!,
    data: s('data')!,
    out: s('out')!,
    dataDir: s('train-data-dir'),
    mode: oneOf('mode', s('mode'), ['full', 'lora'] as const, d.mode),
    trainMode: oneOf('train-mode', s('train-mode'), ['inpaint', 'normal'] as const, d.trainMode),
    rank,
    networkAlpha: num('network-alpha', s('network-alpha'), d.networkAlpha),
    loraFormat: oneOf('lora-format', s('lora-format'), ['fun', 'diffusers'] as const, d.loraFormat),
    learningRate: num('learning-rate', s('learning-rate'), d.learningRate),
    lrScheduler: oneOf('lr-scheduler', s('lr-scheduler'), LR_SCHEDULERS, d.lrScheduler),
    lrWarmupSteps: num('lr-warmup-steps', s('lr-warmup-steps'), d.lrWarmupSteps, true),
    adamWeightDecay: num('adam-weight-decay', s('adam-weight-decay'), d.adamWeightDecay),
    adamEpsilon: num('adam-epsilon', s('adam-epsilon'), d.adamEpsilon),
    adamBeta1: num('adam-beta1', s('adam-beta1'), d.adamBeta1),
    adamBeta2: num('adam-beta2', s('adam-beta2'), d.adamBeta2),
    maxGradNorm: num('max-grad-norm', s('max-grad-norm'), d.maxGradNorm),
    initialGradNormRatio: num('initial-grad-norm-ratio', s('initial-grad-norm-ratio'), d.initialGradNormRatio),
    abnormalNormClipStart: num('abnormal-norm-clip-start', s('abnormal-norm-clip-start'), d.abnormalNormClipStart, true),
    useEma: !!v['use-ema'],
    gradientCheckpointing: !!v['gradient-checkpointing'],
    trainableModules: (v['trainable-modules'] as string[] | undefined) ?? d.trainableModules,
    trainableModulesLowLearningRate: (v['trainable-modules-low-learning-rate'] as string[] | undefined) ?? d.trainableModulesLowLearningRate,
    trainBatchSize: num('train-batch-size', s('train-batch-size'), d.trainBatchSize, true),
    maxTrainSteps: num('max-train-steps', s('max-train-steps'), d.maxTrainSteps, true),
    checkpointingSteps: num('checkpointing-steps', s('checkpointing-steps'), d.checkpointingSteps, true),
    checkpointsTotalLimit: s('checkpoints-total-limit') === undefined ? undefined : num('checkpoints-total-limit', s('checkpoints-total-limit'), 0, true),
    resumeFromCheckpoint: s('resume-from-checkpoint'),
    videoSampleSize: num('video-sample-size', s('video-sample-size'), d.videoSampleSize, true),
    imageSampleSize: num('image-sample-size', s('image-sample-size'), d.imageSampleSize, true),
    videoSampleNFrames: num('video-sample-n-frames', s('video-sample-n-frames'), d.videoSampleNFrames, true),
    videoSampleStride: num('video-sample-stride', s('video-sample-stride'), d.videoSampleStride, true),
    tokenSampleSize: num('token-sample-size', s('token-sample-size'), d.tokenSampleSize, true),
    trainingWithVideoTokenLength: !!v['training-with-video-token-length'],
    randomHwAdapt: !!v['random-hw-adapt'],
    textDropRatio: num('text-drop-ratio', s('text-drop-ratio'), d.textDropRatio),
    tokenizerMaxLength: s('tokenizer-max-length') === undefined ? undefined : num('tokenizer-max-length', s('tokenizer-max-length'), 0, true),
    motionSubLoss: !!v['motion-sub-loss'],
    motionSubLossRatio: num('motion-sub-loss-ratio', s('motion-sub-loss-ratio'), d.motionSubLossRatio),
    videoMaskProbs: s('video-mask-probs') === undefined ? undefined : s('video-mask-probs')!.split(',').map((x, i) => num(`video-mask-probs (type ${i})`, x.trim(), 0)),
    maskKeptFrames: s('mask-kept-frames') === undefined ? undefined : num('mask-kept-frames', s('mask-kept-frames'), 0, true),
    validationPrompts: v['validation-prompts'] as string[] | undefined,
    validationSteps: num('validation-steps', s('validation-steps'), d.validationSteps, true),
    validationEpochs: num('validation-epochs', s('validation-epochs'), d.validationEpochs, true),
    validationInferenceSteps: num('validation-inference-steps', s('validation-inference-steps'), d.validationInferenceSteps, true),
    seed: num('seed', s('seed'), d.seed, true),
    cacheDir: s('cache-dir'),
  };
}

export async function trainCommand(argv: readonly string[]): Promise<number> {
  const opts = parseTrainArgs(argv);
  if (!opts) {
    process.stdout.write(TRAIN_USAGE);
    return 0;
  }
  const quiet = argv.includes('--quiet') || argv.includes('-q');
  const backend = argv.includes('--backend') ? argv[argv.indexOf('--backend') + 1] : undefined;
  if (backend !== undefined && backend !== 'tensorflow' && backend !== 'wasm') throw new UsageError(`--backend takes tensorflow | wasm, got "${backend}"`);
  await setBackend(backend, { quiet });
  // Ctrl-C, and `kill` / a machine or session shutting the process down (SIGTERM), end the step in progress, write a
  // checkpoint and exit (130 / 143, the shells' 128 + signal): a run stopped from outside resumes where it was
  const ctrl = new AbortController();
  let stoppedBy: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    stoppedBy ??= sig;
    ctrl.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const fmt = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);
  try {
    const r = await train({
      ...opts,
      signal: ctrl.signal,
      onMessage: (m) => !quiet && process.stderr.write(`${m}\n`),
      onProgress: (p) => {
        if (quiet) return;
        const w = 24;
        const done = Math.round((w * p.step) / p.maxSteps);
        process.stderr.write(
          `\r[${'#'.repeat(done)}${'.'.repeat(w - done)}] step ${p.step}/${p.maxSteps}  loss ${p.smoothedLoss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ` +
            `${p.secPerStep.toFixed(2)} s/step  ETA ${fmt(p.etaSec)}   ${p.step === p.maxSteps ? '\n' : ''}`,
        );
      },
    });
    for (const f of r.outputs) process.stdout.write(`${f}\n`);
    return stoppedBy === 'SIGTERM' ? 143 : stoppedBy === 'SIGINT' ? 130 : 0;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    shutdownBackend();
  }
}
