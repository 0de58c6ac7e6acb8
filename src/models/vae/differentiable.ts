// AutoencoderKLCogVideoX on the differentiable strategy (src/nn/vae/tensor_ops.ts): the blocks of blocks.ts over
// whole-chunk tensors, in the same calls as the reference (chunking.ts), conv caches carried from call to call. For
// training and gradient checks; inference streams (stream.ts) with the same blocks and the same numbers.
import * as tf from '@tensorflow/tfjs-core';
import { TensorOps, type ParamLookup, type TensorW, type Video } from '../../nn/vae/tensor_ops.js';
import type { DecoderOf, EncoderOf } from '../../nn/vae/types.js';
import { decoderCall, encoderCall } from './blocks.js';
import { decodeCalls, encodeChunks, type DecodeChunking } from './chunking.js';
import { runSteps } from './stream.js';

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

function ops(run: OpsRun, call: () => number): TensorOps {
  if (!run.onBlock) return new TensorOps(run.p);
  const onBlock = run.onBlock;
  return new TensorOps(run.p, (name, t) => {
    const v = toFirst(t);
    try {
      onBlock(name, call(), v);
    } finally {
      v.dispose();
    }
  });
}

/** x [B, C, F, H, W] → moments [B, 2·latent, T, H/8, W/8], encoded in the chunks of `encodeChunks`. */
export function encodeOps(w: EncoderOf<TensorW>, x: tf.Tensor5D, run: OpsRun): tf.Tensor5D {
  return tf.tidy(() => {
    const xl = toLast(x);
    let k = 0;
    const o = ops(run, () => k);
    const out: Video[] = [];
    for (const [start, end] of encodeChunks(xl.shape[1])) {
      out.push(runSteps(encoderCall(o, w, frames(xl, start, end - start))));
      k++;
    }
    return toFirst(out.length === 1 ? out[0]! : tf.concat(out, 1));
  });
}

/** z [B, latent, T, h, w] → pixels [B, C, F, 8h, 8w], decoded in the calls of `decodeCalls`. */
export function decodeOps(w: DecoderOf<TensorW>, z: tf.Tensor5D, chunking: DecodeChunking, run: OpsRun): tf.Tensor5D {
  return tf.tidy(() => {
    const zl = toLast(z);
    let k = 0;
    const o = ops(run, () => k);
    const out: Video[] = [];
    for (const [start, end, mode] of decodeCalls(zl.shape[1], chunking)) {
      out.push(runSteps(decoderCall(o, w, frames(zl, start, end - start), mode)));
      k++;
    }
    return toFirst(out.length === 1 ? out[0]! : tf.concat(out, 1));
  });
}
