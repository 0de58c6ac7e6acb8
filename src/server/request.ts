// A submitted job → the JobSpec the workers run, with every check that needs no weights done first: the fields go
// through the CLI's own flag parser and resolver (so the API accepts exactly what `generate` accepts, and its
// messages name the API's fields), uploads are decoded on the checker thread, and the memory plan is consulted.
import * as path from 'node:path';
import { readDemoInfo } from '../cli/demo.js';
import { oneLine } from '../cli/errors.js';
import { resolveRun, type ResolvedRun } from '../cli/generate.js';
import { inspectModelFolder } from '../cli/model_folder.js';
import { DEFAULT_LORA_WEIGHT, parseGenerateArgs, parseLora, type GenerateFlags } from '../cli/options.js';
import { sizeFromReference } from '../pipelines/rules.js';
import { cliMessageToApi, FILE_FIELDS, JOB_FIELDS, type FieldValue, type FileField } from './fields.js';
import { relativeName, resolveInside } from './models.js';
import { jobMemoryPlan } from './plan.js';
import type { UploadProbe } from './probe.js';
import { RequestError, type JobSettings, type JobSpec, type ResultFormat } from './types.js';

export interface CollectedJob {
  fields: Record<string, FieldValue>;
  /** staged uploads (inside the job's work folder) */
  files: Partial<Record<FileField, string>>;
}

export interface BuildContext {
  outputDir: string;
  modelsDir?: string;
  /** the server's model (absolute), or undefined for the bundled demo model */
  defaultModel?: string;
  /** the workers' backend, for the memory plan */
  backend: string;
  /** the workers run the native fused attention (its memory terms differ) */
  fusedAttention?: boolean;
  probe: UploadProbe;
}

/** `<output-dir>/.<id>.partial`: where a job's uploads and output live until it is committed. */
export function workDirFor(outputDir: string, id: string): string {
  return path.join(outputDir, `.${id}.partial`);
}

function apiError(e: unknown, hide: string[]): RequestError {
  if (e instanceof RequestError) return e;
  let msg = oneLine(e);
  for (const h of hide) if (h) msg = msg.split(`${h}${path.sep}`).join('').split(h).join('');
  const { message, field } = cliMessageToApi(msg);
  return new RequestError(400, field ?? guessField(message), message);
}

function guessField(message: string): string | undefined {
  if (/model/i.test(message)) return 'model';
  return undefined;
}

// A model folder's configs, read at most once per FOLDER_TTL_MS: the checks of a submission read four JSON files
// and test a dozen paths otherwise, about a seventh of the server's time per submission (CPU profile of `serve
// --redis` under bench/queue.ts --trivial). A folder changed or removed is noticed within the TTL (and by the worker that runs the job).
const FOLDER_TTL_MS = 5000;
function cachedRead<T>(read: (dir: string) => T): (dir: string) => T {
  const hits = new Map<string, { at: number; value: T }>();
  return (dir) => {
    const now = performance.now();
    const hit = hits.get(dir);
    if (hit && now - hit.at < FOLDER_TTL_MS) return hit.value;
    const value = read(dir); // throws for a broken folder or demo.json: never cached
    if (hits.size > 64) hits.clear();
    hits.set(dir, { at: now, value });
    return value;
  };
}
const inspectCached = cachedRead(inspectModelFolder);
const demoInfoCached = cachedRead(readDemoInfo);

function randomSeed(): string {
  // CogVideoX-Fun's UI: seed -1 or empty → np.random.randint(0, 1e10)
  return String(Math.floor(Math.random() * 1e10));
}

export async function buildJobSpec(id: string, c: CollectedJob, ctx: BuildContext): Promise<JobSpec> {
  const workDir = workDirFor(ctx.outputDir, id);
  const hide = [workDir, ctx.modelsDir ? path.resolve(ctx.modelsDir) : ''];
  const f = c.fields;
  for (const name of Object.keys(f)) if (!JOB_FIELDS[name]) throw new RequestError(400, name, `unknown field "${name}"`);

  const argv: string[] = [];
  const model = typeof f.model === 'string' && f.model !== '' ? resolveInside(ctx.modelsDir, f.model, 'model') : ctx.defaultModel;
  if (model) argv.push(`--model=${model}`);
  let seed: string | undefined;
  if (f.seed !== undefined) {
    const s = String(f.seed).trim();
    seed = s === '' || s === '-1' ? randomSeed() : s;
    argv.push(`--seed=${seed}`);
  }
  const loras: { path: string; weight: number }[] = [];
  for (const [name, v] of Object.entries(f)) {
    const spec = JOB_FIELDS[name]!;
    if (!spec.flag || name === 'model' || name === 'seed') continue;
    if (spec.type === 'boolean') {
      if (v === true) argv.push(`--${spec.flag}`);
    } else if (spec.type === 'reference') {
      if (v === true) argv.push(`--${spec.flag}=512`);
      else if (typeof v === 'number') argv.push(`--${spec.flag}=${v}`);
    } else if (spec.type === 'lora') {
      for (const l of v as { path: string; weight?: number }[]) {
        let parsed: { path: string; weight: number };
        try {
          parsed = l.weight === undefined ? parseLora(l.path) : { path: l.path, weight: l.weight };
        } catch (e) {
          throw apiError(e, hide);
        }
        const abs = resolveInside(ctx.modelsDir, parsed.path, 'lora');
        loras.push({ path: abs, weight: parsed.weight ?? DEFAULT_LORA_WEIGHT });
        argv.push(`--lora=${abs}:${parsed.weight}`);
      }
    } else {
      argv.push(`--${spec.flag}=${String(v)}`);
    }
  }
  for (const k of FILE_FIELDS) if (c.files[k]) argv.push(`--${JOB_FIELDS[k]!.flag}=${c.files[k]}`);
  const format = (f.format as ResultFormat | undefined) ?? (f.frames === 1 ? 'png' : 'mp4');
  if (format === 'png' && typeof f.frames === 'number' && f.frames > 1) throw new RequestError(400, 'format', `format png holds one frame; frames is ${f.frames} (use mp4 or gif)`);
  const resultName = `sample.${format}`;
  argv.push(`--out=${path.join(workDir, resultName)}`);

  let flags: GenerateFlags;
  try {
    flags = parseGenerateArgs(argv);
  } catch (e) {
    throw apiError(e, hide);
  }

  // uploads: decoded now (on the checker thread), so a corrupt file is a 400 and not a failed job
  const dims: Partial<Record<FileField, { width: number; height: number }>> = {};
  await Promise.all(
    FILE_FIELDS.map(async (k) => {
      const file = c.files[k];
      if (!file) return;
      const r = await ctx.probe.probe(k === 'video' ? 'video' : k === 'mask' ? 'mask' : 'image', file);
      if (!r.ok) throw new RequestError(400, k, `${k}: ${r.error.split(file).join('the upload')}`);
      dims[k] = { width: r.width, height: r.height };
    }),
  );

  let run: ResolvedRun;
  try {
    run = resolveRun(flags, inspectCached, demoInfoCached);
  } catch (e) {
    throw apiError(e, hide);
  }
  const job = run.job;
  if (format === 'png' && job.frames > 1) throw new RequestError(400, 'format', `format png holds one frame; this job makes ${job.frames} (use mp4 or gif)`);
  // one video per job, written inside the job's folder (not where the CLI would put its temporaries)
  job.outTmp = path.join(workDir, resultName);
  job.outTmps = [job.outTmp];

  // the memory plan, at the size the worker will use
  let { height, width } = job;
  if (job.resizeToReference) {
    const ref = dims.video ?? dims.image;
    if (ref) [height, width] = sizeFromReference(ref.height, ref.width, job.resizeToReference);
  }
  if (height !== undefined && width !== undefined) {
    const perCall = job.longVideo ? Math.min(job.longVideo.segment, job.frames) : job.frames;
    const backend = ctx.backend === 'wasm' ? 'wasm' : 'tensorflow';
    let plan;
    try {
      plan = jobMemoryPlan(job.model, backend, ctx.fusedAttention ?? false, job.residency ?? 'auto', job.tiling, {
        height,
        width,
        numFrames: perCall,
        guidanceScale: job.guidance,
        maxSequenceLength: job.maxSequenceLength,
        image: !!(job.image || job.endImage),
        sourceVideo: !!job.video,
      });
    } catch (e) {
      throw apiError(e, hide);
    }
    if (!plan.fits) {
      const field = f.height !== undefined || f.width !== undefined ? 'height' : f.frames !== undefined ? 'frames' : 'resizeToReference';
      throw new RequestError(400, field, cliMessageToApi(`width×height ${width}×${height}, ${perCall} frames does not fit this machine: ${plan.problems.join('; ')}`).message);
    }
  }

  const settings: JobSettings = {
    model: model ? relativeName(ctx.modelsDir, model) : 'demo',
    prompt: job.prompt,
    negativePrompt: job.negativePrompt,
    frames: job.frames,
    height: job.height,
    width: job.width,
    resizeToReference: job.resizeToReference,
    steps: job.steps,
    guidance: job.guidance,
    sampler: job.sampler,
    seed: job.seed,
    strength: job.strength,
    fps: job.fps,
    lora: loras.map((l) => ({ path: relativeName(ctx.modelsDir, l.path), weight: l.weight })),
    longVideo: !!job.longVideo,
    segment: job.longVideo?.segment,
    overlap: job.longVideo?.overlap,
    tiling: job.tiling,
    format,
    inputs: FILE_FIELDS.filter((k) => c.files[k]),
  };
  return { id, job, settings, workDir, finalDir: path.join(ctx.outputDir, id), resultName, submittedAt: new Date().toISOString() };
}
