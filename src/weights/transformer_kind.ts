// Which original code a transformer checkpoint belongs to, decided once from its config.json.
//
// CogVideoX-Fun's transformer class (CogVideoX-Fun cogvideox/models/transformer3d.py:344-375) is a diffusers
// `@register_to_config` class with one extra argument, `add_noise_in_inpaint_model`, so every config it saves carries
// that key; diffusers' `CogVideoXTransformer3DModel` (THUDM's releases) has no such argument and never writes it.
// The key therefore names the family whatever the channel count. The one exception handled: a Fun InP config that lacks
// it (hand-written or an older save) with 2·16+1 = 33 input channels, a count no THUDM model has.
//
// Within CogVideoX-Fun, the UI and predict scripts pick the pipeline from the channels (cogvideox/ui/ui.py:129,
// predict_t2v.py:108): in_channels == latent_channels → the plain text-to-video pipeline, otherwise the inpaint one;
// the Control models (2·latent input channels: latents ‖ control latents) have their own pipeline, not built here.
import type { TransformerConfig } from './transformer_names.js';

/** Which original implementation a transformer follows where the two differ (2b position table, 5b RoPE grid). */
export type TransformerFlavor = 'fun' | 'diffusers';

/**
 * The pipeline a checkpoint runs under:
 * - `fun-inp`: CogVideoX-Fun InP (in = 2·latent + 1: noisy latents ‖ mask ‖ masked-video latents),
 * - `fun-t2v`: a CogVideoX-Fun text-to-video transformer (in = latent), run by the text-to-video pipeline,
 * - `t2v` / `i2v`: THUDM CogVideoX text-to-video (in = latent) / image-to-video (in = 2·latent).
 */
export type TransformerKind = 'fun-inp' | 'fun-t2v' | 't2v' | 'i2v';

/** True when the config was saved by CogVideoX-Fun's transformer class (see the top of this file). */
export function isFunCheckpoint(c: Pick<TransformerConfig, 'in_channels'> & { add_noise_in_inpaint_model?: unknown }): boolean {
  return 'add_noise_in_inpaint_model' in c || c.in_channels === 33;
}

/** The flavor a checkpoint's own config implies. */
export function transformerFlavor(c: Pick<TransformerConfig, 'in_channels'> & { add_noise_in_inpaint_model?: unknown }): TransformerFlavor {
  return isFunCheckpoint(c) ? 'fun' : 'diffusers';
}

/**
 * The pipeline kind of a transformer config beside a VAE with `latentChannels`, or an error naming the file and the
 * channel counts when no supported pipeline runs it (CogVideoX-Fun Control models included).
 */
export function transformerKind(c: Pick<TransformerConfig, 'in_channels'> & { add_noise_in_inpaint_model?: unknown }, latentChannels: number, where = 'transformer/config.json'): TransformerKind {
  const inC = c.in_channels;
  if (isFunCheckpoint(c)) {
    if (inC === 2 * latentChannels + 1) return 'fun-inp';
    if (inC === latentChannels) return 'fun-t2v';
    if (inC === 2 * latentChannels) {
      throw new Error(
        `${where}: a CogVideoX-Fun Control transformer (in_channels ${inC} = 2 × ${latentChannels}: latents ‖ control latents); ` +
          'Control models are not supported — use an InP model (in_channels ' + (2 * latentChannels + 1) + ')',
      );
    }
    throw new Error(
      `${where}: a CogVideoX-Fun transformer with in_channels ${inC} matches no CogVideoX-Fun pipeline for ${latentChannels} latent channels ` +
        `(expected ${2 * latentChannels + 1} for InP or ${latentChannels} for text-to-video)`,
    );
  }
  if (inC === latentChannels) return 't2v';
  if (inC === 2 * latentChannels) return 'i2v';
  throw new Error(
    `${where}: in_channels ${inC} matches no supported pipeline for ${latentChannels} latent channels ` +
      `(${latentChannels}: text-to-video, ${2 * latentChannels}: image-to-video; CogVideoX-Fun configs carry add_noise_in_inpaint_model)`,
  );
}
