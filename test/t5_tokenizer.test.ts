// Tokenizer ids against transformers 4.x's slow T5Tokenizer (legacy=True), fixtures from reference/gen_t5.py.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { T5Tokenizer } from '../src/models/t5_tokenizer.js';
import { FIXTURES, TINY_MODEL } from './helpers.js';

interface Case {
  text: string;
  max_length: number;
  input_ids: number[];
  attention_mask: number[];
}
const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tokenizer/cases.json'), 'utf8')) as {
  vocab_size: number;
  sp_vocab_size: number;
  cases: Case[];
};

describe('T5Tokenizer', () => {
  let tok: T5Tokenizer;
  beforeAll(async () => {
    tok = await T5Tokenizer.fromPretrained(path.join(TINY_MODEL, 'tokenizer'));
  });

  it('has the reference vocabulary layout', () => {
    expect(tok.spVocabSize).toBe(fixture.sp_vocab_size);
    expect(tok.vocabSize).toBe(fixture.vocab_size);
    expect([tok.padTokenId, tok.eosTokenId, tok.unkTokenId]).toEqual([0, 1, 2]);
  });

  it(`matches transformers on all ${fixture.cases.length} reference cases`, () => {
    expect(fixture.cases.length).toBeGreaterThanOrEqual(100);
    const failures: string[] = [];
    for (const c of fixture.cases) {
      const out = tok.call(c.text, { maxLength: c.max_length });
      const ids = out.inputIds[0]!;
      if (JSON.stringify(ids) !== JSON.stringify(c.input_ids) || JSON.stringify(out.attentionMask[0]) !== JSON.stringify(c.attention_mask)) {
        failures.push(`${JSON.stringify(c.text).slice(0, 80)} @${c.max_length}\n   got      ${ids.join(',')}\n   expected ${c.input_ids.join(',')}`);
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });

  it('batches like single calls and pads every row to maxLength', () => {
    const texts = fixture.cases.slice(0, 5).map((c) => c.text);
    const batch = tok.call(texts);
    expect(batch.inputIds.map((r) => r.length)).toEqual([226, 226, 226, 226, 226]);
    texts.forEach((t, i) => expect(batch.inputIds[i]).toEqual(tok.call(t).inputIds[0]));
  });

  it('rejects bad arguments clearly', () => {
    expect(() => tok.call('x', { maxLength: 0 })).toThrow(/maxLength must be a positive integer/);
  });

  it('fails clearly on a folder without spiece.model', async () => {
    await expect(T5Tokenizer.fromPretrained(FIXTURES)).rejects.toThrow(/no spiece\.model/);
  });
});

describe('T5Tokenizer in a long-running process', () => {
  it('loading it again and again adds no process-wide listeners (sentencepiece-js adds two per load)', async () => {
    const count = () => process.listenerCount('uncaughtException') + process.listenerCount('unhandledRejection');
    await T5Tokenizer.fromPretrained(path.join(TINY_MODEL, 'tokenizer')); // module-level state settles
    const before = count();
    for (let i = 0; i < 3; i++) await T5Tokenizer.fromPretrained(path.join(TINY_MODEL, 'tokenizer'));
    expect(count()).toBe(before);
  });
});
