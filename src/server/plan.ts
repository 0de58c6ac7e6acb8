// The memory plan of a submitted job, checked before it is queued. The model's sizes (safetensors headers, configs)
// are read once per model folder and kept: `info`'s folderInfo re-reads every header per call, which costs tens of
// milliseconds on the request thread for each submission.
import * as path from 'node:path';
import { componentBytes } from '../pipelines/components.js';
import { planMemory, type MemoryInputs, type MemoryPlan, type MemoryRequest } from '../pipelines/memory_plan.js';
import { readConfig } from '../weights/checkpoint.js';
import { chooseResidency } from '../weights/residency.js';
import type { T5Config } from '../weights/t5_names.js';
import type { TransformerConfig } from '../weights/transformer_names.js';
import { TRANSFORMER_DEFAULTS } from '../weights/transformer_names.js';
import type { VaeConfig } from '../weights/vae_names.js';

const cache = new Map<string, Omit<MemoryInputs, 'backend'>>();

/** Sizes and residencies as `openModelFolder` picks them with residency 'auto' (VAE weights per block, as `info`). */
function inputsFor(dir: string, backend: string, residency: string): Omit<MemoryInputs, 'backend'> {
  const key = `${dir}\0${backend}\0${residency}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const sub = (c: string) => path.join(dir, c);
  const sizes = { t5: componentBytes(sub('text_encoder')), transformer: componentBytes(sub('transformer')), vae: componentBytes(sub('vae')) };
  const pick = (s: { storedBytes: number; fp32Bytes: number }, r: string) => (r === 'auto' ? chooseResidency(s.fp32Bytes, s.storedBytes, backend) : (r as 'resident' | 'host' | 'disk'));
  const inputs: Omit<MemoryInputs, 'backend'> = {
    t5: { ...sizes.t5, config: readConfig<T5Config>(sub('text_encoder')), residency: pick(sizes.t5, 'auto') },
    transformer: { ...sizes.transformer, config: { ...TRANSFORMER_DEFAULTS, ...readConfig<TransformerConfig>(sub('transformer')) }, residency: pick(sizes.transformer, residency) },
    vae: { ...sizes.vae, config: readConfig<VaeConfig>(sub('vae')), weights: 'block', tiling: false },
  };
  if (cache.size > 32) cache.clear();
  cache.set(key, inputs);
  return inputs;
}

// plans of recent requests: the same few sizes are submitted over and over, and a plan is a pure function of them
const plans = new Map<string, MemoryPlan>();

export function jobMemoryPlan(dir: string, backend: string, fusedAttention: boolean, residency: string, tiling: boolean, req: MemoryRequest): MemoryPlan {
  const key = JSON.stringify([dir, backend, fusedAttention, residency, tiling, req]);
  const hit = plans.get(key);
  if (hit) return hit;
  const inputs = inputsFor(dir, backend, residency);
  const plan = planMemory({ ...inputs, vae: { ...inputs.vae, tiling }, backend, fusedAttention }, req);
  if (plans.size > 256) plans.clear();
  plans.set(key, plan);
  return plan;
}
