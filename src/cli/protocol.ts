// What the main thread hands the generation worker, and the events the worker sends back. Plain data only
// (structured clone).
import type { PipelineKind } from './model_folder.js';
import type { OutputKind, ReferenceBase } from './options.js';

/** A fully resolved `generate` request: every default filled in, paths absolute. */
export interface GenerateJob {
  model: string;
  kind: PipelineKind;
  prompt: string;
  negativePrompt: string;
  image?: string;
  endImage?: string;
  video?: string;
  mask?: string;
  strength: number;
  frames: number;
  /** Absent with resizeToReference: the worker derives them from the reference image / video. */
  height?: number;
  width?: number;
  resizeToReference?: ReferenceBase;
  steps: number;
  guidance: number;
  /** the transformer's max_text_seq_length (226 in every released model) */
  maxSequenceLength: number;
  sampler: string;
  /** decimal string of a bigint in [0, 2^64) */
  seed: string;
  fps: number;
  loras: { path: string; weight: number }[];
  longVideo?: { segment: number; overlap: number };
  tiling: boolean;
  backend?: 'tensorflow' | 'wasm';
  residency?: 'auto' | 'resident' | 'host' | 'disk';
  /** videos of the prompt (--num-videos; default 1) */
  numVideos?: number;
  /** Where the worker writes (a temporary name next to the output; the main thread renames it into place). */
  outTmp: string;
  /** One temporary per video (outTmps[0] === outTmp); absent: [outTmp]. */
  outTmps?: string[];
  outKind: OutputKind;
}

export type Stage = 'inputs' | 'backend' | 'load' | 'text' | 'conditioning' | 'denoise' | 'decode' | 'write';

export const STAGE_LABELS: Record<Stage, string> = {
  backend: 'starting backend',
  inputs: 'reading inputs',
  load: 'opening model',
  text: 'encoding prompt (T5)',
  conditioning: 'encoding conditioning (VAE)',
  denoise: 'denoising',
  decode: 'decoding (VAE)',
  write: 'writing',
};

export type JobEvent =
  | { type: 'backend'; name: string }
  | { type: 'stage'; stage: Stage; detail?: string }
  /** `step` is 1-based: steps done so far in this pipeline call. */
  | { type: 'step'; step: number; steps: number }
  /** --long-video: a segment starts (0-based index) */
  | { type: 'segment'; index: number; count: number; frames: number; startFrame: number }
  | { type: 'size'; width: number; height: number; frames: number }
  | { type: 'warning'; message: string }
  | { type: 'done'; width: number; height: number; frames: number }
  | { type: 'failed'; message: string; stack?: string; interrupted: boolean };
