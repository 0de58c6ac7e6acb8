// Long videos from CogVideoX-Fun's inpaint pipeline: the "Long Video Generation" loop of
// cogvideox/ui/ui.py. Segments of P frames; each later segment starts from the last O frames of the video so far
// (as uint8 images, frames 0…O−1 kept), its first O frames are cross-faded into them with weights k/O, the rest
// appended; the end image goes on the last segment, whose length is the remainder rounded down to 4k + 1.
// One generator serves every segment. predict_i2v.py has a copy of the loop that fails on its first iteration; the
// UI's is the one followed here, quirks included (see planLongVideo).
import * as tf from '@tensorflow/tfjs-core';
import { PhiloxGenerator } from '../schedulers/generator.js';
import type { CogVideoXFunPipeline, FunCallOptions } from './cogvideox_fun.js';
import { checkFrameCount, checkPositiveInt, toUint8Videos, type Video } from './common.js';
import type { RgbImage } from './inpaint.js';
import { maxFramesFor } from './rules.js';

export interface LongVideoSegment {
  index: number;
  /** The loop's `init_frames`: where this segment nominally starts in the requested length. */
  startFrame: number;
  /** Frames requested from the pipeline (`_partial_video_length`). */
  numFrames: number;
  /** The last segment: shorter, and the one that gets the end image. */
  last: boolean;
}

export interface LongVideoPlan {
  segments: LongVideoSegment[];
  /** Frames of the result: P₀ + Σ max(Pᵢ − O, 0) — usually fewer than totalFrames (the loop stops at the last
   *  4k + 1 that fits), except on CogVideoX 1.5, whose pipeline drops frames of odd latent counts. */
  outputFrames: number;
}

/**
 * The UI loop's segment schedule, validated. init = 0, last = P; while init < L: the segment is P frames, or, once
 * last ≥ L, ((L − init − 1) // 4)·4 + 1 frames and the loop ends; init += Pᵢ − O, last = init + Pᵢ.
 * A 1-frame last segment with O ≥ 2 (L − init ∈ [O + 1, 4], possible for O = 2, 3) makes the reference fail
 * (get_image_to_video_latent cannot put O start images in 1 frame): refused here before any compute. With O = 1 a
 * 1-frame last segment runs but its cross-fade weight is 0, so it changes nothing (and its end image never shows).
 */
export function planLongVideo(totalFrames: number, segmentFrames = 25, overlap = 4): LongVideoPlan {
  checkPositiveInt('totalFrames', totalFrames);
  if (!Number.isInteger(segmentFrames) || segmentFrames < 5 || (segmentFrames - 1) % 4 !== 0) {
    throw new RangeError(`segmentFrames must be 4k + 1 and at least 5 (the UI slider: 5…85 step 4), got ${segmentFrames}`);
  }
  if (!Number.isInteger(overlap) || overlap < 1 || overlap > 4) throw new RangeError(`overlap must be an integer in 1…4 (the UI slider), got ${overlap}`);
  const segments: LongVideoSegment[] = [];
  let init = 0;
  let last = segmentFrames;
  let outputFrames = 0;
  while (init < totalFrames) {
    const isLast = last >= totalFrames;
    const numFrames = isLast ? Math.floor((totalFrames - init - 1) / 4) * 4 + 1 : segmentFrames;
    if (segments.length > 0 && numFrames < overlap) {
      throw new RangeError(
        `totalFrames ${totalFrames} with segmentFrames ${segmentFrames} and overlap ${overlap} leaves a ${numFrames}-frame last segment, ` +
          `which cannot hold ${overlap} overlap frames (CogVideoX-Fun's loop fails there); use totalFrames ${init + overlap} or ${init + 5}`,
      );
    }
    segments.push({ index: segments.length, startFrame: init, numFrames, last: isLast });
    outputFrames += segments.length === 1 ? numFrames : Math.max(numFrames - overlap, 0);
    if (isLast) break;
    init += numFrames - overlap;
    last = init + numFrames;
  }
  return { segments, outputFrames };
}

type Excluded = 'image' | 'endImage' | 'numFrames' | 'outputType' | 'video' | 'maskVideo' | 'sourceVideo' | 'mask' | 'strength' | 'latents';

export interface LongVideoOptions extends Omit<FunCallOptions, Excluded> {
  /** The requested length (the UI's "Animation length"). */
  totalFrames: number;
  /** Frames per segment P, 4k + 1 (default 25, as the UI). */
  segmentFrames?: number;
  /** Frames shared by consecutive segments O, 1…4 (default 4, as the UI). */
  overlap?: number;
  /** Start image(s) of the first segment; without one the first segment is text-to-video. */
  image?: RgbImage | RgbImage[];
  /** End image(s) of the last segment; needs `image`. */
  endImage?: RgbImage | RgbImage[];
  /** Also return the float video [1, 3, F, H, W] in [0, 1] (the caller disposes it). */
  keepVideo?: boolean;
  /** Called before each segment is generated, with the start images it gets (later segments: the O frames taken
   *  from the video so far) and the number of frames of the video so far. */
  onSegment?: (info: LongVideoSegmentInfo) => void;
}

export interface LongVideoSegmentInfo extends LongVideoSegment {
  numSegments: number;
  startImages: RgbImage | RgbImage[] | undefined;
  framesSoFar: number;
}

export interface LongVideoResult extends Video {
  segments: LongVideoSegment[];
  /** keepVideo: the float video [1, 3, F, H, W] in [0, 1]; `frames` are its uint8 truncation. */
  video?: tf.Tensor5D;
}

/** Options of a single pipeline call that a long video cannot take (the UI refuses video-to-video here). */
const REFUSED = ['video', 'maskVideo', 'sourceVideo', 'mask', 'latents', 'outputType'] as const;

/**
 * Generates a long video as CogVideoX-Fun's UI does (cogvideox/ui/ui.py). Frames that no later segment can change (all but
 * the last O) are converted to uint8 as soon as they are final, so only O float frames are kept between segments.
 */
export async function generateLongVideo(pipe: Pick<CogVideoXFunPipeline, 'call' | 'transformerConfig'>, o: LongVideoOptions): Promise<LongVideoResult> {
  // ---- checks before any compute
  const opts = o as LongVideoOptions & Partial<Record<(typeof REFUSED)[number] | 'strength', unknown>>;
  for (const k of REFUSED) {
    if (opts[k] !== undefined) throw new Error(`generateLongVideo: option ${k} is not supported (long videos are text/image-to-video only, as in CogVideoX-Fun)`);
  }
  if (opts.strength !== undefined && opts.strength !== 1) throw new Error(`generateLongVideo: strength must be 1 (no video-to-video), got ${String(opts.strength)}`);
  if (o.endImage && !o.image) throw new Error('generateLongVideo: endImage needs a start image (image)');
  if (o.numVideosPerPrompt !== undefined && o.numVideosPerPrompt !== 1) throw new Error(`generateLongVideo: one video per call (numVideosPerPrompt 1), got ${o.numVideosPerPrompt}`);
  const O = o.overlap ?? 4;
  const P = o.segmentFrames ?? 25;
  const plan = planLongVideo(o.totalFrames, P, O);
  const { max, why } = maxFramesFor(pipe.transformerConfig);
  checkFrameCount(P, max, why);
  if (Array.isArray(o.prompt) && o.prompt.length !== 1) throw new Error(`generateLongVideo: one prompt, got ${o.prompt.length}`);
  if (Array.isArray(o.negativePrompt) && o.negativePrompt.length !== 1) throw new Error(`generateLongVideo: one negative prompt, got ${o.negativePrompt.length}`);
  if (o.promptEmbeds && o.promptEmbeds.shape[0] !== 1) throw new Error(`generateLongVideo: promptEmbeds batch must be 1, got ${o.promptEmbeds.shape[0]}`);

  const { totalFrames: _t, segmentFrames: _s, overlap: _o, image, endImage, keepVideo, onSegment, ...callOptions } = o;
  // the reference seeds one generator and hands it to every segment
  const generator = o.generator ?? new PhiloxGenerator(Math.floor(Math.random() * 2 ** 32));
  // cross-fade weights as the loop makes them: float64 k/O cast to float32, and 1 − w in float32
  const w = Float32Array.from({ length: O }, (_, k) => k / O);
  const w1 = w.map((x) => 1 - x);

  const frames: Uint8Array[] = [];
  const pieces: tf.Tensor5D[] = [];
  let tail: tf.Tensor5D | null = null; // the last O float frames: the only ones a later segment changes
  let start: RgbImage | RgbImage[] | undefined = image;
  let width = 0;
  let height = 0;
  try {
    for (const seg of plan.segments) {
      onSegment?.({ ...seg, numSegments: plan.segments.length, startImages: start, framesSoFar: frames.length + (tail ? O : 0) });
      const out = await pipe.call({ ...callOptions, generator, image: start, endImage: seg.last ? endImage : undefined, numFrames: seg.numFrames, outputType: 'tensor' });
      const x = out.tensor!; // [1, 3, F, H, W] in [0, 1]
      [, , , height, width] = x.shape;
      let open: tf.Tensor5D = x; // frames not yet final
      if (tail) {
        const prev: tf.Tensor5D = tail;
        open = tf.tidy(() => {
          const F = x.shape[2];
          const head = tf.slice(x, [0, 0, 0, 0, 0], [1, 3, Math.min(O, F), height, width]); // 1 frame broadcasts (O = 1 here)
          const blended = tf.add(tf.mul(prev, tf.tensor5d(w1, [1, 1, O, 1, 1])), tf.mul(head, tf.tensor5d(w, [1, 1, O, 1, 1])));
          return (F > O ? tf.concat([blended, tf.slice(x, [0, 0, O, 0, 0], [1, 3, F - O, height, width])], 2) : blended) as tf.Tensor5D;
        });
        tail = null;
        tf.dispose([prev, x]);
      }
      try {
        const n = open.shape[2];
        const done = seg.last ? n : n - O;
        if (done > 0) {
          const part = done === n ? tf.clone(open) : (tf.slice(open, [0, 0, 0, 0, 0], [1, 3, done, height, width]) as tf.Tensor5D);
          frames.push(...toUint8Videos(part, 'truncate')[0]!.frames);
          if (keepVideo) pieces.push(part);
          else part.dispose();
        }
        if (!seg.last) {
          // the next segment's start images: (x·255).astype(uint8) — truncation — of the last O frames; at the
          // target size already, so the reference's PIL resize is a copy
          tail = tf.slice(open, [0, 0, n - O, 0, 0], [1, 3, O, height, width]) as tf.Tensor5D;
          start = toUint8Videos(tail, 'truncate')[0]!.frames.map((data) => ({ width, height, data }));
        }
      } finally {
        open.dispose();
      }
    }
    const video = keepVideo ? (pieces.length === 1 ? pieces[0]! : (tf.concat(pieces, 2) as tf.Tensor5D)) : undefined;
    if (keepVideo && pieces.length > 1) tf.dispose(pieces);
    pieces.length = 0;
    return { width, height, frames, segments: plan.segments, video };
  } finally {
    tf.dispose(pieces);
    tail?.dispose();
  }
}
