// `cogvideox-fun generate`, main-thread side: flags → a resolved job (every check that needs no weights happens
// here, so mistakes fail in milliseconds), the worker that computes it, progress, Ctrl-C, and the final rename of
// the output into place (the commit point: an interrupted run never leaves an output file).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SHARE_ENV, Worker } from 'node:worker_threads';
import { planLongVideo } from '../pipelines/long_video.js';
import { bundledDemoInfo, DEMO_DEFAULTS, defaultGuidance, demoModelDir, demoNotice, readDemoInfo, samplingDefaults, type DemoInfo } from './demo.js';
import { InterruptedError, oneLine, UsageError } from './errors.js';
import { defaultRequest, inspectModelFolder, isFunKind, type ModelFolder } from './model_folder.js';
import { outputKind, parseGenerateArgs, type GenerateFlags } from './options.js';
import { Progress } from './progress.js';
import type { GenerateJob, JobEvent } from './protocol.js';
import { generateUsage } from './usage.js';

/** The predict scripts' negative prompt (predict_t2v.py / predict_i2v.py / predict_v2v.py). */
export const FUN_NEGATIVE_PROMPT =
  'The video is not of a high quality, it has a low resolution. Watermark present in each frame. The background is solid. Strange body and strange trajectory. Distortion. ';

export interface ResolvedRun {
  job: GenerateJob;
  out: string;
  /** the files written: [out], or the numbered names with --num-videos N > 1 */
  outs: string[];
  demo: boolean;
  /** the demo model's demo.json (what it knows, whether it is trained); null with --model or without the file */
  demoInfo: DemoInfo | null;
  folder: ModelFolder;
  notes: string[];
}

function fileMustExist(flag: string, file: string | undefined, kind: 'file' | 'file or folder' = 'file'): void {
  if (file === undefined) return;
  if (!fs.existsSync(file)) throw new Error(`--${flag} ${file}: ${kind} not found`);
  if (kind === 'file' && fs.statSync(file).isDirectory()) throw new Error(`--${flag} ${file}: is a folder, expected a file`);
}

/** Flags + the model folder → the job the worker runs (defaults as the predict scripts / THUDM cli_demo). */
/** `inspect`, `demoInfo`: how the model folder and its demo.json are read (the server passes cached readers: it
 *  resolves every submission). */
export function resolveRun(
  flags: GenerateFlags,
  inspect: (dir: string) => ModelFolder = inspectModelFolder,
  demoInfoOf: (dir: string) => DemoInfo | null = readDemoInfo,
): ResolvedRun {
  const demo = flags.model === undefined;
  const dir = demo ? demoModelDir() : path.resolve(flags.model!);
  const folder = inspect(dir);
  const demoInfo = demo ? demoInfoOf(dir) : null;
  const fun = isFunKind(folder.kind);
  const notes: string[] = [];

  if (folder.kind !== 'fun-inp') {
    const what = folder.kind === 'i2v' ? 'image-to-video' : 'text-to-video';
    // THUDM text-to-video models take --video through diffusers' CogVideoXVideoToVideoPipeline (THUDM cli_demo v2v)
    const inpaintOnly = [['end-image', flags.endImage], ['mask', flags.mask], ...(folder.kind === 't2v' ? [] : [['video', flags.video]])] as const;
    for (const [flag, v] of inpaintOnly) {
      if (v !== undefined) throw new UsageError(`--${flag} needs a CogVideoX-Fun InP model; ${folder.variant} is a ${what} model`);
    }
    if (flags.longVideo) throw new UsageError(`--long-video needs a CogVideoX-Fun InP model; ${folder.variant} is a ${what} model`);
    if (folder.kind !== 'i2v' && flags.image !== undefined) throw new UsageError(`--image needs an image-to-video model; ${folder.variant} is text-to-video only`);
    if (folder.kind === 'i2v' && flags.image === undefined) throw new UsageError(`${folder.variant} is an image-to-video model: give the first frame with --image`);
  }
  if (!demo && flags.prompt === undefined) throw new UsageError('--prompt is required with --model (what the video should show)');
  fileMustExist('image', flags.image);
  fileMustExist('end-image', flags.endImage);
  fileMustExist('video', flags.video, 'file or folder');
  fileMustExist('mask', flags.mask);
  for (const l of flags.loras) fileMustExist('lora', l.path);

  // frames: the model's limit decides what is possible
  const max = folder.maxFrames;
  const defaults = defaultRequest(folder, demo, demoInfo?.output);
  const sampling = samplingDefaults(demo);
  let frames = flags.frames ?? defaults.frames;
  if (flags.longVideo) {
    try {
      planLongVideo(frames, flags.longVideo.segment, flags.longVideo.overlap);
    } catch (e) {
      throw new UsageError(`--long-video: ${oneLine(e)}`);
    }
  }
  const perCall = flags.longVideo ? Math.min(flags.longVideo.segment, frames) : frames;
  if (perCall > max) {
    const flag = flags.longVideo ? '--segment' : '--frames';
    throw new UsageError(`${flag} ${perCall}: ${folder.variant} makes at most ${max} frames per run (${folder.maxFramesWhy})${flags.longVideo ? '' : '; use --long-video for more'}`);
  }
  if (fun && folder.transformer.patch_size_t && !flags.longVideo && frames > 1) {
    // CogVideoX 1.5: an odd latent count gets one more latent frame, as the predict scripts do
    const T = Math.floor((frames - 1) / 4) + 1;
    if (T % folder.transformer.patch_size_t !== 0 && frames + 4 <= max) {
      notes.push(`CogVideoX 1.5 needs an even number of latent frames: --frames ${frames} → ${frames + 4} (as the predict scripts)`);
      frames += 4;
    }
  }

  let height = flags.height;
  let width = flags.width;
  if (flags.resizeToReference === undefined) {
    height ??= defaults.height;
    width ??= defaults.width;
  }

  const out = path.resolve(flags.out ?? (frames === 1 ? 'output.png' : 'output.mp4'));
  const outKind = outputKind(flags.out ?? out);
  if (outKind === 'png' && frames > 1) throw new UsageError(`--out ${flags.out ?? out}: a .png holds one frame; use a folder for ${frames} PNG frames, or .mp4 / .gif`);
  const outs = numberedOutputs(out, flags.numVideos);
  for (const o of outs) {
    if (!fs.existsSync(o)) continue;
    const st = fs.statSync(o);
    if (outKind !== 'dir' && st.isDirectory()) throw new Error(`--out ${o}: is a folder`);
    if (outKind === 'dir' && !st.isDirectory()) throw new Error(`--out ${o}: exists and is not a folder`);
    if (outKind === 'dir' && fs.readdirSync(o).length > 0) throw new Error(`--out ${o}: folder exists and is not empty; refusing to mix frames into it`);
  }
  const outTmps = outs.map((o) => tempOutput(o, outKind));

  const job: GenerateJob = {
    model: dir,
    kind: folder.kind,
    // a trained demo model is asked for something it knows; the random stand-in for anything
    prompt: flags.prompt ?? (demoInfo?.trained ? demoInfo.example_prompt : DEMO_DEFAULTS.prompt),
    negativePrompt: flags.negativePrompt ?? (fun ? FUN_NEGATIVE_PROMPT : ''),
    image: flags.image && path.resolve(flags.image),
    endImage: flags.endImage && path.resolve(flags.endImage),
    video: flags.video && path.resolve(flags.video),
    mask: flags.mask && path.resolve(flags.mask),
    strength: flags.strength ?? (flags.video !== undefined ? 0.7 : 1),
    frames,
    height,
    width,
    resizeToReference: flags.resizeToReference,
    steps: flags.steps ?? sampling.steps,
    guidance: flags.guidance ?? defaultGuidance(sampling, flags),
    maxSequenceLength: folder.transformer.max_text_seq_length,
    sampler: flags.sampler ?? folder.defaultSampler,
    seed: flags.seed ?? '43',
    numVideos: flags.numVideos,
    fps: flags.fps,
    loras: flags.loras.map((l) => ({ path: path.resolve(l.path), weight: l.weight })),
    longVideo: flags.longVideo,
    tiling: flags.tiling,
    backend: flags.backend,
    residency: flags.residency,
    outTmp: outTmps[0]!,
    outTmps,
    outKind,
  };
  return { job, out, outs, demo, demoInfo, folder, notes };
}

/** --num-videos N > 1: NAME_0.EXT … NAME_{N-1}.EXT next to --out (a folder: NAME_0/ …); N = 1: --out itself. */
export function numberedOutputs(out: string, n: number): string[] {
  if (n <= 1) return [out];
  const ext = path.extname(out);
  const stem = out.slice(0, out.length - ext.length);
  return Array.from({ length: n }, (_, i) => `${stem}_${i}${ext}`);
}

/** A unique name next to the output, with the same extension (the writer picks the format by it). */
function tempOutput(out: string, kind: string): string {
  const base = path.basename(out).replace(/\./g, '_');
  const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  return path.join(path.dirname(out), kind === 'dir' ? `.${base}-${tag}-partial` : `.${base}-${tag}-partial.${kind}`);
}

/** Removes the worker's temporary output and anything the writer left next to it (a write cut short). */
function removeTemp(tmp: string): void {
  fs.rmSync(tmp, { recursive: true, force: true });
  const dir = path.dirname(tmp);
  const prefix = `.${path.basename(tmp)}.`;
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir)) if (name.startsWith(prefix)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
}

/** Creates the output's folder if needed (as the predict scripts' os.makedirs); returns the first folder created. */
function ensureParent(out: string): string | null {
  let first: string | null = null;
  for (let d = path.dirname(out); !fs.existsSync(d); d = path.dirname(d)) first = d;
  if (first) fs.mkdirSync(path.dirname(out), { recursive: true });
  return first;
}

/** Moves the finished temporary into place (replacing a file, or an empty folder for frame folders). */
function commitOutput(tmp: string, out: string): void {
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) fs.rmdirSync(out); // empty: checked before the run
  fs.renameSync(tmp, out);
}

function startWorker(job: GenerateJob, stopFlag: Int32Array): Worker {
  const workerData = { job, stopFlag };
  // From the TypeScript sources (a clone without dist/) the worker needs tsx too.
  if (import.meta.url.endsWith('.ts')) {
    const entry = new URL('./worker.ts', import.meta.url).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
    return new Worker(boot, { eval: true, workerData, env: SHARE_ENV });
  }
  return new Worker(new URL('./worker.js', import.meta.url), { workerData, env: SHARE_ENV });
}

function describe(r: ResolvedRun): string {
  const j = r.job;
  const size = j.height !== undefined ? `${j.width}×${j.height}` : `size from the reference (base ${j.resizeToReference})`;
  const mode = j.video ? `video-to-video (strength ${j.strength})` : j.image ? (j.endImage ? 'start+end images to video' : 'image to video') : 'text to video';
  return (
    `${r.demo ? 'demo model' : r.folder.variant}: ${mode}, ${j.frames} frame${j.frames === 1 ? '' : 's'} ${size}, ${j.steps} steps ${j.sampler}, guidance ${j.guidance}, seed ${j.seed}` +
    (j.loras.length ? `, ${j.loras.length} LoRA` : '') +
    (j.longVideo ? `, long video (segments of ${j.longVideo.segment}, overlap ${j.longVideo.overlap})` : '')
  );
}

/** Runs `generate`; returns the exit code. */
export async function generate(argv: readonly string[]): Promise<number> {
  const flags = parseGenerateArgs(argv);
  if (flags.help) {
    process.stdout.write(generateUsage(bundledDemoInfo()));
    return 0;
  }
  const progress = new Progress(flags.json ? 'json' : flags.quiet ? 'quiet' : 'human');
  let run: ResolvedRun;
  try {
    run = resolveRun(flags);
  } catch (e) {
    progress.error(oneLine(e), e instanceof UsageError ? 2 : 1, flags.debug && !(e instanceof UsageError) ? (e as Error).stack : undefined);
    return e instanceof UsageError ? 2 : 1;
  }
  const { job, out, outs } = run;
  const outTmps = job.outTmps ?? [job.outTmp];
  progress.outputName = outs.map((o) => path.relative(process.cwd(), o) || o).join(', ');
  progress.expectedSteps = job.steps;
  progress.notice([...(run.demo ? demoNotice(run.demoInfo) : []), `${describe(run)} → ${progress.outputName}`, ...run.notes], {
    model: job.model,
    demo: run.demo,
    variant: run.folder.variant,
    job: { ...job, outTmp: undefined, outTmps: undefined },
    output: out,
  });

  let createdDir: string | null;
  try {
    createdDir = ensureParent(out);
  } catch (e) {
    progress.error(`--out ${out}: cannot create its folder (${oneLine(e)})`, 1);
    return 1;
  }
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2'; // libtensorflow's own log lines would cut through the progress bar
  const stopFlag = new Int32Array(new SharedArrayBuffer(4));
  const worker = startWorker(job, stopFlag);
  let interrupts = 0;
  const stop = (now: boolean) => {
    interrupts++;
    Atomics.store(stopFlag, 0, 1);
    if (now || interrupts > 1) void worker.terminate();
    else if (progress.mode === 'human') process.stderr.write('\ninterrupting: stopping after the current step (Ctrl-C again to stop at once)\n');
  };
  const onSigint = () => stop(false);
  const onSigterm = () => stop(true);
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);

  let result: Extract<JobEvent, { type: 'done' | 'failed' }> | null = null;
  let crash: Error | null = null;
  try {
    await new Promise<void>((resolve) => {
      worker.on('message', (e: JobEvent) => {
        if (e.type === 'done' || e.type === 'failed') result = e;
        else progress.event(e);
      });
      worker.on('error', (e) => (crash = e));
      worker.on('exit', () => resolve());
    });
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    progress.close();
  }

  const interrupted = interrupts > 0;
  const r = result as Extract<JobEvent, { type: 'done' | 'failed' }> | null;
  if (r?.type === 'done' && !interrupted) {
    try {
      outTmps.forEach((tmp, i) => commitOutput(tmp, outs[i]!));
    } catch (e) {
      outTmps.forEach(removeTemp);
      progress.error(`cannot move the result into place: ${oneLine(e)}`, 1);
      return 1;
    }
    progress.done({ output: outs.length === 1 ? out : outs.join(', '), width: r.width, height: r.height, frames: r.frames, fps: job.fps, seed: job.seed, model: job.model, demo: run.demo });
    return 0;
  }
  outTmps.forEach(removeTemp);
  if (createdDir) fs.rmSync(createdDir, { recursive: true, force: true }); // made by this run, holds nothing else
  if (interrupted) {
    progress.error(new InterruptedError('interrupted (Ctrl-C); no output written').message, 130);
    return 130;
  }
  if (r?.type === 'failed') {
    progress.error(r.message, 1, flags.debug ? r.stack : undefined);
    return 1;
  }
  const c = crash as Error | null;
  progress.error(c ? `the generation worker failed: ${oneLine(c)}` : 'the generation worker stopped without a result', 1, flags.debug ? c?.stack : undefined);
  return 1;
}
