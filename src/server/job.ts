// The job function: one generation from a JobSpec to a committed output folder. Every queue calls this one function
// (the in-process worker threads here; a remote worker the same way), so what "done" means is defined once:
//   <output-dir>/.<id>.partial/   uploads (inputs/), the result being written, record.json
//   <output-dir>/<id>/            the same folder after one rename: the commit point
// A job that fails or is cancelled removes its partial folder; a reader never sees a half-written result. A job run
// again (the Redis queue delivers at least once) commits over the earlier output file by file, each file with one
// rename, record.json last (commitOutput), so the newest run's output is what stays and what is served.
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
  /**
   * false: the job stops once its output and record.json are complete in `spec.workDir` and returns them there; the
   * caller commits (commitOutput), after checking it still owns the job (a remote worker's lock). Default true.
   */
  commit?: boolean;
  /** a label of this run (a remote worker's attempt), written into the record */
  run?: string;
}

export async function executeJob(spec: JobSpec, hooks: JobHooks): Promise<JobResult> {
  const t0 = performance.now();
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
      run: hooks.run,
      settings: spec.settings,
      output: { file: spec.resultName, ...size },
    };
    const recordTmp = path.join(spec.workDir, '.record.json.tmp');
    fs.writeFileSync(recordTmp, `${JSON.stringify(record, null, 2)}\n`);
    fs.renameSync(recordTmp, path.join(spec.workDir, 'record.json'));
    // the commit point: from here on a cancel request is too late
    if (Atomics.compareExchange(hooks.stop, 0, STOP_NONE, STOP_COMMITTING) !== STOP_NONE) throw new InterruptedError('cancelled');
    if (hooks.commit === false) return { dir: spec.workDir, file: path.join(spec.workDir, spec.resultName), ...size, seconds };
    commitOutput(spec.workDir, spec.finalDir);
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

function fsyncPath(p: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(p, 'r');
    fs.fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on a directory (or on a read-only descriptor): the rename is still atomic
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Files under `dir`, relative, record.json last (the record is what says a folder is complete). */
function filesOf(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort((a, b) => Number(a === 'record.json') - Number(b === 'record.json'));
}

/**
 * Commits a finished job folder `from` (inside the output folder) as `to`. The first commit is one rename of the
 * folder. If `to` exists — the same job ran before (at-least-once delivery: a worker that died after committing, or
 * a retry) — each file of the new run replaces the old one atomically: moved next to it under a temporary name
 * (same directory, so same filesystem), fsynced, renamed over it. A reader that has a file open keeps reading the
 * old complete file; one that opens it afterwards gets the new complete file; nobody sees a half-written one.
 * record.json goes last, so a complete record always describes a complete output.
 */
export function commitOutput(from: string, to: string): void {
  const files = filesOf(from);
  for (const f of files) fsyncPath(path.join(from, f));
  try {
    fs.renameSync(from, to);
    fsyncPath(path.dirname(to));
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
  }
  const tag = `${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  for (const f of files) {
    const dest = path.join(to, f);
    const dir = path.dirname(dest);
    fs.mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `.${path.basename(f)}.${tag}.tmp`);
    fs.renameSync(path.join(from, f), tmp);
    fs.renameSync(tmp, dest);
    fsyncPath(dir);
  }
  removePartial(from);
}
