// Progress output of `generate`: stage lines and a step bar (cli-progress) on stderr for people; with --json one
// JSON object per line on stdout for scripts; with --quiet nothing but the error line.
import cliProgress from 'cli-progress';
import { STAGE_LABELS, type JobEvent, type Stage } from './protocol.js';

export type ProgressMode = 'human' | 'json' | 'quiet';

export interface Summary {
  output: string;
  width: number;
  height: number;
  frames: number;
  fps: number;
  seed: string;
  model: string;
  demo: boolean;
}

function seconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 90) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Step rate and ETA from step completion times (the first step also pays for loading the transformer). */
class StepClock {
  private denoiseStart = 0;
  private times: number[] = [];

  start(now: number): void {
    this.denoiseStart = now;
    this.times = [];
  }

  step(now: number): void {
    this.times.push(now);
  }

  /** Seconds per step: over the steps after the first when there are some, else the first step's time. */
  rate(): number {
    const t = this.times;
    if (t.length >= 2) return (t[t.length - 1]! - t[0]!) / 1000 / (t.length - 1);
    if (t.length === 1) return (t[0]! - this.denoiseStart) / 1000;
    return NaN;
  }

  eta(done: number, total: number): number {
    return this.rate() * (total - done);
  }
}

export class Progress {
  private readonly t0 = Date.now();
  private bar: cliProgress.SingleBar | null = null;
  private readonly clock = new StepClock();
  private stage: Stage | null = null;
  /** ' (segment i/n)' during --long-video */
  private segment = '';
  /** shown with the 'write' stage */
  outputName = '';
  /** the bar's length until the first step reports the real count (a V2V strength runs fewer) */
  expectedSteps = 1;

  constructor(
    readonly mode: ProgressMode,
    private readonly err: NodeJS.WriteStream = process.stderr,
    private readonly out: NodeJS.WriteStream = process.stdout,
  ) {}

  private elapsed(): number {
    return (Date.now() - this.t0) / 1000;
  }

  private json(obj: Record<string, unknown>): void {
    this.out.write(`${JSON.stringify({ ...obj, t: Number(this.elapsed().toFixed(3)) })}\n`);
  }

  private line(text: string): void {
    this.stopBar();
    this.err.write(`${text}\n`);
  }

  /** Lines a person should read before the run (demo notice, what will be generated). */
  notice(lines: string[], data?: Record<string, unknown>): void {
    if (this.mode === 'human') for (const l of lines) this.line(l);
    else if (this.mode === 'json') this.json({ event: 'start', ...data, notice: lines.join(' ') });
  }

  event(e: JobEvent): void {
    if (this.mode === 'quiet') return;
    if (this.mode === 'json') {
      if (e.type === 'step') {
        this.clock.step(Date.now());
        const rate = this.clock.rate();
        this.json({ event: 'step', step: e.step, steps: e.steps, secondsPerStep: round(rate), etaSeconds: round(this.clock.eta(e.step, e.steps)) });
      } else if (e.type === 'stage') {
        if (e.stage === 'denoise') this.clock.start(Date.now());
        this.json({ event: 'stage', stage: e.stage, label: STAGE_LABELS[e.stage], detail: e.detail });
      } else if (e.type !== 'failed' && e.type !== 'done') {
        const { type, ...rest } = e;
        this.json({ event: type, ...rest });
      }
      return;
    }
    switch (e.type) {
      case 'backend':
        this.line(`  backend: ${e.name}`);
        break;
      case 'size':
        break;
      case 'segment':
        this.segment = ` (segment ${e.index + 1}/${e.count})`;
        this.line(`[${seconds(this.elapsed())}] segment ${e.index + 1}/${e.count}: ${e.frames} frames from frame ${e.startFrame}`);
        break;
      case 'warning':
        this.line(`warning: ${e.message}`);
        break;
      case 'stage':
        this.stage = e.stage;
        if (e.stage === 'denoise') {
          this.clock.start(Date.now());
          this.line(`[${seconds(this.elapsed())}] ${STAGE_LABELS[e.stage]}${this.segment}`);
          this.startBar();
        } else {
          const detail = e.stage === 'write' ? this.outputName : e.detail;
          this.line(`[${seconds(this.elapsed())}] ${STAGE_LABELS[e.stage]}${detail ? ` ${detail}` : ''}`);
        }
        break;
      case 'step':
        this.clock.step(Date.now());
        this.stepProgress(e.step, e.steps);
        break;
      default:
        break;
    }
  }

  private payload(done: number, total: number) {
    const rate = this.clock.rate();
    // (not "eta": cli-progress fills that token itself)
    return { rate: Number.isFinite(rate) ? `${rate < 10 ? rate.toFixed(2) : rate.toFixed(0)} s/step` : '… s/step', remaining: seconds(this.clock.eta(done, total)) };
  }

  private startBar(): void {
    if (!this.err.isTTY) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: '  {bar} {value}/{total} steps | {rate} | ETA {remaining}',
        stream: this.err,
        hideCursor: true,
        clearOnComplete: false,
        gracefulExit: false,
        barsize: 30,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(this.expectedSteps, 0, { rate: '… s/step', remaining: '?' });
  }

  private stepProgress(done: number, total: number): void {
    const p = this.payload(done, total);
    if (this.bar) {
      this.bar.setTotal(total);
      this.bar.update(done, p);
    } else {
      // not a terminal: one plain line per step (logs, CI, the tests)
      this.err.write(`  step ${done}/${total} | ${p.rate} | ETA ${p.remaining}\n`);
    }
  }

  private stopBar(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = null;
    }
  }

  done(s: Summary): void {
    this.stopBar();
    if (this.mode === 'json') this.json({ event: 'done', ...s, seconds: Number(this.elapsed().toFixed(3)) });
    else if (this.mode === 'human') {
      this.err.write(`[${seconds(this.elapsed())}] wrote ${s.output} (${s.frames} frame${s.frames === 1 ? '' : 's'}, ${s.width}×${s.height}, ${s.fps} fps, seed ${s.seed})\n`);
    }
  }

  /** The one error line (all modes), plus a JSON event with --json. */
  error(message: string, exitCode: number, stack?: string): void {
    this.stopBar();
    if (this.mode === 'json') this.json({ event: 'error', message, exitCode });
    this.err.write(`error: ${message}\n`);
    if (stack) this.err.write(`${stack}\n`);
  }

  close(): void {
    this.stopBar();
  }

  get currentStage(): Stage | null {
    return this.stage;
  }
}

function round(x: number): number | null {
  return Number.isFinite(x) ? Number(x.toFixed(3)) : null;
}
