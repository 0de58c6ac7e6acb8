// Shared test utilities: fixture loading, parity metrics, the backends to run parity checks on, system tools.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect } from 'vitest';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { availableBackends, setBackend, type BackendName } from '../src/nn/backend.js';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const TINY_MODEL = path.join(FIXTURES, 'tiny-cogvideox-fun');

/** Backends the parity tests run on: wasm always, tensorflow when tfjs-node is installed. */
export const BACKENDS = availableBackends();

/** Every backend the library has, available here or not. */
export const ALL_BACKENDS: readonly BackendName[] = ['tensorflow', 'wasm'];

/**
 * `describe.each` over every backend: one that is not available in this process shows as skipped, rather than
 * registering no test at all (CI requires tensorflow where it set it up: COGVIDEOX_EXPECT_TENSORFLOW, backend.test.ts).
 * `%s` in the title is the backend's name.
 */
export function describeEachBackend(title: string, body: (backend: BackendName) => void): void {
  for (const backend of ALL_BACKENDS) describe.skipIf(!BACKENDS.includes(backend))(title.replace('%s', backend), () => body(backend));
}

export async function useBackend(name: string): Promise<void> {
  await setBackend(name, { quiet: true });
}

export interface Fixture {
  names(): string[];
  f32(name: string): Float32Array;
  shape(name: string): number[];
  ints(name: string): number[][];
}

export function loadFixture(file: string): Fixture {
  const f = SafetensorsFile.open(path.isAbsolute(file) ? file : path.join(FIXTURES, file));
  return {
    names: () => f.keys(),
    f32: (name) => f.read(name).toFloat32(),
    shape: (name) => f.entry(name).shape.slice(),
    ints: (name) => {
      const t = f.read(name);
      const [rows, cols] = t.shape as [number, number];
      return Array.from({ length: rows }, (_, r) => Array.from(t.data.subarray(r * cols, (r + 1) * cols)));
    },
  };
}

export interface Diff {
  maxAbs: number;
  relL2: number;
}

export function diff(actual: ArrayLike<number>, expected: ArrayLike<number>): Diff {
  let maxAbs = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i]! - expected[i]!;
    if (!(Math.abs(d) <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, Math.abs(d));
    num += d * d;
    den += expected[i]! * expected[i]!;
  }
  return { maxAbs, relL2: Math.sqrt(num / Math.max(den, 1e-30)) };
}

/**
 * Asserts parity with a reference tensor and logs max-abs / rel-L2. Shapes must match exactly;
 * `relL2` is the tolerance (fp32: ~1e-5 per layer), `maxAbs` an optional second bound.
 */
export function expectClose(
  label: string,
  actual: tf.Tensor | Float32Array,
  expected: Float32Array,
  expectedShape: number[],
  tol: { relL2: number; maxAbs?: number },
): Diff {
  let values: ArrayLike<number>;
  if (actual instanceof tf.Tensor) {
    expect(actual.shape, `${label}: shape`).toEqual(expectedShape);
    values = actual.dataSync() as Float32Array;
  } else {
    values = actual;
  }
  expect(values.length, `${label}: element count`).toBe(expected.length);
  const d = diff(values, expected);
  console.log(`${label.padEnd(40)} max-abs ${d.maxAbs.toExponential(2)}  rel-L2 ${d.relL2.toExponential(2)}`);
  expect(d.relL2, `${label}: rel-L2`).toBeLessThanOrEqual(tol.relL2);
  if (tol.maxAbs !== undefined) expect(d.maxAbs, `${label}: max-abs`).toBeLessThanOrEqual(tol.maxAbs);
  return d;
}

/**
 * System ffmpeg/ffprobe, used by a few media checks. Where they are absent those checks show as skipped — unless they
 * are expected: COGVIDEOX_EXPECT_FFMPEG=1 (.ci/run sets it after installing Debian's ffmpeg) or CI=true, where a
 * missing tool must fail the run rather than skip the checks. COGVIDEOX_EXPECT_FFMPEG=0 opts out explicitly.
 */
export const EXPECT_FFMPEG =
  process.env.COGVIDEOX_EXPECT_FFMPEG === '1' || (process.env.COGVIDEOX_EXPECT_FFMPEG !== '0' && process.env.CI === 'true');

export type SystemTool = 'ffmpeg' | 'ffprobe';

const toolFound = new Map<SystemTool, boolean>();

/** Whether `tool -version` runs. */
export function hasTool(tool: SystemTool): boolean {
  let found = toolFound.get(tool);
  if (found === undefined) toolFound.set(tool, (found = spawnSync(tool, ['-version'], { stdio: 'ignore' }).status === 0));
  return found;
}

/** `it.skipIf(skipWithout('ffprobe'))`: skipped only when the tool is absent and not expected. */
export function skipWithout(...tools: SystemTool[]): boolean {
  return !EXPECT_FFMPEG && !tools.every(hasTool);
}

/** First line of a check that needs the tools: fails clearly when they are expected but absent. */
export function expectTools(...tools: SystemTool[]): void {
  for (const tool of tools) {
    expect(hasTool(tool), `${tool} is not on PATH, but it is expected here (COGVIDEOX_EXPECT_FFMPEG=1 or CI=true; .ci/run installs Debian's ffmpeg)`).toBe(true);
  }
}
