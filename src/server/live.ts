// A running job's live state (stage, step, seconds per step, ETA, warnings) updated from the job function's events,
// and the API event each update publishes. One definition for both queues: the in-process queue applies it on the
// server, a Redis worker applies it before writing the state into the job's progress.
import { STAGE_LABELS, type JobEvent, type Stage } from '../cli/protocol.js';
import type { ServerJobEvent } from './types.js';

export interface LiveState {
  stage?: string;
  step?: number;
  steps?: number;
  secondsPerStep?: number;
  etaSeconds?: number;
  warnings: string[];
}

/** Applies one event; returns what to publish (undefined: nothing). `clock.denoiseStart` is kept between calls. */
export function applyJobEvent(i: LiveState, clock: { denoiseStart?: number }, ev: JobEvent): ServerJobEvent | undefined {
  switch (ev.type) {
    case 'stage':
      i.stage = ev.stage;
      if (ev.stage === 'denoise') {
        clock.denoiseStart = performance.now();
        i.step = 0;
        i.secondsPerStep = undefined;
        i.etaSeconds = undefined;
      }
      return { type: 'stage', stage: ev.stage, label: STAGE_LABELS[ev.stage as Stage] ?? ev.stage };
    case 'step':
      i.step = ev.step;
      i.steps = ev.steps;
      if (clock.denoiseStart !== undefined) {
        i.secondsPerStep = (performance.now() - clock.denoiseStart) / 1000 / ev.step;
        i.etaSeconds = i.secondsPerStep * (ev.steps - ev.step);
      }
      return { type: 'step', step: ev.step, steps: ev.steps, secondsPerStep: i.secondsPerStep, etaSeconds: i.etaSeconds };
    case 'segment':
      return { type: 'segment', index: ev.index, count: ev.count };
    case 'warning':
      i.warnings.push(ev.message);
      return { type: 'warning', message: ev.message };
    default:
      return undefined;
  }
}
