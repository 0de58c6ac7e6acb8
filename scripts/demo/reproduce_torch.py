#!/usr/bin/env python3
"""Runs CogVideoX-Fun's OWN pipeline on a model folder with the noise our pipeline drew, and compares the frames.

Input: the folder written by scripts/demo/reproduce.ts (manifest.json, <case>.safetensors with draw.NN and our
frames_u8, the input PNGs). For each case:
  - components as CogVideoX-Fun's predict scripts load them (predict_i2v.py): its CogVideoXTransformer3DModel
    (cogvideox/models/transformer3d.py, from_pretrained_2d) and AutoencoderKLCogVideoX (autoencoder_magvit.py),
    transformers' T5Tokenizer / T5EncoderModel, the sampler the case names from predict's scheduler_dict built from
    the folder's scheduler/scheduler_config.json; the pipeline is cogvideox/pipeline/pipeline_cogvideox_inpaint.py
    CogVideoX_Fun_Pipeline_Inpaint (the class model_index.json calls CogVideoXFunInpaintPipeline), constructed with
    those five components as reference/gen_pipelines.py does (from_pretrained cannot import the Fun classes by name);
  - inputs by cogvideox/utils/utils.py: get_image_to_video_latent(start, end, ...) on the same PNG files,
    get_video_to_video_latent(list of the source frames, ...) (the cv2 file path is not installed here);
  - every random draw (randn_tensor in every module that imported it, torch.randn_like in
    add_noise_to_reference_video) is served from OUR draws in call order — reference/gen_pipelines.py's Draws
    wrappers, replaying ours instead of torch's; any other global-RNG call fails, and every draw must be consumed;
  - max_sequence_length from the manifest (the transformer's max_text_seq_length), fp32 on the CPU;
  - frames as save_videos_grid makes them: (x * 255).numpy().astype(uint8).
Prints a table: mode, % pixels equal (all three channels), % values within 1, max abs diff, PSNR ours vs torch.

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 scripts/demo/reproduce_torch.py MODEL_DIR REPRO_DIR [--json OUT.json]
"""
import argparse
import contextlib
import io
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "reference"))

import gen_pipelines as gp  # noqa: E402  (shim, stubbed cogvideox.utils import, Draws, scheduler_dict)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import T5EncoderModel, T5Tokenizer  # noqa: E402


class ReplayOurs(gp.Draws):
    """gen_pipelines.Draws with the queue holding OUR draws: shapes must match in order; torch's kinds are logged."""

    def take(self, kind, stream, shape, dtype, make):
        assert self.mode == "replay"
        assert not kind.startswith("unexpected"), kind
        assert self.queue, f"torch asked for draw #{len(self.log) + 1} ({kind} {tuple(shape)}); ours made only {len(self.log)}"
        rec = self.queue.pop(0)
        assert tuple(rec["tensor"].shape) == tuple(shape), \
            f"draw #{len(self.log) + 1} ({kind}): torch wants {tuple(shape)}, ours drew {tuple(rec['tensor'].shape)}"
        self.log.append({"kind": kind, "stream": stream, "shape": list(shape)})
        return rec["tensor"].to(dtype).clone()


def load_pipe(model, sampler):
    with contextlib.redirect_stdout(io.StringIO()):  # from_pretrained_2d prints its progress
        transformer = gp.FunTransformer.from_pretrained_2d(model, subfolder="transformer",
                                                           torch_dtype=torch.float32).eval()
    vae = gp.FunVAE.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32).eval()
    text_encoder = T5EncoderModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=torch.float32).eval()
    tokenizer = T5Tokenizer.from_pretrained(model, subfolder="tokenizer")
    scheduler = gp.SCHEDULERS[sampler].from_pretrained(model, subfolder="scheduler")
    pipe = gp.CogVideoX_Fun_Pipeline_Inpaint(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                             transformer=transformer, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_case(model, repro, case, replay):
    pipe = load_pipe(model, case["sampler"])
    H, W = case["height"], case["width"]
    video_length = gp.frames_rule(case["frames"], pipe.vae, pipe.transformer)
    assert video_length == case["frames"], (video_length, case["frames"])
    cdir = os.path.join(repro, case["name"])
    ins = case["inputs"]
    if "video" in ins:
        frames = [np.array(Image.open(os.path.join(cdir, p)).convert("RGB")) for p in ins["video"]]
        video, mask_video, _ = gp.get_video_to_video_latent(frames, video_length=video_length, sample_size=[H, W],
                                                            validation_video_mask=None, fps=8)
    else:
        start = os.path.join(cdir, ins["start"]) if "start" in ins else None
        end = os.path.join(cdir, ins["end"]) if "end" in ins else None
        video, mask_video, _ = gp.get_image_to_video_latent(start, end, video_length=video_length,
                                                            sample_size=[H, W])
    tensors = load_file(os.path.join(repro, case["frames_file"]))
    queue = [{"tensor": tensors[d["key"]]} for d in case["draws"]]
    torch.manual_seed(0)  # unused: every draw is ours (an unrecorded draw raises)
    replay.start("replay", queue)
    try:
        with torch.no_grad():
            out = pipe(case["prompt"], negative_prompt=case["negative_prompt"], num_frames=video_length, height=H,
                       width=W, guidance_scale=case["guidance"], num_inference_steps=case["steps"], video=video,
                       mask_video=mask_video, strength=case["strength"],
                       max_sequence_length=case["max_sequence_length"],
                       generator=torch.Generator().manual_seed(0)).videos
    finally:
        replay.stop()  # asserts every one of our draws was consumed
    kinds = [d["kind"] for d in replay.log]
    theirs = (out[0].permute(1, 2, 3, 0) * 255).numpy().astype(np.uint8)  # [F, H, W, 3], save_videos_grid
    ours = tensors[case["frames_key"]].numpy()
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return ours, theirs, kinds


def compare(ours, theirs):
    d = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    mse = float(np.mean(d.astype(np.float64) ** 2))
    return {
        "pixels_equal_pct": 100.0 * float(np.mean(np.all(d == 0, axis=-1))),
        "values_within_1_pct": 100.0 * float(np.mean(d <= 1)),
        "max_abs_diff": int(d.max()),
        "psnr_db": math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("repro")
    ap.add_argument("--json", help="also write the table as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(a.repro, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    replay = ReplayOurs()
    replay.install()
    rows = []
    for case in manifest["cases"]:
        ours, theirs, kinds = run_case(a.model, a.repro, case, replay)
        r = dict(mode=case["name"], draws=" ".join(kinds), **compare(ours, theirs))
        rows.append(r)
        print(f"{case['name']}: done ({r['pixels_equal_pct']:.3f} % pixels equal)", file=sys.stderr)
    print(f"model {a.model}; frames {manifest['cases'][0]['frames']}x{manifest['cases'][0]['height']}x"
          f"{manifest['cases'][0]['width']}, {manifest['cases'][0]['steps']} steps {manifest['cases'][0]['sampler']}, "
          f"max_sequence_length {manifest['cases'][0]['max_sequence_length']}")
    print("| mode | % pixels equal | % values within 1 | max abs diff | PSNR ours vs torch (dB) | draws (torch's names) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        psnr = "inf" if math.isinf(r["psnr_db"]) else f"{r['psnr_db']:.2f}"
        print(f"| {r['mode']} | {r['pixels_equal_pct']:.3f} | {r['values_within_1_pct']:.3f} | {r['max_abs_diff']} | "
              f"{psnr} | {r['draws']} |")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"model": a.model, "rows": rows}, f, indent=2)
            f.write("\n")
    return 0 if all(r["pixels_equal_pct"] >= 99.9 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
