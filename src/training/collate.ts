// The per-batch size decision of CogVideoX-Fun's bucket collate_fn (scripts/train.py:1028-1147, identical in
// train_lora.py): with --random-hw-adapt a batch is trained at a random fraction of its bucket size
// (get_random_downsample_ratio, train.py:81-111), and with --training-with-video-token-length as well, a video batch
// picks a sample size whose frame budget keeps the token count near N·token_sample_size² (length_to_frame_num,
// train.py:1013-1026, 1056-1067). The geometry is computed from examples[0]'s frame size and applied to every example
// (train.py:1044-1046, 1114-1119), masks are drawn on each example's full-length clip before the batch is cut to the
// common frame count (train.py:1131-1159).
//
// Details taken from the code: the image branch passes
// image_ratio=[image_sample_size / video_sample_size] (train.py:1048), which only joins the list when
// image_sample_size ≥ 512 (below that get_random_downsample_ratio returns [1]); the draw happens even when the list
// has one entry (numpy's choice(p=[1.0]) still consumes a uniform: train.py:108-111); frames for images are
// min(N + I, 1) → 1; `rng.choice(choice_list)` without p (train.py:1065) is a uniform choice, drawn here as
// npChoice with equal weights (a replayed draw is its index).
import { bucketGeometry, frameCountRule, lengthToFrameNum, type Geometry } from './data.js';
import type { TrainingRandom } from './random.js';

export interface CollateOptions {
  videoSampleSize: number;
  imageSampleSize: number;
  videoSampleNFrames: number;
  tokenSampleSize: number;
  /** vae.config.temporal_compression_ratio (sample_n_frames_bucket_interval) */
  temporalCompression: number;
  patchSizeT: number | null;
  randomHwAdapt: boolean;
  trainingWithVideoTokenLength: boolean;
}

/** An example as the dataset hands it to collate_fn: its frames after ds.py resize_frame (images: the file's size). */
export interface CollateExample {
  type: 'video' | 'image';
  /** frames of the clip (1 for an image) */
  frames: number;
  height: number;
  width: number;
}

export interface CollatePlan {
  /** random_downsample_ratio (1 without --random-hw-adapt) */
  ratio: number;
  /** the token-length branch's local_video_sample_size, else null */
  sampleSize: number | null;
  /** bucket key, size [H, W] (×16), resize [h, w] and crop of examples[0], applied to every example */
  geometry: Geometry;
  /** batch_video_length: every example is cut to this many frames (after the 4k+1 / patch_size_t rule) */
  frames: number;
}

/** get_random_downsample_ratio's choices and probabilities (train.py:81-111, all_choices=False). */
export function downsampleChoices(sampleSize: number, imageRatio: readonly number[] = []): { ratios: number[]; p: number[] } {
  let ratios: number[];
  if (sampleSize >= 1536) ratios = [1, 1.25, 1.5, 2, 2.5, 3, ...imageRatio];
  else if (sampleSize >= 1024) ratios = [1, 1.25, 1.5, 2, ...imageRatio];
  else if (sampleSize >= 768) ratios = [1, 1.25, 1.5, ...imageRatio];
  else if (sampleSize >= 512) ratios = [1, ...imageRatio];
  else ratios = [1];
  // _create_special_list: [0.75] + [0.25 / (n − 1)] · (n − 1), or [1.0]
  const n = ratios.length;
  const p = n === 1 ? [1.0] : [0.75, ...Array.from({ length: n - 1 }, () => (1.0 - 0.75) / (n - 1))];
  return { ratios, p };
}

/** get_random_downsample_ratio(sample_size, image_ratio, rng=rng): one rng.choice(list, p). */
export function randomDownsampleRatio(sampleSize: number, imageRatio: readonly number[], rng: TrainingRandom): number {
  const { ratios, p } = downsampleChoices(sampleSize, imageRatio);
  const i = rng.npChoice(p);
  const r = ratios[i];
  if (r === undefined) throw new Error(`downsample ratio draw ${i} is outside the ${ratios.length} choices`);
  return r;
}

/** The token-length branch's candidate sample sizes for a batch (train.py:1057-1061). */
export function tokenLengthChoices(examples: readonly CollateExample[], table: ReadonlyMap<number, number>): number[] {
  // np.min over examples of np.mean([h, w])
  const localMin = Math.min(...examples.map((e) => (e.height + e.width) / 2));
  const all = [...table.keys()];
  const fit = all.filter((s) => s < localMin * 1.25);
  return fit.length ? fit : all;
}

/**
 * collate_fn's size and frame decision for one batch (every draw through `rng`, in the original's order). Throws for
 * an empty batch.
 */
export function collatePlan(examples: readonly CollateExample[], o: CollateOptions, rng: TrainingRandom): CollatePlan {
  const first = examples[0];
  if (!first) throw new Error('collate: empty batch');
  const I = o.temporalCompression;
  let ratio = 1;
  let sampleSize: number | null = null;
  let batchVideoLength: number;
  let S: number;
  if (first.type === 'image') {
    S = o.imageSampleSize;
    if (o.randomHwAdapt) ratio = randomDownsampleRatio(o.imageSampleSize, [o.imageSampleSize / o.videoSampleSize], rng);
    batchVideoLength = o.videoSampleNFrames + I;
  } else {
    S = o.videoSampleSize;
    batchVideoLength = o.videoSampleNFrames + I;
    if (o.randomHwAdapt && o.trainingWithVideoTokenLength) {
      const table = lengthToFrameNum({
        videoSampleSize: o.videoSampleSize,
        imageSampleSize: o.imageSampleSize,
        nFrames: o.videoSampleNFrames,
        tokenSampleSize: o.tokenSampleSize,
        temporalCompression: I,
      });
      const choices = tokenLengthChoices(examples, table);
      const i = rng.npChoice(choices.map(() => 1 / choices.length));
      const s = choices[i];
      if (s === undefined) throw new Error(`sample size draw ${i} is outside the ${choices.length} choices`);
      sampleSize = s;
      batchVideoLength = table.get(s)!;
      ratio = o.videoSampleSize / s;
    } else if (o.randomHwAdapt) {
      ratio = randomDownsampleRatio(o.videoSampleSize, [], rng);
    }
  }
  const geometry = bucketGeometry(first.height, first.width, S, ratio);
  // per example, in order: the running min with its length, then the rule (train.py:1131-1147)
  for (const e of examples) {
    batchVideoLength = frameCountRule(Math.trunc(Math.min(batchVideoLength, e.frames)), I, o.patchSizeT);
  }
  return { ratio, sampleSize, geometry, frames: batchVideoLength };
}

/** Every geometry a batch starting with this example can get (for the memory check before training): [F, H, W]. */
export function possibleShapes(e: CollateExample, o: CollateOptions): [number, number, number][] {
  const I = o.temporalCompression;
  const rule = (f: number) => frameCountRule(Math.trunc(Math.min(f, e.frames)), I, o.patchSizeT);
  const table = () =>
    lengthToFrameNum({
      videoSampleSize: o.videoSampleSize,
      imageSampleSize: o.imageSampleSize,
      nFrames: o.videoSampleNFrames,
      tokenSampleSize: o.tokenSampleSize,
      temporalCompression: I,
    });
  const at = (S: number, r: number, f: number): [number, number, number] => {
    const g = bucketGeometry(e.height, e.width, S, r);
    return [rule(f), g.size[0], g.size[1]];
  };
  const N = o.videoSampleNFrames + I;
  if (e.type === 'image') {
    const rs = o.randomHwAdapt ? downsampleChoices(o.imageSampleSize, [o.imageSampleSize / o.videoSampleSize]).ratios : [1];
    return rs.map((r) => at(o.imageSampleSize, r, N));
  }
  if (o.randomHwAdapt && o.trainingWithVideoTokenLength) {
    // any batch-mate may lower local_min_size, so every table entry is possible
    return [...table()].map(([s, f]) => at(o.videoSampleSize, o.videoSampleSize / s, f));
  }
  const rs = o.randomHwAdapt ? downsampleChoices(o.videoSampleSize).ratios : [1];
  return rs.map((r) => at(o.videoSampleSize, r, N));
}
