// Prompt encoding as the pipelines' `encode_prompt` (diffusers/pipelines/cogvideo/pipeline_cogvideox.py
// `_get_t5_prompt_embeds` / `encode_prompt`): ids padded / truncated to max_sequence_length, T5 without an attention
// mask, negative prompt "" by default, each prompt's rows repeated num_videos_per_prompt times
// (`repeat(1, n, 1).view(B·n, L, D)`), CFG batch [negative, positive].
import * as tf from '@tensorflow/tfjs-core';
import type { T5EncoderModel } from '../models/t5.js';
import type { T5Tokenizer } from '../models/t5_tokenizer.js';

export interface PromptInputs {
  prompt?: string | string[];
  negativePrompt?: string | string[];
  promptEmbeds?: tf.Tensor3D;
  negativePromptEmbeds?: tf.Tensor3D;
}

/** The reference's `check_inputs` on prompts; returns the batch size. Runs before anything is loaded or computed. */
export function checkPromptInputs(p: PromptInputs, doCfg: boolean): number {
  if (p.prompt !== undefined && p.promptEmbeds) throw new Error('pass either prompt or promptEmbeds, not both');
  if (p.prompt === undefined && !p.promptEmbeds) throw new Error('provide prompt or promptEmbeds');
  if (p.prompt !== undefined && p.negativePromptEmbeds) throw new Error('pass either prompt or negativePromptEmbeds, not both');
  if (p.negativePrompt !== undefined && p.negativePromptEmbeds) throw new Error('pass either negativePrompt or negativePromptEmbeds, not both');
  const prompts = p.prompt === undefined ? null : typeof p.prompt === 'string' ? [p.prompt] : p.prompt;
  if (prompts && (!Array.isArray(prompts) || prompts.length === 0 || prompts.some((s) => typeof s !== 'string'))) {
    throw new Error('prompt must be a string or a non-empty array of strings');
  }
  const B = prompts ? prompts.length : p.promptEmbeds!.shape[0];
  if (p.promptEmbeds && p.promptEmbeds.rank !== 3) throw new Error(`promptEmbeds must be [B, L, D], got shape [${p.promptEmbeds.shape.join(', ')}]`);
  if (p.promptEmbeds && p.negativePromptEmbeds && p.promptEmbeds.shape.join() !== p.negativePromptEmbeds.shape.join()) {
    throw new Error(
      `promptEmbeds [${p.promptEmbeds.shape.join(', ')}] and negativePromptEmbeds [${p.negativePromptEmbeds.shape.join(', ')}] must have the same shape`,
    );
  }
  if (doCfg && p.negativePrompt !== undefined && typeof p.negativePrompt !== 'string') {
    if (!Array.isArray(p.negativePrompt) || p.negativePrompt.length !== B) {
      throw new Error(`negativePrompt has ${Array.isArray(p.negativePrompt) ? p.negativePrompt.length : '?'} entries but prompt has ${B}`);
    }
  }
  return B;
}

/** T5 embeddings of texts as `_get_t5_prompt_embeds`: [B, maxLength, d_model]. */
export async function t5PromptEmbeds(
  tokenizer: T5Tokenizer,
  encoder: T5EncoderModel,
  texts: string[],
  maxLength: number,
  warn: (m: string) => void,
  signal?: AbortSignal,
): Promise<tf.Tensor3D> {
  const { inputIds } = tokenizer.call(texts, { maxLength, padding: 'max_length', truncation: true });
  texts.forEach((text) => {
    const full = tokenizer.encode(text, { truncation: false });
    if (full.length > maxLength) {
      const removed = tokenizer.decode(full.slice(maxLength - 1, -1));
      warn(`The following part of your input was truncated because maxSequenceLength is set to ${maxLength} tokens: ${removed}`);
    }
  });
  return encoder.forwardAsync(inputIds, { signal }); // yields between blocks and honours the signal
}

/** [B, L, D] → [B·n, L, D] with each row repeated n times in place (torch `repeat(1, n, 1).view(B·n, L, D)`). */
export function repeatPerPrompt(x: tf.Tensor3D, n: number): tf.Tensor3D {
  if (n === 1) return tf.clone(x);
  const [B, L, D] = x.shape;
  return tf.tidy(() => tf.reshape(tf.tile(tf.expandDims(x, 1), [1, n, 1, 1]), [B * n, L, D]));
}

/**
 * The transformer's text input: [negative, positive] when CFG is on, else positive. Any embeds passed in are used
 * as given; the text encoder is only asked for what is missing (and is not touched when nothing is).
 */
export async function encodePrompt(
  p: PromptInputs,
  doCfg: boolean,
  maxLength: number,
  getEncoder: () => Promise<{ tokenizer: T5Tokenizer; encoder: T5EncoderModel }>,
  warn: (m: string) => void,
  opts: { numVideosPerPrompt?: number; signal?: AbortSignal } = {},
): Promise<tf.Tensor3D> {
  const n = opts.numVideosPerPrompt ?? 1;
  const B = checkPromptInputs(p, doCfg);
  const needPositive = !p.promptEmbeds;
  const needNegative = doCfg && !p.negativePromptEmbeds;
  const made: tf.Tensor3D[] = [];
  try {
    let pos = p.promptEmbeds ?? null;
    let neg = doCfg ? (p.negativePromptEmbeds ?? null) : null;
    if (needPositive || needNegative) {
      const { tokenizer, encoder } = await getEncoder();
      if (needPositive) {
        pos = await t5PromptEmbeds(tokenizer, encoder, typeof p.prompt === 'string' ? [p.prompt] : p.prompt!, maxLength, warn, opts.signal);
        made.push(pos);
      }
      if (needNegative) {
        const np = p.negativePrompt ?? '';
        neg = await t5PromptEmbeds(tokenizer, encoder, typeof np === 'string' ? Array<string>(B).fill(np) : np, maxLength, warn, opts.signal);
        made.push(neg);
      }
    }
    if (neg && pos && neg.shape.join() !== pos.shape.join()) {
      throw new Error(`negative prompt embeddings [${neg.shape.join(', ')}] and prompt embeddings [${pos.shape.join(', ')}] differ in shape`);
    }
    const posN = repeatPerPrompt(pos!, n);
    made.push(posN);
    if (!doCfg) return tf.clone(posN);
    const negN = repeatPerPrompt(neg!, n);
    made.push(negN);
    return tf.concat([negN, posN], 0) as tf.Tensor3D;
  } finally {
    tf.dispose(made);
  }
}
