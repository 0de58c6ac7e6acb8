// A JobSpec as it travels through Redis to workers on other machines: every path is rewritten relative to one of
// three roots each side names for itself — the output folder ({out}, a shared filesystem), the models folder
// ({models}) and the bundled demo model ({demo}) — and a worker resolves them inside its own roots only, so a job
// can never make a worker read or write anywhere else.
import * as path from 'node:path';
import { demoModelDir } from '../cli/demo.js';
import type { GenerateJob } from '../cli/protocol.js';
import type { JobSpec } from './types.js';

export type Root = 'out' | 'models' | 'demo';
export interface Roots {
  outputDir: string;
  modelsDir?: string;
}

const ROOTS: Root[] = ['out', 'models', 'demo'];

function rootDir(roots: Roots, r: Root): string | undefined {
  if (r === 'out') return path.resolve(roots.outputDir);
  if (r === 'models') return roots.modelsDir === undefined ? undefined : path.resolve(roots.modelsDir);
  return demoModelDir();
}

/** `/srv/out/.x.partial/in.png` → `{out}/.x.partial/in.png`; a path under none of the roots is an error naming it. */
export function toPortablePath(roots: Roots, p: string, field: string): string {
  for (const r of ROOTS) {
    const dir = rootDir(roots, r);
    if (!dir) continue;
    const rel = path.relative(dir, path.resolve(p));
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) return `{${r}}/${rel.split(path.sep).join('/')}`;
  }
  throw new Error(`${field}: ${p} lies outside --output-dir, --models-dir and the demo model; remote workers could not find it`);
}

/** The inverse, inside this machine's roots only: `..`, absolute paths and unknown roots are refused. */
export function fromPortablePath(roots: Roots, p: string, field: string): string {
  const m = /^\{(out|models|demo)\}\/(.*)$/.exec(p);
  if (!m) throw new Error(`job field ${field}: "${p}" is not a portable path ({out}/, {models}/ or {demo}/)`);
  const rel = m[2]!;
  if (rel.includes('\0') || rel.split('/').some((s) => s === '..') || path.isAbsolute(rel)) throw new Error(`job field ${field}: "${p}" leaves its root`);
  const dir = rootDir(roots, m[1] as Root);
  if (!dir) throw new Error(`job field ${field}: "${p}" names the models folder, but this worker has no --models-dir`);
  return path.join(dir, ...rel.split('/').filter(Boolean));
}

const JOB_PATHS = ['model', 'image', 'endImage', 'video', 'mask', 'outTmp'] as const;

function mapSpec(spec: JobSpec, f: (p: string, field: string) => string): JobSpec {
  const job: GenerateJob = { ...spec.job, loras: spec.job.loras.map((l, i) => ({ ...l, path: f(l.path, `loras[${i}]`) })) };
  for (const k of JOB_PATHS) if (typeof job[k] === 'string') job[k] = f(job[k], k);
  if (job.outTmps) job.outTmps = job.outTmps.map((p, i) => f(p, `outTmps[${i}]`));
  return { ...spec, job, workDir: f(spec.workDir, 'workDir'), finalDir: f(spec.finalDir, 'finalDir') };
}

export function toPortableSpec(spec: JobSpec, roots: Roots): JobSpec {
  return mapSpec(spec, (p, field) => toPortablePath(roots, p, field));
}

/**
 * A portable spec → this worker's paths. Everything the job writes must lie in the job's own folders
 * (`{out}/.<id>.partial/…`, `{out}/<id>`), so a job names no other output.
 */
export function fromPortableSpec(spec: JobSpec, roots: Roots): JobSpec {
  if (!/^[0-9A-Za-z-]+$/.test(spec.id)) throw new Error(`job field id: "${spec.id}" is not a job id`);
  const own = [`{out}/.${spec.id}.partial`, `{out}/${spec.id}`];
  const writes = new Set(['workDir', 'finalDir', 'outTmp', 'image', 'endImage', 'video', 'mask']);
  return mapSpec(spec, (p, field) => {
    if ((writes.has(field) || field.startsWith('outTmps')) && !own.some((o) => p === o || p.startsWith(`${o}/`))) throw new Error(`job field ${field}: "${p}" is outside the job's own folders`);
    if (field === 'model' || field.startsWith('loras')) {
      if (!p.startsWith('{models}/') && !p.startsWith('{demo}/')) throw new Error(`job field ${field}: "${p}" must lie in the models folder`);
    }
    return fromPortablePath(roots, p, field);
  });
}

/** Moves every path of a local spec from one folder to another (a worker's per-attempt copy of the work folder). */
export function rebaseSpec(spec: JobSpec, from: string, to: string): JobSpec {
  const move = (p: string) => (p === from || p.startsWith(from + path.sep) ? to + p.slice(from.length) : p);
  const s = mapSpec(spec, (p) => move(p));
  return { ...s, finalDir: spec.finalDir };
}
