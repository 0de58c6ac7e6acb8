// AutoencoderKLCogVideoX on the differentiable strategy (src/nn/vae/tensor_ops.ts): the chunk loop of passes.ts over
// whole-chunk tensors, in the same calls as the reference, conv caches carried from call to call. For
// training and gradient checks; inference streams (stream.ts) with the same blocks and the same numbers.
import * as tf from '@tensorflow/tfjs-core';
import { TensorOps, type ParamLookup, type TensorW, type Video } from '../../nn/vae/tensor_ops.js';
import type { DecoderOf, EncoderOf } from '../../nn/vae/types.js';
import type { DecodeChunking } from './chunking.js';
import { decodePass, encodePass, runSteps, type OpsForCall } from './passes.js';

export type { ParamLookup };
/** Receives a block's output [B, C, t, H, W] of call `call` (disposed after the callback). */
export type OnBlock = (name: string, call: number, t: tf.Tensor5D) => void;

export interface OpsRun {
  p: ParamLookup;
  onBlock?: OnBlock;
}

const toLast = (x: tf.Tensor5D) => tf.transpose(x, [0, 2, 3, 4, 1]) as Video;
const toFirst = (x: Video) => tf.transpose(x, [0, 4, 1, 2, 3]) as tf.Tensor5D;
const frames = (x: Video, start: number, n: number): Video => tf.slice(x, [0, start], [-1, n]);

/** The ops of call k: one TensorOps for the whole pass (it carries the conv caches), its hook told the call number. */
function opsFor(run: OpsRun): OpsForCall<Video, Video, Video, TensorW> {
  let call = 0;
  const onBlock = run.onBlock;
  const o = onBlock
    ? new TensorOps(run.p, (name, t) => {
        const v = toFirst(t);
        try {
          onBlock(name, call, v);
        } finally {
          v.dispose();
        }
      })
    : new TensorOps(run.p);
  return (k) => {
    call = k;
    return o;
  };
}

/** x [B, C, F, H, W] → moments [B, 2·latent, T, H/8, W/8], encoded in the chunks of `encodeChunks`. */
export function encodeOps(w: EncoderOf<TensorW>, x: tf.Tensor5D, run: OpsRun): tf.Tensor5D {
  return tf.tidy(() => {
    const xl = toLast(x);
    const out: Video[] = [];
    runSteps(encodePass(w, xl.shape[1], opsFor(run), (start, end) => frames(xl, start, end - start), (y) => out.push(y)));
    return toFirst(out.length === 1 ? out[0]! : tf.concat(out, 1));
  });
}

/** z [B, latent, T, h, w] → pixels [B, C, F, 8h, 8w], decoded in the calls of `decodeCalls`. */
export function decodeOps(w: DecoderOf<TensorW>, z: tf.Tensor5D, chunking: DecodeChunking, run: OpsRun): tf.Tensor5D {
  return tf.tidy(() => {
    const zl = toLast(z);
    const out: Video[] = [];
    // the chunks are slices inside this tidy: released with it
    runSteps(decodePass(w, zl.shape[1], chunking, opsFor(run), (start, end) => frames(zl, start, end - start), () => {}, (y) => out.push(y)));
    return toFirst(out.length === 1 ? out[0]! : tf.concat(out, 1));
  });
}
