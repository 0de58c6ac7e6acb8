// The server's job model: what a client submits (the CLI's generation options in camelCase), what a job looks like
// while queued / running / finished, and the events a job emits. Plain data only: it crosses worker threads (and,
// with a Redis queue, processes), so nothing here holds a function or a tensor.
import type { GenerateJob, JobEvent } from '../cli/protocol.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
export type ResultFormat = 'mp4' | 'gif' | 'png';

/** The settings a job ran with, as the API names them (every default filled in), kept in its record. */
export interface JobSettings {
  model: string;
  prompt: string;
  negativePrompt: string;
  frames: number;
  height?: number;
  width?: number;
  resizeToReference?: number;
  steps: number;
  guidance: number;
  sampler: string;
  seed: string;
  strength: number;
  fps: number;
  lora: { path: string; weight: number }[];
  longVideo: boolean;
  segment?: number;
  overlap?: number;
  tiling: boolean;
  format: ResultFormat;
  /** names of the uploaded inputs (image, endImage, video, mask) */
  inputs: string[];
}

/** Everything the job function needs: plain data, so any queue can carry it. */
export interface JobSpec {
  id: string;
  /** the resolved generation, as the CLI's worker runs it; `outTmp` lies inside `workDir` */
  job: GenerateJob;
  settings: JobSettings;
  /** `<output-dir>/.<id>.partial`: uploads and the output while the job runs; renamed to `finalDir` on success */
  workDir: string;
  finalDir: string;
  /** file name of the result inside finalDir, e.g. "sample.mp4" */
  resultName: string;
  submittedAt: string;
}

/** What the job function returns when the output is committed. */
export interface JobResult {
  dir: string;
  file: string;
  width: number;
  height: number;
  frames: number;
  seconds: number;
}

/** A job as the API reports it. */
export interface JobInfo {
  id: string;
  /** submission number on this server (1, 2, …): the queue's order */
  seq: number;
  state: JobState;
  /** 1-based place among the queued jobs (queued only) */
  position?: number;
  stage?: string;
  step?: number;
  steps?: number;
  secondsPerStep?: number;
  etaSeconds?: number;
  error?: string;
  /** cancelled while running: denoising steps the worker completed after the cancel request reached it (≤ 1) */
  stepsAfterCancel?: number;
  submittedAt: string;
  startedAt?: string;
  finishedAt?: string;
  settings: JobSettings;
  /** Redis queue: runs started so far (a retry after a failure or a stalled worker adds one) */
  attempts?: number;
  /** Redis queue: the worker (host:pid) running or having run the job */
  worker?: string;
  result?: { url: string; width: number; height: number; frames: number; format: ResultFormat; path: string };
  warnings: string[];
}

/** Events a job publishes (Server-Sent Events carry them by `type`). */
export type ServerJobEvent =
  | { type: 'queued'; position: number }
  | { type: 'started' }
  | { type: 'stage'; stage: string; label: string }
  | { type: 'step'; step: number; steps: number; secondsPerStep?: number; etaSeconds?: number }
  | { type: 'segment'; index: number; count: number }
  | { type: 'warning'; message: string }
  | { type: 'done'; result: NonNullable<JobInfo['result']> }
  | { type: 'failed'; error: string }
  | { type: 'cancelled' };

/** Messages from a generation worker thread to the pool. */
export type WorkerMessage =
  | { type: 'ready'; backend: string; backendName: string }
  | { type: 'event'; id: string; event: JobEvent }
  | { type: 'finished'; id: string; ok: true; result: JobResult; memory: WorkerMemory }
  | { type: 'finished'; id: string; ok: false; error: string; interrupted: boolean; memory: WorkerMemory; stepsAfterCancel: number };

export interface WorkerMemory {
  numTensors: number;
  numBytes: number;
  rss: number;
  /** process 'uncaughtException' listeners in the worker (a leak shows as growth) */
  listeners: number;
}

/** A request the server refuses before any compute: HTTP status, the field it is about, the message. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly field: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}
