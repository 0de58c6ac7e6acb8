// Does the text encoder tell the attribute values apart? For pairs of canonical captions that differ in one attribute
// only (circle ↔ square, red ↔ yellow, …), the distance between the T5 encoder's outputs (the whole padded sequence
// the transformer reads: text length from its config), relative to their size: ‖e_a − e_b‖ / ((‖e_a‖ + ‖e_b‖) / 2),
// the mean over --contexts combinations of the other attributes. A pair the encoder merges (≈ 0) could not be
// told apart by any transformer; a pair it separates as well as the others is, if it is mixed up in the generated
// videos, mixed up by the transformer.
//   npx tsx scripts/demo/caption-distance.ts [--model assets/demo-model] [--contexts 12]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { BACKGROUNDS, COLORS, DIRECTIONS, SHAPES, allCombos, canonicalCaption, type Combo } from '../../src/data/index.js';
import { T5EncoderModel } from '../../src/models/t5.js';
import { T5Tokenizer } from '../../src/models/t5_tokenizer.js';
import { describeBackend, setBackend, shutdownBackend } from '../../src/nn/backend.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'assets/demo-model' },
    contexts: { type: 'string', default: '12' },
  },
});
const model = args.model!;
const nContexts = Number(args.contexts);
if (!Number.isInteger(nContexts) || nContexts < 1) throw new Error(`--contexts: expected a positive integer, got ${args.contexts}`);
const config = JSON.parse(fs.readFileSync(path.join(model, 'transformer', 'config.json'), 'utf8')) as { max_text_seq_length?: number };
const maxLength = config.max_text_seq_length ?? 226;

await setBackend();
console.log(`backend: ${describeBackend()}; model ${model}; text length ${maxLength}; ${nContexts} contexts per pair`);
const tokenizer = await T5Tokenizer.fromPretrained(path.join(model, 'tokenizer'));
const t5 = await T5EncoderModel.fromPretrained(path.join(model, 'text_encoder'));

const ATTRS = { color: COLORS, shape: SHAPES, direction: DIRECTIONS, background: BACKGROUNDS } as const;
type Attr = keyof typeof ATTRS;
const combos = allCombos();
// contexts spread over the combinations (every k-th), so each pair is measured in the same other-attribute settings
const contexts = Array.from({ length: nContexts }, (_, i) => combos[Math.floor((i * combos.length) / nContexts)]!);

/** T5 outputs for the contexts' canonical captions with `attr` set to `value`, one row per context. */
function encode(attr: Attr, value: string): tf.Tensor3D {
  const captions = contexts.map((c) => canonicalCaption({ ...c, [attr]: value } as Combo));
  return t5.forward(tokenizer.call(captions, { maxLength, padding: 'max_length', truncation: true }).inputIds);
}

/** ‖e_a − e_b‖ / ((‖e_a‖ + ‖e_b‖) / 2) per context. */
function relativeDistances(ea: tf.Tensor3D, eb: tf.Tensor3D): number[] {
  return tf.tidy(() => {
    const norm = (x: tf.Tensor3D) => tf.sqrt(tf.sum(tf.square(x), [1, 2]));
    return Array.from(tf.div(norm(tf.sub(ea, eb)), tf.div(tf.add(norm(ea), norm(eb)), 2)).dataSync());
  });
}

const tensorsBefore = tf.memory().numTensors;
console.log('\n| attribute | pair | relative distance (mean, min–max) |\n|---|---|---|');
for (const attr of Object.keys(ATTRS) as Attr[]) {
  const values = ATTRS[attr] as readonly string[];
  const embeds = values.map((v) => encode(attr, v)); // each value encoded once, every pair reads it
  for (let i = 0; i < values.length; i++) {
    for (let j = i + 1; j < values.length; j++) {
      const d = relativeDistances(embeds[i]!, embeds[j]!);
      const mean = d.reduce((s, x) => s + x, 0) / d.length;
      console.log(`| ${attr} | ${values[i]} ↔ ${values[j]} | ${mean.toFixed(3)} (${Math.min(...d).toFixed(3)}–${Math.max(...d).toFixed(3)}) |`);
    }
  }
  embeds.forEach((e) => e.dispose());
}
console.log(`\ntensors: ${tensorsBefore} before the pairs, ${tf.memory().numTensors} after`);
t5.dispose();
shutdownBackend();
