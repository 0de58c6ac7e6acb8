// What the execution strategies of src/nn can do on this process, and what they cost — the questions the pipelines
// and the memory plan ask, so that they import no kernel. The answers come from the code that executes them.
import { nativeAttention } from './native.js';

/** True when the fused native attention kernel is used on the tensorflow backend (addon built, not turned off). */
export function fusedAttentionAvailable(): boolean {
  return nativeAttention() !== null;
}

/**
 * Whether a transformer forward of B sequences of S tokens of width D runs offloaded (residual stream on the host,
 * row chunks of OFFLOAD_CHUNK_BYTES on the device): the rule the DiT's execution plan applies at run time.
 */
export { needsOffload as transformerOffloaded, OFFLOAD_CHUNK_BYTES } from './dit/plan.js';
