// EMA of the trained weights (full fine-tune with --use_ema): diffusers training_utils.py EMAModel with the defaults
// train.py uses (decay 0.9999, min_decay 0, update_after_step 0, no warmup; tu.py:310-323, 419-494). The shadow starts
// as a copy of the weights; each optimizer step: n += 1, d = get_decay(n), s ← s − (1 − d)·(s − p) for trained
// tensors (a copy for frozen ones). The first update has d = 0.
import { f32 } from '../schedulers/scheduler.js';

export interface EmaOptions {
  decay?: number;
  minDecay?: number;
  updateAfterStep?: number;
}

export class Ema {
  readonly shadow = new Map<string, Float32Array>();
  optimizationStep = 0;
  curDecay = 0;
  readonly decay: number;
  readonly minDecay: number;
  readonly updateAfterStep: number;

  constructor(params: ReadonlyMap<string, Float32Array>, o: EmaOptions = {}) {
    this.decay = o.decay ?? 0.9999;
    this.minDecay = o.minDecay ?? 0;
    this.updateAfterStep = o.updateAfterStep ?? 0;
    for (const [k, v] of params) this.shadow.set(k, v.slice());
  }

  getDecay(optimizationStep: number): number {
    const step = Math.max(0, optimizationStep - this.updateAfterStep - 1);
    if (step <= 0) return 0;
    const d = (1 + step) / (10 + step);
    return Math.max(Math.min(d, this.decay), this.minDecay);
  }

  /** One EMA update; `trained(name)` says whether the tensor requires grad (else the shadow copies it). */
  step(params: ReadonlyMap<string, Float32Array>, trained: (name: string) => boolean = () => true): void {
    this.optimizationStep += 1;
    const d = this.getDecay(this.optimizationStep);
    this.curDecay = d;
    const oneMinus = f32(1 - d);
    for (const [k, p] of params) {
      const s = this.shadow.get(k);
      if (!s) throw new Error(`EMA: no shadow for "${k}"`);
      if (!trained(k)) {
        s.set(p);
        continue;
      }
      for (let i = 0; i < s.length; i++) s[i] = f32(s[i]! - f32(oneMinus * f32(s[i]! - p[i]!)));
    }
  }
}
