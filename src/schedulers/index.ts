// The samplers by their CogVideoX-Fun names (`scheduler_dict` keys of CogVideoX-Fun's predict_t2v.py and cogvideox/ui/ui.py), each
// built from the model's own scheduler_config.json — never from class defaults.
import * as path from 'node:path';
import { readJson } from '../weights/checkpoint.js';
import { CogVideoXDDIMScheduler } from './ddim_cogvideox.js';
import { DDIMScheduler } from './ddim.js';
import { CogVideoXDPMScheduler } from './dpm_cogvideox.js';
import { DPMSolverMultistepScheduler } from './dpm_multistep.js';
import { EulerAncestralDiscreteScheduler } from './euler_ancestral.js';
import { EulerDiscreteScheduler } from './euler.js';
import { PNDMScheduler } from './pndm.js';
import type { Scheduler, SchedulerConfig } from './scheduler.js';

const REGISTRY = {
  DDIM_Origin: (c: SchedulerConfig) => new DDIMScheduler(c),
  DDIM_Cog: (c: SchedulerConfig) => new CogVideoXDDIMScheduler(c),
  /** Not offered by Fun's UI / scripts, but accepted by its pipelines; THUDM's cli_demo default. */
  DPM_Cog: (c: SchedulerConfig) => new CogVideoXDPMScheduler(c),
  Euler: (c: SchedulerConfig) => new EulerDiscreteScheduler(c),
  'Euler A': (c: SchedulerConfig) => new EulerAncestralDiscreteScheduler(c),
  'DPM++': (c: SchedulerConfig) => new DPMSolverMultistepScheduler(c),
  PNDM: (c: SchedulerConfig) => new PNDMScheduler(c),
} as const satisfies Record<string, (c: SchedulerConfig) => Scheduler>;

export type SchedulerName = keyof typeof REGISTRY;
export const SCHEDULER_NAMES = Object.keys(REGISTRY) as SchedulerName[];

export function isSchedulerName(name: string): name is SchedulerName {
  return Object.prototype.hasOwnProperty.call(REGISTRY, name);
}

/** Builds the named sampler from a parsed scheduler_config.json (keys the class does not know are ignored). */
export function createScheduler(name: string, config: SchedulerConfig): Scheduler {
  if (!isSchedulerName(name)) {
    throw new Error(`unknown scheduler "${name}"; valid names: ${SCHEDULER_NAMES.map((n) => JSON.stringify(n)).join(', ')}`);
  }
  return REGISTRY[name](config);
}

/**
 * The sampler a diffusers class name stands for. diffusers' `from_pretrained` builds the `_class_name` of
 * scheduler/scheduler_config.json (diffusers/pipelines/pipeline_loading_utils.py `load_sub_model`); these are the
 * classes our samplers reproduce (each sampler's `className`).
 */
export const SAMPLER_FOR_CLASS: Readonly<Record<string, SchedulerName>> = {
  DDIMScheduler: 'DDIM_Origin',
  CogVideoXDDIMScheduler: 'DDIM_Cog',
  CogVideoXDPMScheduler: 'DPM_Cog',
  EulerDiscreteScheduler: 'Euler',
  EulerAncestralDiscreteScheduler: 'Euler A',
  DPMSolverMultistepScheduler: 'DPM++',
  PNDMScheduler: 'PNDM',
};

function readSchedulerConfig(schedulerDir: string): SchedulerConfig {
  const file = path.join(schedulerDir, 'scheduler_config.json');
  const config = readJson(file);
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error(`${file}: expected a JSON object`);
  return config as SchedulerConfig;
}

/** The sampler named by `<schedulerDir>/scheduler_config.json`'s `_class_name` (what diffusers would build). */
export function folderSampler(schedulerDir: string): SchedulerName {
  const file = path.join(schedulerDir, 'scheduler_config.json');
  const cls = readSchedulerConfig(schedulerDir)['_class_name'];
  if (typeof cls !== 'string') throw new Error(`${file}: "_class_name" is missing; pass a sampler (one of ${SCHEDULER_NAMES.join(', ')})`);
  const name = SAMPLER_FOR_CLASS[cls];
  if (!name) {
    throw new Error(`${file}: "_class_name" ${JSON.stringify(cls)} is not a scheduler this port has (${Object.keys(SAMPLER_FOR_CLASS).join(', ')}); pass a sampler`);
  }
  return name;
}

/** Reads `<schedulerDir>/scheduler_config.json` (e.g. `<model>/scheduler`) and builds the named sampler. */
export function loadScheduler(name: string, schedulerDir: string): Scheduler {
  if (!isSchedulerName(name)) createScheduler(name, {}); // the unknown-name error, before touching the disk
  return createScheduler(name, readSchedulerConfig(schedulerDir));
}

export { CogVideoXDDIMScheduler, CogVideoXDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, PNDMScheduler };
export { InjectedGenerator, PhiloxGenerator, type Generator, type RecordedDraw } from './generator.js';
export type { CogVideoXDPMStepper, Scheduler, SchedulerConfig, StandardScheduler, StepOptions, StepOutput } from './scheduler.js';
