// Where a model's weights live between uses.
//   resident: uploaded to the backend once (fastest; needs the fp32 size in backend memory),
//   host:     JS typed arrays as stored (bf16/fp16 stay 16-bit), uploaded per block just before it runs,
//   disk:     read from the file per block (the OS page cache keeps repeat reads cheap; minimal RSS).
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from './host_tensor.js';
import type { WeightStore } from './checkpoint.js';

export type Residency = 'resident' | 'host' | 'disk';

/** A change applied to some tensors every time they are read from the store (a LoRA merge: weights/lora.ts). */
export interface WeightPatch {
  readonly targets: ReadonlySet<string>;
  apply(name: string, t: HostTensor): HostTensor;
  close(): void;
}

/**
 * Reads tensors by name for a given residency: host mode caches every read tensor in JS memory. Patches apply in
 * the order added, per tensor as it is read, so no whole-model fp32 copy is ever made; disk mode re-applies them on
 * every read.
 */
export class WeightSource {
  private readonly cache = new Map<string, HostTensor>();
  private readonly patches: WeightPatch[] = [];

  constructor(readonly store: WeightStore, readonly residency: Residency) {}

  get(name: string): HostTensor {
    if (this.residency === 'disk') return this.read(name);
    let t = this.cache.get(name);
    if (!t) {
      t = this.read(name);
      if (this.residency === 'host') this.cache.set(name, t);
    }
    return t;
  }

  /** The stored tensor with every patch applied (never cached). */
  read(name: string): HostTensor {
    let t = this.store.read(name);
    for (const p of this.patches) if (p.targets.has(name)) t = p.apply(name, t);
    return t;
  }

  /** Adds a patch after the existing ones; tensors host mode already holds get it now. Takes ownership (close). */
  addPatch(p: WeightPatch): void {
    this.patches.push(p);
    for (const [name, t] of this.cache) if (p.targets.has(name)) this.cache.set(name, p.apply(name, t));
  }

  /** Reads now what host mode keeps (so load-time errors surface at load, not mid-generation). */
  preload(names: Iterable<string>): void {
    if (this.residency !== 'host') return;
    for (const n of names) this.get(n);
  }

  close(): void {
    this.cache.clear();
    for (const p of this.patches) p.close();
    this.patches.length = 0;
    this.store.close();
  }
}

/**
 * Picks a residency from sizes: resident when the fp32 weights fit the backend budget (wasm: 4 GiB heap shared with
 * activations; tensorflow: half of RAM), else host when the stored bytes fit a third of RAM, else disk.
 */
export function chooseResidency(fp32Bytes: number, storedBytes: number, backend: string = tf.getBackend()): Residency {
  const ram = os.totalmem();
  const backendBudget = backend === 'wasm' ? 2.5 * 2 ** 30 : 0.5 * ram;
  if (fp32Bytes <= backendBudget) return 'resident';
  if (storedBytes <= ram / 3) return 'host';
  return 'disk';
}
