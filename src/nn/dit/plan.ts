// Chooses how a DiT forward runs, once per forward, from the backend, the addon, the sizes and whether gradients are
// wanted. The model asks for an op set and runs its block under it; nothing else in the model depends on the choice.
//   differentiable  TensorFlow ops only (tf_ops.ts, no native kernels): under a gradient tape or when asked
//   offload         activations in host memory, row chunks (offload_ops.ts): when [B, S, D] would not fit
//   native          host rows for the native GEMM / LayerNorm / attention (native_ops.ts): tensorflow + the addon
//   head-wise       attention one (sequence, head) at a time (headwise_ops.ts): wasm (4 GiB heap)
//   tensorflow ops  otherwise
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { isWasm } from '../backend.js';
import { nativeLinear } from '../native.js';
import { tapeIsRecording } from '../tape.js';
import { headwiseOps } from './headwise_ops.js';
import { nativeOps } from './native_ops.js';
import { offloadOps } from './offload_ops.js';
import { tensorOps } from './tf_ops.js';
import type { BlockOps, DitShape } from './types.js';

export { OFFLOAD_CHUNK_BYTES } from './offload_ops.js';

const MiB = 2 ** 20;

export interface DitPlanOptions {
  /** Force the differentiable strategy (it is also chosen whenever a gradient tape is recording). */
  differentiable?: boolean;
  /** Force (true) or forbid (false) host-resident activations; default: when they would not fit (needsOffload). */
  offload?: boolean;
  /** Rows per chunk of the offloaded strategy (default: 128 MiB of device scratch). */
  offloadRows?: number;
  /** Attention scratch bound in bytes (default: 256 MiB on wasm, 1 GiB otherwise). */
  attentionScratchBytes?: number;
  /** Feed-forward intermediate bound in bytes (default: 256 MiB on wasm, 2 GiB otherwise). */
  ffScratchBytes?: number;
}


/**
 * Whether a forward needs the offloaded path: on wasm when its [B, S, D] activations (≈ 10 alive at a block's peak,
 * see the memory plan) plus one block's fp32 weights would not leave room in the 4 GiB heap; on tensorflow when its
 * ≈ 22 live [B, S, D] tensors (its allocator pools them) would take more than half of the machine's RAM.
 */
export function needsOffload(B: number, S: number, D: number, backend: string, ramBytes = os.totalmem()): boolean {
  const seqBytes = B * S * D * 4;
  if (backend === 'wasm') return 10 * seqBytes + 12 * D * D * 4 > 2.5 * 2 ** 30;
  return 22 * seqBytes > 0.5 * ramBytes;
}

/** The op set one forward of the given shape runs under. */
export function planDit(shape: DitShape, o: DitPlanOptions = {}): BlockOps<unknown, unknown> {
  const wasm = isWasm();
  const differentiable = o.differentiable === true || tapeIsRecording();
  const attentionScratchBytes = o.attentionScratchBytes ?? (wasm ? 256 * MiB : 1024 * MiB);
  const ffScratchBytes = o.ffScratchBytes ?? (wasm ? 256 * MiB : 2048 * MiB);
  const D = shape.heads * shape.headDim;
  const base = { shape, attentionScratchBytes, ffScratchBytes, fusedAttention: !differentiable };
  if (differentiable) {
    if (o.offload === true) throw new Error('the offloaded forward has no gradient: pass offload: false (or leave it unset) under a gradient tape');
    return tensorOps(base) as BlockOps<unknown, unknown>;
  }
  if (o.offload ?? needsOffload(shape.B, shape.Lt + shape.N, D, tf.getBackend())) {
    return offloadOps({ shape, rows: o.offloadRows, attentionScratchBytes }) as BlockOps<unknown, unknown>;
  }
  if (wasm) return headwiseOps(base) as BlockOps<unknown, unknown>;
  if (nativeLinear()) return nativeOps(base) as BlockOps<unknown, unknown>;
  return tensorOps(base) as BlockOps<unknown, unknown>;
}
