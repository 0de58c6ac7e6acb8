// Help texts (printed by --help; also the README's CLI section).
import { SCHEDULER_NAMES } from '../schedulers/index.js';
import { DEMO_DEFAULTS, demoKnowledge, type DemoInfo } from './demo.js';

export const MAIN_USAGE = `Usage: cogvideox-fun <command> [options]

Commands:
  generate [options]   make a video (or one image); with no --model, runs the bundled tiny demo model
  info DIR             what a checkpoint folder is: variant, pipeline, weight files and dtypes, memory plan
  train [options]      fine-tune a CogVideoX-Fun transformer (full or LoRA) on a metadata file of videos/images
  serve [options]      web page and HTTP API (job queue, CogVideoX-Fun-compatible endpoints) on 127.0.0.1:7860
  worker --redis URL   run the jobs of a \`serve --redis URL\` queue (on any machine sharing its output folder)

Run "cogvideox-fun <command> --help" for the options of a command. --version prints the version.
`;

/**
 * `generate --help`. `demo`: the bundled model's demo.json (null: none, the random-weights stand-in); when given, the
 * help lists what the demo model knows, and calls its output noise only when demo.json says it is not trained.
 */
export function generateUsage(demo: DemoInfo | null): string {
  const demoLine = !demo
    ? 'Without it: the bundled demo model (tiny, random weights, noise-like output).'
    : demo.trained
      ? 'Without it: the bundled demo model (tiny, trained on a toy world; see "Demo model").'
      : 'Without it: the bundled demo model (tiny, NOT trained: noise-like output).';
  const demoFrames = demo ? demo.output.frames : 9;
  const section = demo ? `\nDemo model (what the bundled model knows; prompt it like the example)\n${demoKnowledge(demo, '  ').join('\n')}\n` : '';
  return `Usage: cogvideox-fun generate [options]

Model
  -m, --model DIR            checkpoint folder in diffusers layout (tokenizer, text_encoder, transformer, vae,
                             scheduler): CogVideoX-Fun InP (2b / 5b / V1.1 / V1.5; text, image and video to video)
                             or THUDM CogVideoX-2b / 5b / 1.5 (text to video) and 5b-I2V / 1.5-I2V.
                             ${demoLine}
      --lora FILE[:W]        merge a CogVideoX-Fun LoRA with strength W (default 0.55); repeatable
      --sampler NAME         ${SCHEDULER_NAMES.join(', ')}
                             (default: DDIM_Origin for Fun models as the predict scripts, DPM_Cog for THUDM ones
                             as THUDM's cli_demo)

Prompt
  -p, --prompt TEXT          what to generate (required with --model)
  -n, --negative-prompt TEXT what to avoid (Fun models default to the predict scripts' negative prompt)

Conditioning (Fun InP models; THUDM I2V models take --image only, THUDM text-to-video models --video only)
      --image FILE           start image (PNG, JPEG, WebP, GIF)
      --end-image FILE       end image (needs --image)
      --video FILE|DIR       source video for video-to-video (MP4 and other containers, GIF, folder of frames);
                             Fun: sampled at 8 fps and resized as the reference; THUDM text-to-video models:
                             every frame, resized with LANCZOS (diffusers' CogVideoXVideoToVideoPipeline)
      --strength S           video-to-video denoising strength in (0, 1] (default 0.7 with --video)
      --mask FILE            video-to-video mask: white (≥ 240) is regenerated, the rest kept

Size and length
      --frames N             1 (an image) or 4k+1 (default 49; the demo ${demoFrames}; THUDM: the model's own length)
      --height H, --width W  multiples of 16 (default 384×672 for Fun models, the model's own size otherwise)
      --resize-to-reference [512|768|960|1024]
                             pick the size bucket closest to the --image / --video aspect ratio (base 512)
      --long-video           generate --frames in overlapping segments (Fun InP models)
      --segment N            frames per segment, 4k+1 (default 25)
      --overlap N            frames shared by consecutive segments, 1…4 (default 4)

Sampling
      --steps N              denoising steps (default 50; the demo ${DEMO_DEFAULTS.steps})
      --guidance G           classifier-free guidance scale, ≥ 0 (default 6; the demo with --image and no --video
                             ${DEMO_DEFAULTS.guidanceWithImage}); ≤ 1 turns it off
      --seed N               integer seed in [0, 2^64) (default 43): the same seed draws the same noise on every
                             backend (not the same numbers as PyTorch's generators)
      --num-videos N         N videos of the prompt in one batch (default 1); with N > 1 the outputs are numbered
                             before the extension: --out cat.mp4 writes cat_0.mp4, cat_1.mp4, … (a folder
                             frames/ becomes frames_0/, frames_1/, …)

Output and runtime
  -o, --out FILE|DIR         .mp4 (H.264), .gif, .png (one frame) or a folder of PNG frames
                             (default output.mp4, or output.png for --frames 1); written atomically
      --fps N                frames per second of the output (default 8)
      --tiling               decode the VAE in tiles (less memory at large sizes; changes the result slightly)
      --backend NAME         tensorflow (tfjs-node) or wasm (default: the fastest available)
      --residency MODE       where weights live between uses: auto, resident, host, disk (default auto)
  -q, --quiet                print nothing but errors
      --json                 one JSON object per line on stdout (start, stage, step, done / error)
      --debug                print stack traces with errors
  -h, --help                 this text

Exit status: 0 done, 1 error, 2 bad command line, 130 interrupted (Ctrl-C; nothing is written).

Examples
  cogvideox-fun generate                                     # demo model, writes output.mp4 in seconds
  cogvideox-fun generate --model CogVideoX-Fun-V1.1-2b-InP --prompt "A cat playing the guitar" --out cat.mp4
  cogvideox-fun generate --model CogVideoX-Fun-V1.1-2b-InP --prompt "…" --image start.jpg --resize-to-reference
  cogvideox-fun generate --model CogVideoX-Fun-V1.1-2b-InP --prompt "…" --video in.mp4 --strength 0.7
${section}`;
}

/** `generate --help` without a demo.json (the random-weights demo model). */
export const GENERATE_USAGE = generateUsage(null);

export const INFO_USAGE = `Usage: cogvideox-fun info DIR [--height H] [--width W] [--frames N] [--tiling] [--json]

Describes a checkpoint folder without loading weights: the variant (from transformer/config.json), the pipeline
that runs it, each component's safetensors files, dtypes and sizes, and the memory plan (peak RAM per stage, and
the wasm heap) of the request \`generate\` would make by default, on both backends; --height, --width, --frames and
--tiling change the request.
`;
