// What the pipelines share: call-option types, request checks, the denoising loop (the `for i, t in
// enumerate(timesteps)` loop of diffusers/pipelines/cogvideo/pipeline_cogvideox.py and CogVideoX-Fun's
// cogvideox/pipeline/pipeline_cogvideox_inpaint.py) and the conversion of decoded frames to the uint8 frames a user saves.
import * as tf from '@tensorflow/tfjs-core';
import type { CogVideoXTransformer3DModel } from '../models/transformer.js';
import type { AutoencoderKLCogVideoX } from '../models/vae.js';
import { collectGarbage } from '../nn/backend.js';
import type { Generator } from '../schedulers/generator.js';
import type { Scheduler } from '../schedulers/scheduler.js';

/** 'frames': uint8 RGB frames per video; 'tensor': decoded video [B, 3, F, H, W] in [0, 1]; 'latent': [B, T, 16, h, w]. */
export type OutputType = 'frames' | 'tensor' | 'latent';

/** One video as uint8 RGB frames, each [H, W, 3] row-major. */
export interface Video {
  width: number;
  height: number;
  frames: Uint8Array[];
}

export interface PipelineOutput {
  /** outputType 'frames': one entry per batch element. */
  videos?: Video[];
  /** outputType 'tensor' (decoded, [B, 3, F, H, W] in [0, 1]) or 'latent' ([B, T, 16, h, w]); the caller owns it. */
  tensor?: tf.Tensor5D;
}

/** The stages of a generation, in order ('conditioning': VAE encodes of the input images / video). */
export type PipelineStage = 'text' | 'conditioning' | 'denoise' | 'decode';

export interface StepInfo {
  /** 0-based index of the step just taken, and the number of steps in this run (after the strength slice). */
  step: number;
  numSteps: number;
  timestep: number;
  /** Latents after the step; valid during the callback only. */
  latents: tf.Tensor5D;
}

/** Options every pipeline takes (camelCase of the diffusers / CogVideoX-Fun arguments). */
export interface CommonCallOptions {
  prompt?: string | string[];
  negativePrompt?: string | string[];
  /** Precomputed T5 outputs [B, L, text_embed_dim] (instead of prompt / negativePrompt). */
  promptEmbeds?: tf.Tensor3D;
  negativePromptEmbeds?: tf.Tensor3D;
  height?: number;
  width?: number;
  numFrames?: number;
  numInferenceSteps?: number;
  guidanceScale?: number;
  useDynamicCfg?: boolean;
  /** Source of every normal draw (initial latents, step noise, VAE samples, noise augmentation). */
  generator?: Generator;
  /** Initial latents [B, T, C, h, w] instead of a draw (scaled by the scheduler's init sigma, as diffusers). */
  latents?: tf.Tensor5D;
  /** T5 tokens per prompt (pad / truncate); default the transformer's max_text_seq_length (226 in released configs, as diffusers). */
  maxSequenceLength?: number;
  /**
   * Videos per prompt (default 1): each prompt's embeddings are repeated this many times, so the batch is
   * prompts × numVideosPerPrompt and every draw covers the whole batch. The originals accept
   * `num_videos_per_prompt` but overwrite it with 1 inside `__call__` (diffusers pipeline_cogvideox.py:611,
   * CogVideoX-Fun pipeline_cogvideox_inpaint.py:871); n here equals their run with each prompt repeated n times.
   */
  numVideosPerPrompt?: number;
  outputType?: OutputType;
  onStep?: (info: StepInfo) => void;
  /** Called when a stage starts and ends (progress display, per-stage timing and memory). */
  onStage?: (stage: PipelineStage, state: 'start' | 'end') => void;
  signal?: AbortSignal;
  /** Debug / parity hook: intermediate tensors by the names the reference fixtures use; valid during the call only. */
  onIntermediate?: (name: string, t: tf.Tensor) => void;
  /** Refuse requests the memory plan says will not fit (default true; needs a pipeline opened from a folder). */
  checkMemory?: boolean;
  /** Warnings (prompt truncation, frame clipping); default console.warn. */
  onWarning?: (message: string) => void;
}

/** Throws the signal's reason (as `signal.throwIfAborted()`) once it has fired. */
export function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException('generation aborted', 'AbortError');
}

/**
 * Lets queued macrotasks run (timers, I/O callbacks, messages): without it a synchronous loop never sees an abort
 * scheduled from a timer in the same thread.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));
}

export function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
}

/**
 * Height / width: the VAE needs multiples of 8 (the reference's own check) and the 2×2 patching multiples of
 * 8·patch_size (16); a wrong size would otherwise fail deep inside the transformer.
 */
export function checkSize(height: number, width: number, multiple: number): void {
  for (const [name, v] of [['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v < multiple || v % multiple !== 0) {
      throw new RangeError(`${name} must be a positive multiple of ${multiple} (VAE 8× × patch ${multiple / 8}), got ${v}`);
    }
  }
}

/** Frame counts the 3D VAE can produce: 1 (an image) or 4k + 1. */
export function checkFrameCount(numFrames: number, maxFrames: number, why: string): void {
  checkPositiveInt('numFrames', numFrames);
  if (numFrames !== 1 && (numFrames - 1) % 4 !== 0) {
    const lo = Math.floor((numFrames - 1) / 4) * 4 + 1;
    throw new RangeError(`numFrames must be 1 or 4k + 1 (the VAE compresses time 4×), got ${numFrames}; nearest: ${lo} or ${lo + 4}`);
  }
  if (numFrames > maxFrames) throw new RangeError(`numFrames ${numFrames} is more than this model supports (${maxFrames}: ${why})`);
}

export function checkGuidance(guidanceScale: number): void {
  if (!Number.isFinite(guidanceScale) || guidanceScale < 0) throw new RangeError(`guidanceScale must be a finite number ≥ 0, got ${guidanceScale}`);
}

/** diffusers' dynamic CFG, literally: w = 1 + g·(1 − cos(π·((N − t)/N)^5))/2 with the timestep VALUE t. */
export function dynamicGuidance(guidanceScale: number, numInferenceSteps: number, t: number): number {
  return 1 + (guidanceScale * (1 - Math.cos(Math.PI * ((numInferenceSteps - t) / numInferenceSteps) ** 5))) / 2;
}

/** Concatenates [negative, positive] along the batch (the reference's CFG order: uncond first). */
export function cfgBatch(x: tf.Tensor, doCfg: boolean): tf.Tensor {
  return doCfg ? tf.concat([x, x], 0) : tf.clone(x);
}

export interface DenoiseArgs {
  transformer: CogVideoXTransformer3DModel;
  scheduler: Scheduler;
  /** The executed timesteps (after the strength slice) and N_eff (dynamic CFG uses it). */
  timesteps: readonly number[];
  numInferenceSteps: number;
  /** Initial latents [B, T, 16, h, w]; taken over (disposed by the loop). */
  latents: tf.Tensor5D;
  /** [2B, L, D] (CFG) or [B, L, D]. */
  promptEmbeds: tf.Tensor3D;
  doCfg: boolean;
  guidanceScale: number;
  useDynamicCfg: boolean;
  /** CFG-doubled extra transformer inputs, constant over the steps. */
  inpaintLatents?: tf.Tensor5D;
  imageLatents?: tf.Tensor5D;
  rope?: { cos: tf.Tensor2D; sin: tf.Tensor2D };
  ofs?: number;
  generator?: Generator;
  onStep?: (info: StepInfo) => void;
  signal?: AbortSignal;
  onIntermediate?: (name: string, t: tf.Tensor) => void;
}

/**
 * The denoising loop of the CogVideoX(-Fun) pipelines. Returns the final latents (caller owns). Yields to the event
 * loop before every step and stops with the signal's reason when it has fired (latents and scheduler state freed).
 */
export async function denoise(a: DenoiseArgs): Promise<tf.Tensor5D> {
  const emit = a.onIntermediate ?? (() => {});
  const sched = a.scheduler;
  let latents = a.latents;
  let oldPredOriginal: tf.Tensor | null = null;
  const numSteps = a.timesteps.length;
  try {
    for (let i = 0; i < numSteps; i++) {
      checkAbort(a.signal);
      await yieldToEventLoop();
      checkAbort(a.signal);
      const t = a.timesteps[i]!;
      const v = tf.tidy(() => {
        let x = sched.scaleModelInput(cfgBatch(latents, a.doCfg), t) as tf.Tensor5D;
        emit(`step.${i}.transformer_in_latents`, x);
        if (a.imageLatents) x = tf.concat([x, a.imageLatents], 2);
        emit(`step.${i}.transformer_in`, x);
        const out = a.transformer.forward({
          hiddenStates: x,
          encoderHiddenStates: a.promptEmbeds,
          timestep: t,
          inpaintLatents: a.inpaintLatents,
          imageRotaryEmb: a.rope,
          ofs: a.ofs,
        });
        emit(`step.${i}.noise_pred`, out);
        if (!a.doCfg) return out;
        const w = a.useDynamicCfg ? dynamicGuidance(a.guidanceScale, a.numInferenceSteps, t) : a.guidanceScale;
        const B = out.shape[0] / 2;
        const [uncond, cond] = tf.split(out, [B, B], 0);
        // torch multiplies by the Python float as a float32 scalar: tf.scalar rounds w the same way
        const guided = tf.add(uncond!, tf.mul(tf.scalar(w), tf.sub(cond!, uncond!))) as tf.Tensor5D;
        emit(`step.${i}.noise_pred_cfg`, guided);
        return guided;
      });
      let next: tf.Tensor;
      try {
        if (sched.kind === 'cogvideox-dpm') {
          const r = sched.step(v, oldPredOriginal, t, i > 0 ? a.timesteps[i - 1]! : null, latents, { generator: a.generator });
          oldPredOriginal?.dispose();
          oldPredOriginal = r.predOriginalSample;
          next = r.prevSample;
        } else {
          const r = sched.step(v, t, latents, { generator: a.generator });
          r.predOriginalSample?.dispose();
          next = r.prevSample;
        }
      } finally {
        v.dispose();
      }
      latents.dispose();
      latents = next as tf.Tensor5D;
      emit(`step.${i}.latents`, latents);
      a.onStep?.({ step: i, numSteps, timestep: t, latents });
    }
    return latents;
  } catch (e) {
    latents.dispose();
    throw e;
  } finally {
    oldPredOriginal?.dispose();
    sched.dispose();
  }
}

/**
 * Decoded video [B, 3, F, H, W] in [0, 1] → uint8 frames. 'truncate': CogVideoX-Fun's `(x·255).astype(uint8)`;
 * 'round': diffusers' PIL output `(x·255).round()` (numpy half-to-even), both on the float32 product.
 */
export function toUint8Videos(video: tf.Tensor5D, rounding: 'truncate' | 'round'): Video[] {
  const [B, C, F, H, W] = video.shape;
  if (C !== 3) throw new Error(`expected 3 colour channels, got ${C}`);
  const data = video.dataSync() as Float32Array;
  const out: Video[] = [];
  const plane = H * W;
  for (let b = 0; b < B; b++) {
    const frames: Uint8Array[] = [];
    for (let f = 0; f < F; f++) {
      const px = new Uint8Array(plane * 3);
      for (let c = 0; c < 3; c++) {
        const base = ((b * C + c) * F + f) * plane;
        for (let i = 0; i < plane; i++) {
          const x = Math.fround(data[base + i]! * 255);
          px[i * 3 + c] = rounding === 'truncate' ? Math.trunc(x) : roundHalfEven(x);
        }
      }
      frames.push(px);
    }
    out.push({ width: W, height: H, frames });
  }
  return out;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** [B, T, 16, h, w] latents → the VAE's z: permuted and multiplied by the float32 reciprocal of the scaling factor. */
export function latentsToVae(latents: tf.Tensor5D, scalingFactor: number): tf.Tensor5D {
  return tf.tidy(() => tf.mul(tf.transpose(latents, [0, 2, 1, 3, 4]), tf.scalar(1 / scalingFactor)) as tf.Tensor5D);
}

/** (x / 2 + 0.5).clamp(0, 1) */
export function denormalize(x: tf.Tensor5D): tf.Tensor5D {
  return tf.tidy(() => tf.clipByValue(tf.add(tf.div(x, 2), 0.5), 0, 1) as tf.Tensor5D);
}

/** The request settings every pipeline checks first; defaults are the caller's (they differ per pipeline). */
export interface Settings {
  height: number;
  width: number;
  numInferenceSteps: number;
  guidanceScale: number;
  outputType: OutputType;
}

export function checkSettings(s: Settings, sizeMultiple: number): void {
  checkSize(s.height, s.width, sizeMultiple);
  checkPositiveInt('numInferenceSteps', s.numInferenceSteps);
  checkGuidance(s.guidanceScale);
  if (!['frames', 'tensor', 'latent'].includes(s.outputType)) throw new Error(`outputType must be frames, tensor or latent, got ${s.outputType}`);
}

/** The RoPE tables of a latent size as tensors (null for models without RoPE). */
export function ropeTensors(transformer: CogVideoXTransformer3DModel, h: number, w: number, T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } | undefined {
  if (!transformer.config.use_rotary_positional_embeddings) return undefined;
  const r = transformer.prepareRotaryPositionalEmbeddings(h, w, T);
  return { cos: tf.tensor2d(r.cos, [r.rows, r.headDim]), sin: tf.tensor2d(r.sin, [r.rows, r.headDim]) };
}

/**
 * `decode_latents` and the output conversion: latents [B, T, 16, h, w] (not taken over) → decoded with the
 * pipeline's chunking, (x/2 + 0.5).clamp(0, 1), then uint8 ('truncate': Fun, 'round': diffusers) or the float video.
 */
export async function decodeOutput(
  vae: AutoencoderKLCogVideoX,
  latents: tf.Tensor5D,
  o: { outputType: 'frames' | 'tensor'; chunking: 'fun' | 'diffusers'; rounding: 'truncate' | 'round'; emit: (name: string, t: tf.Tensor) => void; signal?: AbortSignal },
): Promise<PipelineOutput> {
  const z = latentsToVae(latents, vae.scalingFactor);
  let decoded: tf.Tensor5D;
  try {
    decoded = await vae.decodeAsync(z, { chunking: o.chunking, signal: o.signal }); // yields between chunks; honours the signal
  } finally {
    z.dispose();
  }
  vae.release('decoder');
  collectGarbage();
  const video = denormalize(decoded);
  decoded.dispose();
  o.emit('video', video);
  if (o.outputType === 'tensor') return { tensor: video };
  try {
    return { videos: toUint8Videos(video, o.rounding) };
  } finally {
    video.dispose();
  }
}
