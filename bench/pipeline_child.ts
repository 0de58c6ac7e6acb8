// One pipeline run in its own process (spawned by bench/pipeline.ts): per-stage wall time and peak RSS (VmHWM,
// reset at every stage start through /proc/self/clear_refs), wasm heap, and the memory plan's estimate for the
// same request. Prints one JSON object on stdout.
//   node --import tsx bench/pipeline_child.ts <backend> <modelDir> <height> <width> <frames> <steps> [t2v|i2v] [residency]
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { setBackend, shutdownBackend } from '../src/nn/backend.js';
import { CogVideoXFunPipeline } from '../src/pipelines/cogvideox_fun.js';
import type { PipelineStage } from '../src/pipelines/common.js';
import { PhiloxGenerator } from '../src/schedulers/generator.js';

const [backend, dir, H, W, F, steps, mode, residency] = process.argv.slice(2);
const height = Number(H);
const width = Number(W);
const numFrames = Number(F);

const status = () => fs.readFileSync('/proc/self/status', 'utf8');
const kib = (key: string) => Number(status().match(new RegExp(`${key}:\\s+(\\d+)`))![1]) * 1024;
const resetPeak = () => fs.writeFileSync('/proc/self/clear_refs', '5');
const heapBytes = () => {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength ?? 0;
};

async function main(): Promise<void> {
  await setBackend(backend!, { quiet: true });
  const baseline = kib('VmRSS');
  const pipe = await CogVideoXFunPipeline.fromPretrained(dir!, { residency: (residency as 'resident' | 'host' | 'disk' | undefined) ?? 'auto' });
  const image = mode === 'i2v' ? { width, height, data: new Uint8Array(width * height * 3).map((_, i) => (i * 37) % 251) } : undefined;
  const plan = pipe.planMemory({ height, width, numFrames, guidanceScale: 6, image: !!image });
  const stages: Record<string, { ms: number; peakRss: number; rssAfter: number; heap: number }> = {};
  let t0 = 0;
  resetPeak();
  const t = performance.now();
  await pipe.call({
    prompt: 'a panda playing a guitar in a bamboo forest',
    height,
    width,
    numFrames,
    numInferenceSteps: Number(steps),
    generator: new PhiloxGenerator(43),
    image,
    onWarning: () => {},
    onStage: (s: PipelineStage, state) => {
      console.error(`${new Date().toISOString()} ${s} ${state} rss ${(kib('VmRSS') / 2 ** 30).toFixed(2)} GiB`);
      if (state === 'start') {
        resetPeak();
        t0 = performance.now();
      } else {
        stages[s] = { ms: performance.now() - t0, peakRss: kib('VmHWM'), rssAfter: kib('VmRSS'), heap: heapBytes() };
      }
    },
  });
  const totalMs = performance.now() - t;
  const peakRss = Math.max(...Object.values(stages).map((s) => s.peakRss));
  console.log(JSON.stringify({ backend, residency: residency ?? 'auto', baseline, stages, totalMs, peakRss, heap: heapBytes(), plan }));
  pipe.dispose();
  shutdownBackend();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
