// Atomic output: everything is written under a temporary name in the target's own directory (same filesystem),
// then renamed into place, so a failed or aborted write leaves nothing behind and never a half-written file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MediaError } from './errors.js';

function tempName(target: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
}

function checkDir(target: string): void {
  const dir = path.dirname(path.resolve(target));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new MediaError(target, `output directory ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new MediaError(target, `${dir} is not a directory`);
}

/** A file may replace a file; a folder may replace only an empty folder (never user content). */
function checkTarget(target: string, kind: 'file' | 'dir'): void {
  if (!fs.existsSync(target)) return;
  const isDir = fs.statSync(target).isDirectory();
  if (kind === 'file' && isDir) throw new MediaError(target, 'is a directory');
  if (kind === 'dir' && !isDir) throw new MediaError(target, 'exists and is not a directory');
  if (kind === 'dir' && fs.readdirSync(target).length > 0) throw new MediaError(target, 'directory exists and is not empty; refusing to replace it');
}

/**
 * Runs `produce(tmp)`, which must create the file or directory `tmp`, then renames it to `target`. On any error
 * (including an abort thrown by `produce`) the temporary is removed and the error rethrown.
 */
export async function withAtomicOutput(target: string, produce: (tmp: string) => Promise<void>, kind: 'file' | 'dir' = 'file'): Promise<void> {
  checkDir(target);
  checkTarget(target, kind); // before the work, and again before the rename
  const tmp = tempName(target);
  try {
    await produce(tmp);
    checkTarget(target, kind);
    if (kind === 'dir' && fs.existsSync(target)) fs.rmdirSync(target); // empty (checked): rename cannot replace it
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

export async function writeFileAtomic(target: string, bytes: Uint8Array): Promise<void> {
  await withAtomicOutput(target, async (tmp) => fs.writeFileSync(tmp, bytes));
}
