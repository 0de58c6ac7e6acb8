// The offloaded forward's size rule and chunk budget, for the memory plan (the strategy itself: src/nn/dit/offload_ops.ts).
export { needsOffload, OFFLOAD_CHUNK_BYTES } from '../nn/dit/plan.js';
