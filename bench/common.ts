// Shared bench utilities: peak memory readings and child-process orchestration (each measured run in its own
// process so peak RSS belongs to one configuration).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';

/** Peak resident set size of this process (VmHWM), GiB. */
export function peakRssGiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 2 ** 20 : NaN;
}

/** Size of the wasm heap (it only grows, so this is the peak), GiB; null on other backends. */
export function wasmHeapGiB(): number | null {
  if (tf.getBackend() !== 'wasm') return null;
  const mod = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm;
  return mod.HEAPU8.buffer.byteLength / 2 ** 30;
}

/** Runs a command, returns the last stdout line parsed as JSON (stderr passed through). */
export function runJson(cmd: string, args: string[], env: Record<string, string> = {}): Record<string, unknown> {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

export const PYTHON = process.env.COGVIDEOX_PYTHON ?? '/usr/bin/python3';

export function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  return `${new Date().toISOString().slice(0, 10)}, ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`;
}
