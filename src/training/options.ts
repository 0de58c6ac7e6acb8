// Options of `train()` / `cogvideox-fun train`, named after CogVideoX-Fun's train.py / train_lora.py arguments
// (camelCase here, kebab-case on the CLI), with the scripts' argparse defaults (train.py:280-690).
import type { LrSchedulerName } from './lr_schedule.js';

export interface TrainProgress {
  step: number;
  maxSteps: number;
  loss: number;
  smoothedLoss: number;
  lr: number;
  secPerStep: number;
  etaSec: number;
}

export interface TrainOptions {
  model: string;
  data: string;
  /** --train-data-dir: base folder of relative file paths (default: the metadata file's folder) */
  dataDir?: string;
  out: string;
  mode: 'full' | 'lora';
  trainMode: 'inpaint' | 'normal';
  rank: number;
  networkAlpha: number;
  learningRate: number;
  lrScheduler: LrSchedulerName;
  lrWarmupSteps: number;
  adamBeta1: number;
  adamBeta2: number;
  adamWeightDecay: number;
  adamEpsilon: number;
  maxGradNorm: number;
  initialGradNormRatio: number;
  abnormalNormClipStart: number;
  useEma: boolean;
  /** recompute each transformer block in the backward pass (train.py --gradient_checkpointing, store_true: off) */
  gradientCheckpointing: boolean;
  trainableModules: string[];
  trainableModulesLowLearningRate: string[];
  trainBatchSize: number;
  maxTrainSteps: number;
  checkpointingSteps: number;
  /** train.py --checkpoints_total_limit: keep the newest N checkpoints (default all) */
  checkpointsTotalLimit?: number;
  resumeFromCheckpoint?: string;
  videoSampleSize: number;
  imageSampleSize: number;
  videoSampleNFrames: number;
  videoSampleStride: number;
  tokenSampleSize: number;
  trainingWithVideoTokenLength: boolean;
  randomHwAdapt: boolean;
  textDropRatio: number;
  /** train.py --tokenizer_max_length (226 there): T5 ids are padded / truncated to it; default the transformer's
   * max_text_seq_length (226 in every released model, so the same there; it differs from train.py only for a RoPE
   * model whose max_text_seq_length is not 226), which it must equal when the model adds a position table to the
   * text (2b sincos, learned) */
  tokenizerMaxLength?: number;
  motionSubLoss: boolean;
  motionSubLossRatio: number;
  /** ours (not in train.py): the probabilities of get_random_mask's video mask types 0..9 (default Fun's,
   * VIDEO_MASK_PROBS: 1 = text to video, 2 = first frames kept, 3 = first and last kept); image masks keep Fun's */
  videoMaskProbs?: number[];
  /** ours: the k of mask types 2 and 3 (frames kept at the start, and at the end for 3) instead of get_random_mask's
   * np.random.randint(1, 5); the draw is still made, so every other draw stays Fun's */
  maskKeptFrames?: number;
  validationPrompts?: string[];
  validationSteps: number;
  /** train.py --validation_epochs: also validate after every epoch whose index is a multiple of this */
  validationEpochs: number;
  /** ours: denoising steps of the validation videos (the pipelines' default, 50, is what log_validation uses) */
  validationInferenceSteps: number;
  seed: number;
  loraFormat: 'fun' | 'diffusers';
  /** where T5 embeddings and VAE moments are cached (default <out>/cache) */
  cacheDir?: string;
  /** RAM the memory check allows (default: os.totalmem()) */
  memoryLimitBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
  onMessage?: (line: string) => void;
}

export const TRAIN_DEFAULTS: Omit<TrainOptions, 'model' | 'data' | 'out'> = {
  mode: 'lora',
  trainMode: 'inpaint',
  rank: 128,
  networkAlpha: 64,
  learningRate: 1e-4,
  lrScheduler: 'constant',
  lrWarmupSteps: 500,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamWeightDecay: 1e-2,
  adamEpsilon: 1e-8,
  maxGradNorm: 1.0,
  initialGradNormRatio: 5,
  abnormalNormClipStart: 1000,
  useEma: false,
  gradientCheckpointing: false,
  trainableModules: ['.'],
  trainableModulesLowLearningRate: [],
  trainBatchSize: 1,
  maxTrainSteps: 1000,
  checkpointingSteps: 500,
  videoSampleSize: 512,
  imageSampleSize: 512,
  videoSampleNFrames: 17,
  videoSampleStride: 4,
  tokenSampleSize: 512,
  trainingWithVideoTokenLength: false,
  randomHwAdapt: false,
  textDropRatio: 0.1,
  motionSubLoss: false,
  motionSubLossRatio: 0.25,
  validationSteps: 2000,
  validationEpochs: 5,
  validationInferenceSteps: 50,
  seed: 42,
  loraFormat: 'fun',
};
