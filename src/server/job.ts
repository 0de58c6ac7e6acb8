// The job function: one generation from a JobSpec to a committed output folder. Every queue calls this one function
// (the in-process worker threads here; a remote worker the same way), so what "done" means is defined once:
//   <output-dir>/.<id>.partial/   uploads (inputs/), the result being written, record.json
//   <output-dir>/<id>/            the same folder after one rename: the commit point
// A job that fails or is cancelled removes its partial folder; a reader never sees a half-written result.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InterruptedError } from '../cli/errors.js';
import { runJob } from '../cli/job.js';
import type { JobEvent } from '../cli/protocol.js';
import type { JobResult, JobSpec } from './types.js';

/**
 * Cancellation word shared with whoever may cancel the job: 0 running, 1 cancel requested, 2 committing. The
 * canceller sets 1 only from 0 and the job commits only from 0, so a job is either cancelled or done, never both.
 */
export const STOP_NONE = 0;
export const STOP_REQUESTED = 1;
export const STOP_COMMITTING = 2;

export interface JobHooks {
  emit: (e: JobEvent) => void;
  /** the shared word above (an Int32Array of length 1 on a SharedArrayBuffer) */
  stop: Int32Array;
  /** backend description, written into the record */
  backend?: string;
}

/**
 * The result of a job whose folder is already committed (record.json inside), else undefined. A queue that delivers
 * a job at least once (Redis) may run it again after its first run committed; the job id names the folder, so the
 * second run finds it here and the output is written once.
 */
export function committedResult(spec: JobSpec): JobResult | undefined {
  let record: { seconds?: number; output?: { file?: string; width?: number; height?: number; frames?: number } };
  try {
    record = JSON.parse(fs.readFileSync(path.join(spec.finalDir, 'record.json'), 'utf8')) as typeof record;
  } catch {
    return undefined;
  }
  const o = record.output ?? {};
  return { dir: spec.finalDir, file: path.join(spec.finalDir, o.file ?? spec.resultName), width: o.width ?? 0, height: o.height ?? 0, frames: o.frames ?? 0, seconds: record.seconds ?? 0 };
}

export async function executeJob(spec: JobSpec, hooks: JobHooks): Promise<JobResult> {
  const t0 = performance.now();
  const earlier = committedResult(spec);
  if (earlier) return earlier;
  const requested = () => Atomics.load(hooks.stop, 0) === STOP_REQUESTED;
  let size = { width: 0, height: 0, frames: 0 };
  try {
    fs.mkdirSync(spec.workDir, { recursive: true });
    await runJob(
      spec.job,
      (e) => {
        if (e.type === 'done') size = { width: e.width, height: e.height, frames: e.frames };
        if (e.type !== 'done' && e.type !== 'failed') hooks.emit(e);
      },
      requested,
    );
    if (requested()) throw new InterruptedError('cancelled');
    const finishedAt = new Date().toISOString();
    const seconds = (performance.now() - t0) / 1000;
    const record = {
      id: spec.id,
      submittedAt: spec.submittedAt,
      finishedAt,
      seconds: Math.round(seconds * 1000) / 1000,
      backend: hooks.backend,
      settings: spec.settings,
      output: { file: spec.resultName, ...size },
    };
    const recordTmp = path.join(spec.workDir, '.record.json.tmp');
    fs.writeFileSync(recordTmp, `${JSON.stringify(record, null, 2)}\n`);
    fs.renameSync(recordTmp, path.join(spec.workDir, 'record.json'));
    // the commit point: from here on a cancel request is too late
    if (Atomics.compareExchange(hooks.stop, 0, STOP_NONE, STOP_COMMITTING) !== STOP_NONE) throw new InterruptedError('cancelled');
    try {
      fs.renameSync(spec.workDir, spec.finalDir);
    } catch (e) {
      // another run of the same job committed first (a retried job whose first worker lost its lock): keep that one
      const first = committedResult(spec);
      if (!first) throw e;
      removePartial(spec.workDir);
      return first;
    }
    return { dir: spec.finalDir, file: path.join(spec.finalDir, spec.resultName), ...size, seconds };
  } catch (e) {
    removePartial(spec.workDir);
    throw e;
  }
}

/** Deletes a job's partial folder (a failed, cancelled or abandoned job). */
export function removePartial(workDir: string): void {
  fs.rmSync(workDir, { recursive: true, force: true });
}
