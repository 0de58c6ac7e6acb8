// The VAE's streaming strategy (inference): an activation is a FrameSeq — one call's frames at one layer, kept
// frame by frame on the device or in host memory (frames.ts) with their per-channel statistics; every conv runs frame
// by frame (stream_conv.ts) once the whole chunk's GroupNorm statistics of its input are known (stream_norm.ts), so
// no chunk-sized tensor exists. Conv caches are Frames threaded from call to call under their layer path.
// A 1×1×1 conv (the ResNet's shortcut) is computed lazily: when the next conv reads the same frames, each frame's
// shortcut is made as that conv reads it and the frame is released then, so the block's input and its shortcut never
// both exist whole (as the frames of the input are read, they give way to the shortcut's and the conv's outputs).
import * as tf from '@tensorflow/tfjs-core';
import { pointwiseConv, type CausalConv3d } from '../conv.js';
import { FrameSeq } from './frames.js';
import { convSeq, threadCache, timed, type Act, type ConvCaches, type RunContext } from './stream_conv.js';
import { normSilu, type ZqSource } from './stream_norm.js';
import { downsampleSeq, upsampleSeq } from './stream_resample.js';
import type { NormW, ResampleW, SpatialNormW, StreamW } from './stream_weights.js';
import type { VaeOps } from './types.js';

/** A conv input: the frames and the activation applied to each as it is read (null: as they are). */
export interface StreamAct {
  seq: FrameSeq;
  act: Act | null;
  dispose: () => void;
}

/** Receives a block's output sequence; do not consume it. */
export type OnSeq = (name: string, seq: FrameSeq) => void;

/** A shortcut not made yet: out's frames are conv(src's), src is released as they are made. */
interface Pending {
  src: FrameSeq;
  conv: CausalConv3d;
  out: FrameSeq;
}

export class StreamOps implements VaeOps<FrameSeq, StreamAct, ZqSource, StreamW> {
  private pending: Pending | null = null;

  constructor(
    private readonly ctx: RunContext,
    private readonly caches: ConvCaches,
    private readonly onSeq?: OnSeq,
  ) {}

  share(x: FrameSeq): FrameSeq {
    this.settle(x);
    return x.fork();
  }

  free(x: FrameSeq): void {
    if (this.pending?.out === x || this.pending?.src === x) this.drop();
    x.dispose();
  }

  latent(z: ZqSource): FrameSeq {
    const seq = new FrameSeq(this.ctx.pool, z.z.shape[3], false);
    seq.push(tf.clone(z.z));
    return seq;
  }

  raw(x: FrameSeq): StreamAct {
    return { seq: x, act: null, dispose: () => undefined };
  }

  normSilu(x: FrameSeq, n: NormW | SpatialNormW, zq: ZqSource | null): StreamAct {
    try {
      const na = normSilu(n, x, zq);
      return { seq: x, act: na.act, dispose: na.dispose };
    } catch (e) {
      x.dispose();
      throw e;
    }
  }

  causalConv(a: StreamAct, conv: CausalConv3d, key: string, residual?: FrameSeq): FrameSeq {
    const { ctx } = this;
    const p = this.pending;
    const fuse = p !== null && p.src.sharesFrames(a.seq) && residual !== p.out ? p : null;
    // the pending shortcut of these frames, made as each frame is read
    const onInput = fuse
      ? (x: tf.Tensor4D, i: number) => {
          fuse.out.push(timed(ctx, 'shortcut', () => pointwiseConv(x, fuse.conv)));
          fuse.src.release(i);
        }
      : undefined;
    const out = new FrameSeq(ctx.pool, conv.cout, true);
    // the residual is added to each output frame as it is made, and its frames released
    const epilogue = residual
      ? (y: tf.Tensor4D, start: number): tf.Tensor4D => {
          const r = residual.range(start, y.shape[0]);
          try {
            return tf.add(y, r.t) as tf.Tensor4D;
          } finally {
            if (r.owned) r.t.dispose();
            for (let k = 0; k < y.shape[0]; k++) residual.release(start + k);
          }
        }
      : undefined;
    try {
      if (!fuse) this.settle(a.seq, residual);
      threadCache(this.caches, key, (cache) => convSeq(ctx, { input: a.seq, conv, act: a.act, cache, out, onInput, epilogue, releaseInput: true }));
      return out;
    } catch (e) {
      out.dispose();
      throw e;
    } finally {
      if (fuse) this.drop();
      a.dispose();
      a.seq.dispose();
      residual?.dispose();
    }
  }

  pointwise(x: FrameSeq, conv: CausalConv3d): FrameSeq {
    this.settle(x);
    this.flush();
    const out = new FrameSeq(this.ctx.pool, conv.cout, false);
    this.pending = { src: x, conv, out };
    return out;
  }

  downsample(x: FrameSeq, w: ResampleW): FrameSeq {
    this.settle(x);
    return timed(this.ctx, 'downsample', () => downsampleSeq(this.ctx, w, x));
  }

  upsample(x: FrameSeq, w: ResampleW, repeats: (t: number, compressTime: boolean) => number[]): FrameSeq {
    let reps: number[];
    try {
      this.settle(x);
      reps = repeats(x.length, w.compressTime);
    } catch (e) {
      x.dispose();
      throw e;
    }
    return timed(this.ctx, 'upsample', () => upsampleSeq(this.ctx, w, x, reps));
  }

  emit(name: string, x: FrameSeq): void {
    this.settle(x);
    this.onSeq?.(name, x);
  }

  /** Makes the pending shortcut now if any of seqs is its output or shares its input's frames. */
  private settle(...seqs: (FrameSeq | undefined)[]): void {
    const p = this.pending;
    if (p && seqs.some((s) => s !== undefined && (s === p.out || s.sharesFrames(p.src)))) this.flush();
  }

  /** Makes every remaining frame of the pending shortcut. */
  private flush(): void {
    const p = this.pending;
    if (!p) return;
    try {
      for (let i = p.out.length; i < p.src.length; i++) {
        const r = p.src.range(i, 1);
        try {
          p.out.push(timed(this.ctx, 'shortcut', () => pointwiseConv(r.t, p.conv)));
        } finally {
          if (r.owned) r.t.dispose();
        }
        p.src.release(i);
      }
    } catch (e) {
      p.out.dispose();
      throw e;
    } finally {
      this.drop();
    }
  }

  /** Forgets the pending shortcut, releasing its input (its output stays with whoever holds it). */
  private drop(): void {
    this.pending?.src.dispose();
    this.pending = null;
  }
}
