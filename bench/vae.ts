// CogVideoX VAE benchmark at real sizes: the real config with random weights (bench/gen_vae_weights.py, bf16 like the
// release), ours on tensorflow and wasm beside PyTorch CPU fp32 (diffusers v0.32.2's AutoencoderKLCogVideoX and its
// chunking), each run in its own process, one after the other.
//   npx tsx bench/vae.ts [--cases decode-9x384x672,decode-49x256x256,encode-9x384x672,encode-49x256x256]
//                        [--backends tensorflow,wasm] [--chunking diffusers|fun] [--no-torch] [--weights DIR] [--profile]
// Decode of 3 latent frames → 9×384×672 has the per-chunk peak of a 49-frame decode (the first diffusers call is 3
// latent frames, later ones 2); encode of 9 frames has the peak of a 49-frame encode (first chunk 9 frames).
// Reports wall time, peak RSS (VmHWM of each child), peak wasm heap, the ratio to PyTorch, and the 1-minute load
// average before / after each run and each run's CPU seconds (all threads; less sensitive than wall time to other jobs
// on a shared machine). --profile adds our wall ms per kind of work.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { availableBackends, describeBackend, setBackend, shutdownBackend } from '../src/nn/backend.js';
import { AutoencoderKLCogVideoX } from '../src/models/vae.js';
import { machine, peakRssGiB, PYTHON, runJson, torchEnv, wasmHeapGiB } from './common.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

export interface BenchCase {
  name: string;
  kind: 'decode' | 'encode';
  /** input shape: z [1,16,T,h,w] for decode, x [1,3,F,H,W] for encode */
  shape: [number, number, number, number, number];
}

export const CASES: BenchCase[] = [
  { name: 'decode-9x384x672', kind: 'decode', shape: [1, 16, 3, 48, 84] },
  { name: 'decode-49x256x256', kind: 'decode', shape: [1, 16, 13, 32, 32] },
  { name: 'encode-9x384x672', kind: 'encode', shape: [1, 3, 9, 384, 672] },
  { name: 'encode-49x256x256', kind: 'encode', shape: [1, 3, 49, 256, 256] },
];

async function child(backend: string, caseName: string, dir: string, chunking: 'fun' | 'diffusers', withProfile: boolean): Promise<void> {
  const c = CASES.find((k) => k.name === caseName)!;
  await setBackend(backend, { quiet: true });
  const vae = await AutoencoderKLCogVideoX.fromPretrained(dir);
  const t0 = performance.now();
  vae.load(c.kind === 'decode' ? 'decoder' : 'encoder');
  const loadS = (performance.now() - t0) / 1000;
  const input = c.kind === 'decode' ? tf.randomNormal(c.shape, 0, 1, 'float32', 1) : tf.randomUniform(c.shape, -1, 1, 'float32', 1);
  const profile: Record<string, number> | undefined = withProfile ? {} : undefined;
  const t1 = performance.now();
  const cpu0 = process.cpuUsage();
  let out: tf.Tensor;
  if (c.kind === 'decode') {
    out = vae.decode(input as tf.Tensor5D, { chunking, profile });
  } else {
    const post = vae.encode(input as tf.Tensor5D, { profile });
    out = tf.clone(post.moments);
    post.dispose();
  }
  const data = out.dataSync();
  const runS = (performance.now() - t1) / 1000;
  const cpu = process.cpuUsage(cpu0);
  let finite = true;
  let sq = 0;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) finite = false;
    sq += data[i]! * data[i]!;
  }
  const result = {
    backend: describeBackend(),
    load_s: loadS,
    run_s: runS,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    out_shape: out.shape,
    out_rms: Math.sqrt(sq / data.length),
    finite,
    peak_rss_gib: peakRssGiB(),
    wasm_heap_gib: wasmHeapGiB(),
    frames_device_gib: vae.lastRunStats.peakDeviceFrameBytes / 2 ** 30,
    frames_host_gib: vae.lastRunStats.peakHostFrameBytes / 2 ** 30,
    ...(profile ? { profile_ms: Object.fromEntries(Object.entries(profile).map(([k, v]) => [k, Math.round(v)])) } : {}),
  };
  out.dispose();
  input.dispose();
  vae.dispose();
  shutdownBackend();
  console.log(JSON.stringify(result));
}

async function main(): Promise<void> {
  const dir = arg('--weights') ?? path.join(HERE, '.weights', 'vae-2b', 'vae');
  const pyEnv = torchEnv();
  if (!fs.existsSync(path.join(dir, 'diffusion_pytorch_model.safetensors'))) {
    console.log(`generating random VAE weights (bf16, 431 MB) in ${dir} …`);
    runJson(PYTHON, [path.join(HERE, 'gen_vae_weights.py'), dir], pyEnv);
  }
  const cases = (arg('--cases') ?? CASES.map((c) => c.name).join(',')).split(',');
  const backends = (arg('--backends') ?? availableBackends().join(',')).split(',');
  const chunking = (arg('--chunking') ?? 'diffusers') as 'fun' | 'diffusers';
  console.log(`CogVideoX VAE (random weights, real config) — ${machine()}`);
  const rows: [string, string, Record<string, unknown>][] = [];
  const load1 = () => os.loadavg()[0]!.toFixed(2);
  // a failed child (e.g. killed by the OOM killer: PyTorch's decode peaks at 18 GB) is reported, not fatal
  const measured = (cmd: string, args: string[], env?: Record<string, string>): Record<string, unknown> => {
    const before = load1();
    try {
      return { ...runJson(cmd, args, env), load: `${before} → ${load1()}` };
    } catch (e) {
      const status = (e as Error).message.replace(/^.* exited with /, '');
      return { error: status === 'null' ? 'killed by a signal (OOM killer?)' : `exit status ${status}`, load: `${before} → ${load1()}` };
    }
  };
  for (const name of cases) {
    if (!CASES.some((c) => c.name === name)) throw new Error(`unknown case ${name} (${CASES.map((c) => c.name).join(', ')})`);
    if (!process.argv.includes('--no-torch')) {
      const r = measured(PYTHON, [path.join(HERE, 'vae_torch.py'), dir, name], pyEnv);
      rows.push([name, `pytorch fp32${name.startsWith('decode') ? ' (diffusers chunking)' : ''}`, r]);
      console.error(`${name} pytorch: ${JSON.stringify(r)}`);
    }
    for (const b of backends) {
      const profile = process.argv.includes('--profile') ? ['--profile'] : [];
      const r = measured(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', b, name, dir, chunking, ...profile]);
      rows.push([name, `ours ${b}${name.startsWith('decode') ? ` (${chunking} chunking)` : ''}`, r]);
      console.error(`${name} ${b}: ${JSON.stringify(r)}`);
    }
  }
  const f = (v: unknown, d = 2) => (typeof v === 'number' ? v.toFixed(d) : '—');
  console.log('\n| case | run | time s | vs PyTorch | CPU s | vs PyTorch | peak RSS GiB | wasm heap GiB | kept frames device / host GiB | load (1 min) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const [name, run, r] of rows) {
    const torch = rows.find(([n, k]) => n === name && k.startsWith('pytorch'))?.[2];
    const ratio = (k: string) => (torch && !run.startsWith('pytorch') ? `${f((r[k] as number) / (torch[k] as number))}×` : '—');
    const frames = r.frames_device_gib !== undefined ? `${f(r.frames_device_gib)} / ${f(r.frames_host_gib)}` : '—';
    if (r.error) {
      console.log(`| ${name} | ${run} | failed: ${r.error as string} | | | | | | | ${r.load as string} |`);
      continue;
    }
    console.log(`| ${name} | ${run}${r.backend ? ` — ${r.backend}` : ''} | ${f(r.run_s, 1)} | ${ratio('run_s')} | ${f(r.cpu_s, 0)} | ${ratio('cpu_s')} | ${f(r.peak_rss_gib)} | ${f(r.wasm_heap_gib)} | ${frames} | ${r.load as string} |`);
  }
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6] as 'fun' | 'diffusers', process.argv[7] === '--profile');
else await main();
