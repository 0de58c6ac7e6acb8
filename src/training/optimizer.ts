// AdamW as torch.optim.AdamW runs it on CPU tensors (the single-tensor path; decoupled weight decay), in float32:
//   p ← p·(1 − lr·λ);  m ← lerp(m, g, 1 − β1);  v ← β2·v + (1 − β2)·g²;
//   p ← p − (lr / (1 − β1^k)) · m / (√v / √(1 − β2^k) + ε)
// Scalars are Python doubles rounded to float32 where torch hands them to a float32 kernel; bias corrections are
// doubles. torch's lerp uses a fused multiply-add (m + w·(g − m)); its float32 sqrt may be 1 ulp off ours.
// Every trainable tensor is decayed (biases, norms, LoRA factors too), as the scripts build their groups.
import { f32, fmaF32 } from '../schedulers/scheduler.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface ParamGroup {
  /** Tensor names in this group. */
  names: readonly string[];
  /** The group's base learning rate (the LR schedule multiplies it). */
  lr: number;
}

export interface AdamWState {
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly state = new Map<string, AdamWState>();

  constructor(readonly groups: readonly ParamGroup[], o: AdamWOptions = {}) {
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 1e-2;
    const seen = new Set<string>();
    for (const g of groups) {
      for (const n of g.names) {
        if (seen.has(n)) throw new Error(`AdamW: "${n}" is in more than one parameter group`);
        seen.add(n);
      }
    }
  }

  /**
   * One step with the given per-group learning rates (after the LR schedule). Tensors without a gradient are
   * skipped (torch: grad is None), their state untouched.
   */
  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>, lrs: readonly number[]): void {
    if (lrs.length !== this.groups.length) throw new Error(`AdamW: ${lrs.length} learning rates for ${this.groups.length} groups`);
    this.groups.forEach((group, gi) => {
      const lr = lrs[gi]!;
      for (const name of group.names) {
        const g = grads.get(name);
        if (!g) continue;
        const p = params.get(name);
        if (!p) throw new Error(`AdamW: no parameter "${name}"`);
        if (p.length !== g.length) throw new Error(`AdamW: "${name}" has ${p.length} values but its gradient ${g.length}`);
        let st = this.state.get(name);
        if (!st) this.state.set(name, (st = { step: 0, expAvg: new Float32Array(p.length), expAvgSq: new Float32Array(p.length) }));
        this.update(p, g, st, lr);
      }
    });
  }

  private update(p: Float32Array, g: Float32Array, st: AdamWState, lr: number): void {
    st.step += 1;
    const k = st.step;
    const decay = f32(1 - lr * this.weightDecay);
    const w1 = f32(1 - this.beta1);
    const b2 = f32(this.beta2);
    const w2 = f32(1 - this.beta2);
    const bc1 = 1 - this.beta1 ** k;
    const bc2Sqrt = f32(Math.sqrt(1 - this.beta2 ** k));
    const negStep = f32(-(lr / bc1));
    const eps = f32(this.eps);
    const m = st.expAvg;
    const v = st.expAvgSq;
    const wd = this.weightDecay !== 0;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]!;
      const pi = wd ? f32(p[i]! * decay) : p[i]!;
      const mi = fmaF32(w1, f32(gi - m[i]!), m[i]!);
      const vi = f32(f32(v[i]! * b2) + f32(f32(w2 * gi) * gi));
      const denom = f32(f32(f32(Math.sqrt(vi)) / bc2Sqrt) + eps);
      m[i] = mi;
      v[i] = vi;
      p[i] = f32(pi + f32(f32(negStep * mi) / denom));
    }
  }
}
