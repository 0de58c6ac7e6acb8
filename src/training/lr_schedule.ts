// Learning-rate schedules of the training scripts: diffusers' get_scheduler (optimization.py:40-77) `constant` and
// `constant_with_warmup`, stepped once per optimizer step. LambdaLR sets lr = base·λ(0) at construction, so optimizer
// step k (1-based) runs with base·λ(k − 1): with warmup W the first step has lr 0 (Adam's moments and step count still
// advance). The scripts multiply W by the process count and step the scheduler that many times per optimizer step;
// for one process that is the table below.

export type LrSchedulerName = 'constant' | 'constant_with_warmup';
export const LR_SCHEDULERS: readonly LrSchedulerName[] = ['constant', 'constant_with_warmup'];

/** λ(s) after s scheduler steps (Python doubles, as LambdaLR computes base_lr · λ). */
export function lrFactor(name: LrSchedulerName, completedSteps: number, warmupSteps: number): number {
  if (name === 'constant') return 1;
  if (name === 'constant_with_warmup') return completedSteps < warmupSteps ? completedSteps / Math.max(1, warmupSteps) : 1;
  throw new Error(`--lr-scheduler ${String(name)}: expected one of ${LR_SCHEDULERS.join(', ')}`);
}

/** The lr of each parameter group for the optimizer step after `completedSteps` steps. */
export function groupLrs(name: LrSchedulerName, completedSteps: number, warmupSteps: number, baseLrs: readonly number[]): number[] {
  const f = lrFactor(name, completedSteps, warmupSteps);
  return baseLrs.map((lr) => lr * f);
}
