// Frames of one temporal chunk at one layer, held one frame at a time.
//
// The VAE is run layer by layer over a chunk, frame by frame within a layer: GroupNorm needs the statistics of the
// whole chunk before it can normalise any frame, so each layer's output is kept (as separate frames, with their
// per-channel moments accumulated as they are produced), but never as one chunk-sized tensor, and never more than
// one layer's input and output at a time. Where a frame lives is the pool's decision: on the backend while the pool's
// device budget allows (tensorflow: unlimited), else in host memory (a Float32Array outside the 4 GiB wasm heap),
// uploaded again for the moment it is used.
import * as tf from '@tensorflow/tfjs-core';
import { ChannelMoments, channelMoments } from '../group_norm.js';

export type FrameShape = [number, number, number, number]; // [n, H, W, C]

/** A reference-counted group of n frames [n, H, W, C], on the device or in host memory. */
export class Frame {
  private refs = 1;

  constructor(
    private readonly pool: FramePool,
    private t: tf.Tensor4D | null,
    private host: Float32Array | null,
    readonly shape: FrameShape,
    /** temp: device, outside the budget (working frames); device: counted in the budget; host: JS memory */
    private kind: 'temp' | 'device' | 'host',
  ) {}

  get bytes(): number {
    return 4 * this.shape[0] * this.shape[1] * this.shape[2] * this.shape[3];
  }

  get where(): 'temp' | 'device' | 'host' {
    return this.kind;
  }

  retain(): this {
    if (this.refs <= 0) throw new Error('Frame used after release');
    this.refs++;
    return this;
  }

  release(): void {
    if (this.refs <= 0) throw new Error('Frame released twice');
    if (--this.refs > 0) return;
    if (this.kind === 'device') this.pool.deviceBytes -= this.bytes;
    if (this.kind === 'host') this.pool.hostBytes -= this.bytes;
    this.t?.dispose();
    this.t = null;
    this.host = null;
  }

  /** The frames as a device tensor. `owned` tells whether the caller must dispose it (host frames are uploaded). */
  lease(): { t: tf.Tensor4D; owned: boolean } {
    if (this.refs <= 0) throw new Error('Frame used after release');
    if (this.t) return { t: this.t, owned: false };
    return { t: tf.tensor4d(this.host!, this.shape), owned: true };
  }

  /** Moves a temp frame under the pool's budget (device if it fits, else host); other frames are unchanged. */
  settle(): void {
    if (this.kind !== 'temp') return;
    if (this.pool.fits(this.bytes)) {
      this.kind = 'device';
      this.pool.deviceBytes += this.bytes;
      this.pool.peakDeviceBytes = Math.max(this.pool.peakDeviceBytes, this.pool.deviceBytes);
    } else {
      this.host = this.t!.dataSync() as Float32Array;
      this.t!.dispose();
      this.t = null;
      this.kind = 'host';
      this.pool.hostBytes += this.bytes;
      this.pool.peakHostBytes = Math.max(this.pool.peakHostBytes, this.pool.hostBytes);
    }
  }
}

/** Runs fn on the device tensors of some frames, disposing any temporary uploads afterwards. */
export function withFrames<T>(frames: readonly Frame[], fn: (ts: tf.Tensor4D[]) => T): T {
  const leases = frames.map((f) => f.lease());
  try {
    return fn(leases.map((l) => l.t));
  } finally {
    for (const l of leases) if (l.owned) l.t.dispose();
  }
}

export class FramePool {
  deviceBytes = 0;
  hostBytes = 0;
  peakDeviceBytes = 0;
  peakHostBytes = 0;

  /** `deviceBudget`: bytes of kept frames allowed on the backend before they go to host memory. */
  constructor(readonly deviceBudget: number) {}

  fits(bytes: number): boolean {
    return this.deviceBytes + bytes <= this.deviceBudget;
  }

  /** Takes ownership of t as a working frame (device, outside the budget). */
  temp(t: tf.Tensor4D): Frame {
    return new Frame(this, t, null, t.shape as FrameShape, 'temp');
  }

  /** Takes ownership of t as a kept frame (device within the budget, else host memory). */
  keep(t: tf.Tensor4D): Frame {
    const f = this.temp(t);
    f.settle();
    return f;
  }
}

/**
 * The frames of one chunk at one layer, one Frame per frame, with per-channel moments of everything pushed
 * (for the GroupNorm that reads this layer's output).
 */
export class FrameSeq {
  private readonly frames: (Frame | null)[] = [];
  moments: ChannelMoments | null;
  /** the sequence this one was forked from (itself when not a fork): forks share frames */
  private root: FrameSeq = this;
  height = 0;
  width = 0;

  constructor(
    readonly pool: FramePool,
    readonly channels: number,
    withMoments: boolean,
  ) {
    this.moments = withMoments ? new ChannelMoments(channels) : null;
  }

  get length(): number {
    return this.frames.length;
  }

  /** Appends the frames of t [n, H, W, C] (takes ownership); returns their moments when this seq keeps moments. */
  push(t: tf.Tensor4D): ChannelMoments | null {
    const [n, h, w, c] = t.shape;
    if (c !== this.channels) throw new Error(`FrameSeq: pushed ${c} channels into a ${this.channels}-channel sequence`);
    if (this.frames.length === 0) {
      this.height = h;
      this.width = w;
    } else if (h !== this.height || w !== this.width) {
      throw new Error(`FrameSeq: frame ${h}×${w} pushed into a ${this.height}×${this.width} sequence`);
    }
    let m: ChannelMoments | null = null;
    if (this.moments) {
      m = channelMoments(t);
      this.moments.add(m);
    }
    if (n === 1) {
      this.frames.push(this.pool.keep(t));
    } else {
      const parts = tf.split(t, n, 0) as tf.Tensor4D[];
      t.dispose();
      for (const p of parts) this.frames.push(this.pool.keep(p));
    }
    return m;
  }

  /** Appends an existing frame again (a repeated frame); `m` are its moments, counted again. */
  pushRepeat(frame: Frame, m: ChannelMoments | null): void {
    this.frames.push(frame.retain());
    if (this.moments) {
      if (!m) throw new Error('FrameSeq: repeated frame without its moments');
      this.moments.add(m);
    }
  }

  /** A second sequence holding the same frames (each retained) and statistics; each is released on its own. */
  fork(): FrameSeq {
    const s = new FrameSeq(this.pool, this.channels, false);
    s.moments = this.moments;
    s.root = this.root;
    s.height = this.height;
    s.width = this.width;
    for (const f of this.frames) s.frames.push(f ? f.retain() : null);
    return s;
  }

  /** Whether this and other hold the same frames (one is a fork of the other, or both of a third). */
  sharesFrames(other: FrameSeq): boolean {
    return this.root === other.root;
  }

  at(i: number): Frame {
    const f = this.frames[i];
    if (!f) throw new Error(`FrameSeq: frame ${i} ${i < this.frames.length ? 'was released' : 'does not exist'}`);
    return f;
  }

  /** Frames [start, start + n) as one device tensor (caller-owned when `owned`). */
  range(start: number, n: number): { t: tf.Tensor4D; owned: boolean } {
    if (n === 1) return this.at(start).lease();
    const frames = Array.from({ length: n }, (_, k) => this.at(start + k));
    return { t: withFrames(frames, (ts) => tf.concat(ts, 0)), owned: true };
  }

  release(i: number): void {
    const f = this.frames[i];
    if (f) {
      this.frames[i] = null;
      f.release();
    }
  }

  dispose(): void {
    for (let i = 0; i < this.frames.length; i++) this.release(i);
  }

  /** All frames as [1, C, t, H, W] (torch layout), e.g. for comparisons. The frames stay. */
  toNCDHW(): tf.Tensor5D {
    const r = this.range(0, this.length);
    try {
      return tf.tidy(() => tf.expandDims(tf.transpose(r.t, [3, 0, 1, 2]), 0) as tf.Tensor5D);
    } finally {
      if (r.owned) r.t.dispose();
    }
  }
}
