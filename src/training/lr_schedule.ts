// Learning-rate schedules of the training scripts: diffusers' get_scheduler (optimization.py:40-77, 123-284) as
// CogVideoX-Fun's train.py builds it (train.py:1206-1211: num_warmup_steps = --lr_warmup_steps, num_training_steps =
// --max_train_steps, num_cycles and power left at get_scheduler's 1 and 1.0; --lr_scheduler offers the six names
// below, train.py:402-409). LambdaLR sets lr = base·λ(0) at construction, so optimizer step k (1-based) runs with
// base·λ(k − 1): with warmup W the first step has lr 0 (Adam's moments and step count still advance). The scripts
// multiply W and T by the process count and step the scheduler that many times per optimizer step; for one process
// that is the table below. λ depends only on the step, so a resumed run may change the schedule (as the original,
// whose saved LambdaLR state keeps the step and takes the lambda from the new arguments).

export type LrSchedulerName = 'linear' | 'cosine' | 'cosine_with_restarts' | 'polynomial' | 'constant' | 'constant_with_warmup';
export const LR_SCHEDULERS: readonly LrSchedulerName[] = ['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup'];

/** get_polynomial_decay_schedule_with_warmup's lr_end (get_scheduler passes no other). */
export const POLYNOMIAL_LR_END = 1e-7;

export interface LrSchedule {
  name: LrSchedulerName;
  warmupSteps: number;
  /** num_training_steps (--max-train-steps): where the decaying schedules reach their end. */
  trainingSteps: number;
  /** optimizer.defaults["lr"] (--learning-rate): polynomial decays towards lr_end relative to it. */
  baseLr: number;
}

/** A schedule's argument errors, as get_scheduler raises them (before any step). */
export function checkLrSchedule(s: LrSchedule): void {
  if (!LR_SCHEDULERS.includes(s.name)) throw new Error(`--lr-scheduler ${String(s.name)}: expected one of ${LR_SCHEDULERS.join(', ')}`);
  if (s.name === 'polynomial' && !(s.baseLr > POLYNOMIAL_LR_END)) {
    // optimization.py:260-261
    throw new Error(`--lr-scheduler polynomial decays to ${POLYNOMIAL_LR_END}: --learning-rate must be larger, got ${s.baseLr}`);
  }
}

/** λ(s) after s scheduler steps (Python doubles, as LambdaLR computes base_lr · λ). */
export function lrFactor(sched: LrSchedule, completedSteps: number): number {
  const { name, warmupSteps: w, trainingSteps: t } = sched;
  const s = completedSteps;
  if (!LR_SCHEDULERS.includes(name)) throw new Error(`--lr-scheduler ${String(name)}: expected one of ${LR_SCHEDULERS.join(', ')}`);
  if (name === 'constant') return 1;
  if (s < w) return s / Math.max(1, w); // every other schedule warms up linearly
  switch (name) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (t - s) / Math.max(1, t - w));
    case 'cosine': {
      const progress = (s - w) / Math.max(1, t - w);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress))); // num_cycles 0.5
    }
    case 'cosine_with_restarts': {
      const progress = (s - w) / Math.max(1, t - w);
      if (progress >= 1) return 0;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((1 * progress) % 1)))); // num_cycles 1: no restart
    }
    case 'polynomial': {
      const lrEnd = POLYNOMIAL_LR_END;
      const lrInit = sched.baseLr;
      // s == t == w divides by zero in the original (after the last step, which never asks for it here)
      if (s > t || t === w) return lrEnd / lrInit;
      const pctRemaining = 1 - (s - w) / (t - w);
      return ((lrInit - lrEnd) * pctRemaining ** 1 + lrEnd) / lrInit; // power 1.0
    }
  }
}

/** The lr of each parameter group for the optimizer step after `completedSteps` steps. */
export function groupLrs(sched: LrSchedule, completedSteps: number, baseLrs: readonly number[]): number[] {
  const f = lrFactor(sched, completedSteps);
  return baseLrs.map((lr) => lr * f);
}
