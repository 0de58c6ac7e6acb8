// What the execution strategies of src/nn can do on this process, and what they cost — the questions the pipelines
// and the memory plan ask, so that they import no kernel. The answers follow the code that executes them (src/nn
// for the kernels, src/models/transformer_offload.ts for the offloaded forward).
import * as os from 'node:os';
import { nativeAttention } from './native.js';

/** True when the fused native attention kernel is used on the tensorflow backend (addon built, not turned off). */
export function fusedAttentionAvailable(): boolean {
  return nativeAttention() !== null;
}

const MiB = 2 ** 20;

/** Device bytes of one row chunk of the offloaded transformer forward. */
export const OFFLOAD_CHUNK_BYTES = 128 * MiB;

/**
 * Whether a transformer forward of B sequences of S tokens of width D runs offloaded (residual stream on the host,
 * row chunks on the device): when its [B, S, D] activations would not fit the wasm heap / half the RAM. The same
 * rule as `needsOffload` of src/models/transformer_offload.ts, which chooses the strategy at run time
 * (test/memory_plan.test.ts checks that the two agree).
 */
export function transformerOffloaded(B: number, S: number, D: number, backend: string, ramBytes = os.totalmem()): boolean {
  const seqBytes = B * S * D * 4;
  if (backend === 'wasm') return 10 * seqBytes + 12 * D * D * 4 > 2.5 * 2 ** 30;
  return 22 * seqBytes > 0.5 * ramBytes;
}
