// Shared bench utilities: peak memory readings and child-process orchestration (each measured run in its own
// process so peak RSS belongs to one configuration), and the one setting for the PyTorch side of every bench:
//   COGVIDEOX_PYTHON      the interpreter (default /usr/bin/python3)
//   COGVIDEOX_PYTHONPATH  where torch, diffusers, … are (default the reference environment of reference/README.md:
//                         /work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src)
// With COGVIDEOX_NATIVE_ISA=avx2 (our kernels forced to AVX2 on an AVX-512 CPU) PyTorch is held to AVX2 as well
// (torchIsaEnv), so the comparison is the one an AVX2-only CPU would see.
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
export const PYTHONPATH = process.env.COGVIDEOX_PYTHONPATH ?? '/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src';

/**
 * Environment for a PyTorch child: PYTHONPATH, and when our kernels are forced to AVX2 (COGVIDEOX_NATIVE_ISA=avx2),
 * ATen's, MKL's and oneDNN's dispatch held to AVX2 too.
 */
export function torchEnv(extra: Record<string, string> = {}): Record<string, string> {
  const isa: Record<string, string> = process.env.COGVIDEOX_NATIVE_ISA === 'avx2' ? { ATEN_CPU_CAPABILITY: 'avx2', MKL_ENABLE_INSTRUCTIONS: 'AVX2', ONEDNN_MAX_CPU_ISA: 'AVX2' } : {};
  return { PYTHONPATH, ...isa, ...extra };
}

/** "load 1.23 0.98 0.75" from /proc/loadavg (the 1, 5, 15-minute load averages), for every timing printed. */
export function loadavg(): string {
  try {
    return `load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`;
  } catch {
    return `load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
  }
}

export function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  return `${new Date().toISOString().slice(0, 10)}, ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`;
}
