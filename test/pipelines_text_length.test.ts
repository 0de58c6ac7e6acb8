// The number of T5 tokens a pipeline feeds the transformer defaults to the transformer's max_text_seq_length (226 in
// every released config, diffusers' own default). A folder trained with fewer (the demo model: 32) otherwise sees
// ~200 pad embeddings it never saw in training and draws fragments instead of its objects.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { CogVideoXFunPipeline } from '../src/pipelines/cogvideox_fun.js';
import { PhiloxGenerator } from '../src/schedulers/index.js';
import { BACKENDS, TINY_MODEL, useBackend } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'textlen-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe(`maxSequenceLength default (${BACKENDS[0]})`, () => {
  it("is the transformer's max_text_seq_length", async () => {
    await useBackend(BACKENDS[0]!);
    // the tiny Fun folder with max_text_seq_length 16 (a sincos model: the text length is free, only the default changes)
    fs.cpSync(TINY_MODEL, tmp, { recursive: true });
    const cfgFile = path.join(tmp, 'transformer', 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    expect(cfg.use_learned_positional_embeddings).toBe(false);
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, max_text_seq_length: 16 }));
    const pipe = await CogVideoXFunPipeline.fromPretrained(tmp, { sampler: 'DDIM_Origin' });
    const before = tf.memory().numTensors;
    const run = async (maxSequenceLength?: number) => {
      const out = await pipe.call({
        prompt: 'a red circle moving left on a black background',
        height: 32,
        width: 48,
        numFrames: 5,
        numInferenceSteps: 2,
        guidanceScale: 1,
        maxSequenceLength,
        generator: new PhiloxGenerator(3),
        outputType: 'latent',
        onWarning: () => {},
      });
      const v = Float32Array.from(out.tensor!.dataSync());
      out.tensor!.dispose();
      return v;
    };
    const byDefault = await run();
    const with16 = await run(16);
    const with226 = await run(226);
    pipe.dispose();
    expect(Array.from(byDefault)).toEqual(Array.from(with16));
    const maxDiff = with226.reduce((m, x, i) => Math.max(m, Math.abs(x - byDefault[i]!)), 0);
    expect(maxDiff, '226 pad tokens change the result').toBeGreaterThan(1e-4);
    expect(tf.memory().numTensors, 'no tensor leaked').toBe(before);
  }, 120_000);
});
