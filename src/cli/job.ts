// One `generate` run, as the worker thread executes it: inputs (decoded first: a bad file fails before the backend
// starts), backend, pipeline, output. Progress goes out as
// events; `shouldStop()` (the main thread's Ctrl-C flag) is polled at every step and stage boundary and turned
// into the pipeline's AbortSignal.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readImageForFun, readMaskForFun, readVideoForFun } from '../media/fun_inputs.js';
import { readImage } from '../media/image.js';
import { resizeImage } from '../media/resize.js';
import { readVideo } from '../media/video_read.js';
import { writeVideo } from '../media/video_write.js';
import { describeBackend, setBackend } from '../nn/backend.js';
import { CogVideoXImageToVideoPipeline, CogVideoXPipeline } from '../pipelines/cogvideox.js';
import { CogVideoXFunPipeline } from '../pipelines/cogvideox_fun.js';
import { CogVideoXVideoToVideoPipeline } from '../pipelines/video_to_video.js';
import type { CommonCallOptions, PipelineOutput, PipelineStage, Video } from '../pipelines/common.js';
import { openModelFolder } from '../pipelines/components.js';
import { generateLongVideo } from '../pipelines/long_video.js';
import type { RgbImage } from '../pipelines/inpaint.js';
import { sizeFromReference } from '../pipelines/rules.js';
import { PhiloxGenerator, type Generator } from '../schedulers/generator.js';
import { InterruptedError } from './errors.js';
import type { GenerateJob, JobEvent } from './protocol.js';

type Pipeline = CogVideoXFunPipeline | CogVideoXPipeline | CogVideoXImageToVideoPipeline | CogVideoXVideoToVideoPipeline;

interface Inputs {
  height: number;
  width: number;
  image?: RgbImage;
  endImage?: RgbImage;
  sourceVideo?: RgbImage[];
  mask?: RgbImage;
  /** the THUDM I2V image, at its own size (the pipeline resizes it with LANCZOS) */
  rawImage?: RgbImage;
  /** the THUDM V2V source frames, at their own size (the pipeline resizes them with LANCZOS) */
  rawVideo?: RgbImage[];
}

/**
 * `generator` replaces the seeded PhiloxGenerator(job.seed) (scripts/demo/reproduce.ts records every draw through it,
 * so the original PyTorch pipeline can be given the same noise).
 */
export async function runJob(
  job: GenerateJob,
  emit: (e: JobEvent) => void,
  shouldStop: () => boolean,
  generator: Generator = new PhiloxGenerator(BigInt(job.seed)),
): Promise<void> {
  const controller = new AbortController();
  const poll = () => {
    if (!controller.signal.aborted && shouldStop()) controller.abort(new InterruptedError());
    controller.signal.throwIfAborted();
  };

  emit({ type: 'stage', stage: 'inputs' });
  const inputs = await readInputs(job);
  let frames = job.frames;
  const source = inputs.sourceVideo ?? inputs.rawVideo;
  if (source && source.length < frames) {
    // the pipeline takes the video's length; it must be 1 or 4k+1 too
    const n = source.length;
    frames = n <= 1 ? 1 : Math.floor((n - 1) / 4) * 4 + 1;
    if (inputs.sourceVideo) inputs.sourceVideo = inputs.sourceVideo.slice(0, frames);
    if (inputs.rawVideo) inputs.rawVideo = inputs.rawVideo.slice(0, frames);
    emit({ type: 'warning', message: `--video ${path.basename(job.video!)} has ${n} frame${n === 1 ? '' : 's'}${inputs.sourceVideo ? ' at 8 fps' : ''}: generating ${frames} (1 or 4k+1)` });
  }
  emit({ type: 'size', width: inputs.width, height: inputs.height, frames });
  poll();

  emit({ type: 'stage', stage: 'backend' });
  await setBackend(job.backend, { quiet: true });
  // tfjs-node in a worker thread crashes the process at exit (SIGSEGV) if the thread never ran an op; run one now
  tf.tidy(() => void tf.add(tf.scalar(1), tf.scalar(1)));
  emit({ type: 'backend', name: describeBackend() });
  poll();

  emit({ type: 'stage', stage: 'load' });
  const pipe = await loadPipeline(job);
  try {
    if (job.tiling) pipe.vae.enableTiling();
    poll();
    const common: CommonCallOptions = {
      prompt: job.prompt,
      negativePrompt: job.negativePrompt,
      height: inputs.height,
      width: inputs.width,
      numFrames: frames,
      numInferenceSteps: job.steps,
      guidanceScale: job.guidance,
      maxSequenceLength: job.maxSequenceLength,
      generator,
      numVideosPerPrompt: job.numVideos ?? 1,
      signal: controller.signal,
      onStep: ({ step, numSteps }) => {
        emit({ type: 'step', step: step + 1, steps: numSteps });
        poll();
      },
      onStage: (stage: PipelineStage, state) => {
        if (state === 'start') emit({ type: 'stage', stage });
        poll();
      },
      onWarning: (message) => emit({ type: 'warning', message }),
    };
    let out: PipelineOutput;
    if (job.longVideo) {
      out = await runLongVideo(pipe, job, common, inputs, emit);
    } else if (pipe instanceof CogVideoXFunPipeline) {
      out = await pipe.call({ ...common, image: inputs.image, endImage: inputs.endImage, sourceVideo: inputs.sourceVideo, mask: inputs.mask, strength: job.strength });
    } else if (pipe instanceof CogVideoXVideoToVideoPipeline) {
      out = await pipe.call({ ...common, numFrames: undefined, video: inputs.rawVideo!, strength: job.strength });
    } else if (pipe instanceof CogVideoXImageToVideoPipeline) {
      out = await pipe.call({ ...common, image: inputs.rawImage!, resizeRgb: (img, w, h) => resizeImage({ ...img, channels: 3 }, w, h, 'lanczos') });
    } else {
      out = await pipe.call(common);
    }
    poll();
    const videos: Video[] = out.videos!;
    const tmps = job.outTmps ?? [job.outTmp];
    if (videos.length !== tmps.length) throw new Error(`internal: ${videos.length} videos for ${tmps.length} outputs`);
    emit({ type: 'stage', stage: 'write' });
    for (let i = 0; i < videos.length; i++) await writeVideo(videos[i]!, tmps[i]!, { fps: job.fps, signal: controller.signal });
    const video = videos[0]!;
    emit({ type: 'done', width: video.width, height: video.height, frames: video.frames.length });
  } finally {
    pipe.dispose();
  }
}

/** Reads and sizes the conditioning inputs as the predict scripts do (files are decoded before any model loads). */
async function readInputs(job: GenerateJob): Promise<Inputs> {
  let height = job.height;
  let width = job.width;
  if (job.resizeToReference) {
    // "Resize according to Reference": the bucket nearest the start image's (or the video's first frame's) aspect
    const ref = job.image ? await readImage(job.image) : await readVideo(job.video!, { maxFrames: 1 });
    [height, width] = sizeFromReference(ref.height, ref.width, job.resizeToReference);
  }
  if (height === undefined || width === undefined) throw new Error('internal: output size not resolved');
  const size = { width, height };
  const inputs: Inputs = { height, width };
  if (job.kind === 'i2v') {
    if (job.image) inputs.rawImage = await readImage(job.image);
    return inputs;
  }
  if (job.kind === 't2v') {
    // THUDM cli_demo v2v: every frame of the source (diffusers' load_video), resized by the pipeline
    if (job.video) {
      const v = await readVideo(job.video, { maxFrames: job.frames });
      inputs.rawVideo = v.frames.map((data) => ({ width: v.width, height: v.height, data }));
    }
    return inputs;
  }
  if (job.image) inputs.image = await readImageForFun(job.image, size);
  if (job.endImage) inputs.endImage = await readImageForFun(job.endImage, size);
  if (job.video) {
    const v = await readVideoForFun(job.video, { ...size, videoLength: job.frames, fps: 8 });
    inputs.sourceVideo = v.frames.map((data) => ({ width: v.width, height: v.height, data }));
  }
  if (job.mask) inputs.mask = await readMaskForFun(job.mask, size);
  return inputs;
}

async function loadPipeline(job: GenerateJob): Promise<Pipeline> {
  // the CLI's sampler default is explicit (resolveRun fills job.sampler); the library's would be the folder's class
  const f = await openModelFolder(job.model, {
    sampler: job.sampler,
    residency: job.residency ?? 'auto',
    loras: job.loras.map((l) => ({ path: l.path, multiplier: l.weight })),
  });
  if (job.kind === 'fun-inp') return new CogVideoXFunPipeline(f);
  if (job.kind === 'i2v') return new CogVideoXImageToVideoPipeline(f);
  if (job.kind === 't2v' && job.video) return new CogVideoXVideoToVideoPipeline(f);
  return new CogVideoXPipeline(f);
}

/** --long-video: CogVideoX-Fun's UI loop (segments, overlap cross-fade, last frames as the next start images). */
async function runLongVideo(pipe: Pipeline, job: GenerateJob, common: CommonCallOptions, inputs: Inputs, emit: (e: JobEvent) => void): Promise<PipelineOutput> {
  if (!(pipe instanceof CogVideoXFunPipeline)) throw new Error('--long-video needs a CogVideoX-Fun InP model');
  const { numFrames: _n, ...rest } = common;
  const video = await generateLongVideo(pipe, {
    ...rest,
    totalFrames: job.frames,
    segmentFrames: job.longVideo!.segment,
    overlap: job.longVideo!.overlap,
    image: inputs.image,
    endImage: inputs.endImage,
    onSegment: (s) => emit({ type: 'segment', index: s.index, count: s.numSegments, frames: s.numFrames, startFrame: s.startFrame }),
  });
  return { videos: [{ width: video.width, height: video.height, frames: video.frames }] };
}
