// T5Tokenizer (transformers 4.x, slow, sentencepiece-based, legacy=True — what the CogVideoX pipelines called):
//   1. split the text on added tokens (</s>, <pad>, <unk>, <extra_id_N>), leftmost-longest, honouring their
//      lstrip/rstrip flags (an rstrip token eats the whitespace on its right, lstrip on its left);
//   2. sentencepiece-encode every other piece (its own NFKC normaliser, "▁" prefix per piece);
//   3. truncate to max_length − 1, append </s> unless the ids already end with it, pad with <pad>.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface AddedToken {
  id: number;
  content: string;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
}

interface SentencePiece {
  load(file: string): Promise<void>;
  encodeIds(text: string): number[];
  decodeIds(ids: number[]): string;
}

export interface TokenizeOptions {
  /** Default 226 (CogVideoX's max_text_seq_length). */
  maxLength?: number;
  /** 'max_length' (default, as the pipelines) pads every row to maxLength; 'none' leaves rows unpadded. */
  padding?: 'max_length' | 'none';
  /** Default true. */
  truncation?: boolean;
}

export interface TokenizerOutput {
  inputIds: number[][];
  attentionMask: number[][];
}

/** Python's str.isspace() set, which str.strip() uses (differs from JS \s: includes \x1c-\x1f and \x85, not \ufeff). */
function isPySpace(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  return (
    (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000
  );
}
const pyLstrip = (s: string) => {
  let i = 0;
  while (i < s.length && isPySpace(s[i]!)) i++;
  return s.slice(i);
};
const pyRstrip = (s: string) => {
  let i = s.length;
  while (i > 0 && isPySpace(s[i - 1]!)) i--;
  return s.slice(0, i);
};

/** Number of pieces in a sentencepiece ModelProto (repeated field 1), read from the protobuf directly. */
function countPieces(model: Uint8Array): number {
  let pos = 0;
  let count = 0;
  const varint = () => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = model[pos++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
  };
  while (pos < model.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    switch (key & 7) {
      case 0: varint(); break;
      case 1: pos += 8; break;
      case 2: { const len = varint(); pos += len; break; }
      case 5: pos += 4; break;
      default: throw new Error(`malformed sentencepiece model (wire type ${key & 7})`);
    }
    if (field === 1) count++;
  }
  return count;
}

/**
 * sentencepiece-js instantiates an emscripten module per load, and each one adds process-wide `uncaughtException` /
 * `unhandledRejection` listeners that rethrow and keep the module alive: one more per tokenizer a long-running process
 * (a server, a training run) loads. The listeners this load added are removed.
 */
async function loadWithoutProcessHooks(sp: SentencePiece, modelFile: string): Promise<void> {
  const events = ['uncaughtException', 'unhandledRejection'];
  const listeners = (ev: string) => process.listeners(ev as 'uncaughtException') as ((...a: unknown[]) => void)[];
  const before = events.map((ev) => new Set(listeners(ev)));
  try {
    await sp.load(modelFile);
  } finally {
    events.forEach((ev, i) => {
      for (const l of listeners(ev)) if (!before[i]!.has(l)) process.off(ev, l);
    });
  }
}

export class T5Tokenizer {
  private readonly added: Map<string, AddedToken>;
  private readonly splitter: RegExp | null;

  private constructor(
    private readonly sp: SentencePiece,
    readonly spVocabSize: number,
    added: AddedToken[],
    readonly padTokenId: number,
    readonly eosTokenId: number,
    readonly unkTokenId: number,
  ) {
    this.added = new Map(added.map((t) => [t.content, t]));
    const alternatives = [...this.added.keys()].sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.splitter = alternatives.length ? new RegExp(`(${alternatives.join('|')})`, 'u') : null;
  }

  /** Loads a `tokenizer` folder: spiece.model (+ tokenizer_config.json / added_tokens.json when present). */
  static async fromPretrained(dir: string): Promise<T5Tokenizer> {
    const modelFile = path.join(dir, 'spiece.model');
    if (!fs.existsSync(modelFile)) throw new Error(`${dir}: no spiece.model (expected a T5 tokenizer folder)`);
    const modelBytes = fs.readFileSync(modelFile);
    let spVocabSize: number;
    try {
      spVocabSize = countPieces(modelBytes);
    } catch (e) {
      throw new Error(`${modelFile}: ${(e as Error).message}`);
    }
    if (spVocabSize < 3) throw new Error(`${modelFile}: not a sentencepiece model (found ${spVocabSize} pieces)`);
    const { SentencePieceProcessor } = require('sentencepiece-js') as { SentencePieceProcessor: new () => SentencePiece };
    const sp = new SentencePieceProcessor();
    await loadWithoutProcessHooks(sp, modelFile);

    const readIf = (name: string): Record<string, unknown> | null => {
      const f = path.join(dir, name);
      if (!fs.existsSync(f)) return null;
      try {
        return JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new Error(`${f}: not valid JSON (${(e as Error).message})`);
      }
    };
    const config = readIf('tokenizer_config.json') ?? {};
    const tokenName = (key: string, dflt: string): string => {
      const v = config[key];
      if (typeof v === 'string') return v;
      if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
      return dflt;
    };
    const extraIds = typeof config.extra_ids === 'number' ? config.extra_ids : 100;

    // Added tokens as T5Tokenizer.__init__ makes them: specials plain, <extra_id_i> = spSize + extraIds − 1 − i with
    // lstrip/rstrip. A saved added_tokens_decoder (newer checkpoints) or added_tokens.json overrides ids and flags.
    const added = new Map<string, AddedToken>();
    const put = (t: AddedToken) => added.set(t.content, t);
    for (let i = 0; i < extraIds; i++) {
      put({ id: spVocabSize + extraIds - 1 - i, content: `<extra_id_${i}>`, lstrip: true, rstrip: true, singleWord: false });
    }
    const legacyIds = readIf('added_tokens.json') as Record<string, number> | null;
    for (const [content, id] of Object.entries(legacyIds ?? {})) {
      const prev = added.get(content);
      put({ id, content, lstrip: prev?.lstrip ?? false, rstrip: prev?.rstrip ?? false, singleWord: false });
    }
    const decoder = config.added_tokens_decoder as Record<string, { content: string; lstrip?: boolean; rstrip?: boolean; single_word?: boolean }> | undefined;
    for (const [id, t] of Object.entries(decoder ?? {})) {
      put({ id: Number(id), content: t.content, lstrip: !!t.lstrip, rstrip: !!t.rstrip, singleWord: !!t.single_word });
    }
    const pieceId = (content: string): number => {
      const a = added.get(content);
      if (a) return a.id;
      const ids = sp.encodeIds(content);
      return ids.length === 1 ? ids[0]! : -1;
    };
    const specials = {
      pad: tokenName('pad_token', '<pad>'),
      eos: tokenName('eos_token', '</s>'),
      unk: tokenName('unk_token', '<unk>'),
    };
    // The special tokens are added tokens too (split out of the text), at their sentencepiece ids.
    for (const [which, content] of Object.entries(specials)) {
      if (added.has(content)) continue;
      const id = which === 'pad' ? 0 : which === 'eos' ? 1 : 2;
      put({ id, content, lstrip: false, rstrip: false, singleWord: false });
    }
    return new T5Tokenizer(sp, spVocabSize, [...added.values()], pieceId(specials.pad), pieceId(specials.eos), pieceId(specials.unk));
  }

  /** Vocabulary size including added tokens (len(tokenizer) in transformers). */
  get vocabSize(): number {
    let max = this.spVocabSize - 1;
    for (const t of this.added.values()) max = Math.max(max, t.id);
    return max + 1;
  }

  /** Token ids of one text, without </s>, padding or truncation. */
  tokenize(text: string): number[] {
    const parts = this.splitter ? text.split(this.splitter) : [text];
    // split() with a capture group alternates text / token / text …: odd indices are added tokens.
    for (let i = 1; i < parts.length; i += 2) {
      const tok = this.added.get(parts[i]!)!;
      if (tok.rstrip && i + 1 < parts.length && parts[i + 1]) parts[i + 1] = pyLstrip(parts[i + 1]!);
      if (tok.lstrip && i > 0 && parts[i - 1]) parts[i - 1] = pyRstrip(parts[i - 1]!);
      if (tok.singleWord) throw new Error(`single_word added tokens are not supported ("${tok.content}")`);
    }
    const ids: number[] = [];
    parts.forEach((p, i) => {
      if (!p) return;
      if (i % 2 === 1) ids.push(this.added.get(p)!.id);
      else ids.push(...this.sp.encodeIds(p));
    });
    return ids;
  }

  /** Encodes one text as the pipelines do: tokens, truncated, then </s>. */
  encode(text: string, opts: TokenizeOptions = {}): number[] {
    const maxLength = opts.maxLength ?? 226;
    let ids = this.tokenize(text);
    if ((opts.truncation ?? true) && ids.length + 1 > maxLength) ids = ids.slice(0, Math.max(0, maxLength - 1));
    if (ids.length === 0 || ids[ids.length - 1] !== this.eosTokenId) ids.push(this.eosTokenId);
    return ids;
  }

  /** tokenizer(texts, padding="max_length", max_length=226, truncation=True, add_special_tokens=True). */
  call(texts: string | string[], opts: TokenizeOptions = {}): TokenizerOutput {
    const list = typeof texts === 'string' ? [texts] : texts;
    const maxLength = opts.maxLength ?? 226;
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new Error(`maxLength must be a positive integer, got ${maxLength}`);
    const inputIds: number[][] = [];
    const attentionMask: number[][] = [];
    for (const text of list) {
      if (typeof text !== 'string') throw new Error(`tokenizer input must be a string, got ${typeof text}`);
      const ids = this.encode(text, opts);
      const mask = ids.map(() => 1);
      if ((opts.padding ?? 'max_length') === 'max_length') {
        while (ids.length < maxLength) {
          ids.push(this.padTokenId);
          mask.push(0);
        }
      }
      inputIds.push(ids);
      attentionMask.push(mask);
    }
    return { inputIds, attentionMask };
  }

  decode(ids: number[]): string {
    const byId = new Map([...this.added.values()].map((t) => [t.id, t.content]));
    let out = '';
    let run: number[] = [];
    const flush = () => {
      if (run.length) out += this.sp.decodeIds(run);
      run = [];
    };
    for (const id of ids) {
      const special = byId.get(id);
      if (special !== undefined) {
        flush();
        out += special;
      } else {
        run.push(id);
      }
    }
    flush();
    return out;
  }
}
