// The chunk loop of a whole encode / decode, written once for every strategy: the encoder (decoder) runs once per
// chunk of chunking.ts, in order, the conv caches carried from one call to the next (diffusers/.../
// autoencoder_kl_cogvideox.py `_encode` / `_decode`; CogVideoX-Fun autoencoder_magvit.py:1283 and :1359-1383). The
// streaming strategy (stream.ts) and the differentiable one (differentiable.ts) differ only in the ops they hand each
// call, how a chunk is cut from the input and where the outputs go. Passes are generators yielding between blocks.
import type { DecoderOf, EncoderOf, VaeOps, VaeWeightKinds } from '../../nn/vae/types.js';
import { decoderCall, encoderCall } from './blocks.js';
import { decodeCalls, encodeChunks, type DecodeChunking } from './chunking.js';

/**
 * The ops call `k` runs on. `last` is true for the pass's last call: no later call reads its conv caches. The strategy
 * carries the caches from call to call (a call's causal convs pad with the previous call's last inputs).
 */
export type OpsForCall<X, A, Z, W extends VaeWeightKinds> = (k: number, last: boolean) => VaeOps<X, A, Z, W>;

/**
 * Encoder calls over F pixel frames. `chunk(start, end)` gives frames start…end−1 as the call's input (consumed by
 * the call); `take(y, k)` receives call k's moments and owns them.
 */
export function* encodePass<X, A, Z, W extends VaeWeightKinds>(
  w: EncoderOf<W>,
  F: number,
  opsFor: OpsForCall<X, A, Z, W>,
  chunk: (start: number, end: number) => X,
  take: (y: X, k: number) => void,
): Generator<void, void> {
  const chunks = encodeChunks(F);
  for (const [k, [start, end]] of chunks.entries()) {
    const o = opsFor(k, k === chunks.length - 1);
    take(yield* encoderCall(o, w, chunk(start, end)), k);
    yield;
  }
}

/**
 * Decoder calls over T latent frames in one chunking. `chunk(start, end)` gives latent frames start…end−1 (every
 * SpatialNorm3D of the call reads them; `release` frees them after the call); `take(y, k)` receives call k's pixels
 * and owns them.
 */
export function* decodePass<X, A, Z, W extends VaeWeightKinds>(
  w: DecoderOf<W>,
  T: number,
  chunking: DecodeChunking,
  opsFor: OpsForCall<X, A, Z, W>,
  chunk: (start: number, end: number) => Z,
  release: (z: Z) => void,
  take: (y: X, k: number) => void,
): Generator<void, void> {
  const calls = decodeCalls(T, chunking);
  for (const [k, [start, end, mode]] of calls.entries()) {
    const o = opsFor(k, k === calls.length - 1);
    const z = chunk(start, end);
    try {
      take(yield* decoderCall(o, w, z, mode), k);
    } finally {
      release(z);
    }
    yield;
  }
}

/** Runs a generator of steps to its end. */
export function runSteps<T>(g: Generator<void, T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

/**
 * Runs a generator of steps, handing the event loop back between steps (setImmediate) so that timers and I/O — an
 * AbortController fired from a timer — run meanwhile. When `signal` aborts, the generator is returned (its finally
 * blocks dispose what it holds) and the signal's reason is thrown.
 */
export async function runStepsAsync<T>(g: Generator<void, T>, signal?: AbortSignal): Promise<T> {
  try {
    for (;;) {
      signal?.throwIfAborted();
      const r = g.next();
      if (r.done) return r.value;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } catch (e) {
    g.return(undefined as never);
    throw e;
  }
}
