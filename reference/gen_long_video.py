#!/usr/bin/env python3
"""Long-video reference fixtures: CogVideoX-Fun's "Long Video Generation" loop run on the tiny Fun checkpoint.

The loop is the UI's (cogvideox/ui/ui.py, `generate`, branch `generation_method == "Long Video Generation"`), NOT a
re-implementation: its source text is cut out of ui.py at run time (from `init_frames = 0` to the end of the
`while` body), dedented and exec'd with the variables it reads (`self.pipeline`, `self.vae`, the slider values,
`start_image` / `end_image` as file paths, `generator`). ui.py itself cannot be imported here (gradio, cv2, CUDA
generator); predict_i2v.py's copy of the loop fails on its first iteration (`validation_image` is read before it is
assigned), so the UI's is the working one.

Machinery from gen_pipelines.py (imported): the tiny pipeline as predict builds it (`load_fun`), the recorder of every
random draw (`DRAWS`), prompts, guidance. `self.pipeline` is a pass-through wrapper that records each segment's
arguments (frame count, conditioning video and mask) and output. Each case is re-run with other seeds and the recorded
draws injected: the final video must be bit-identical (the draws are complete and in call order).

Also checked here (asserts), reported in cases.json:
  - the next segment's start images are `(x * 255).numpy().astype(np.uint8)` of the last O frames: truncation, not
    rounding (the count of pixels where rounding would differ is recorded);
  - PIL's resize of those images to the target size is a copy (same size), so the conditioning frames are exactly them;
  - the cross-fade weights are a float32 tensor k/O (numpy float64 division, then cast) and 1 - w is float32;
  - get_image_to_video_latent with O > 1 start images and a 1-frame segment raises (shape mismatch), i.e. the UI loop
    crashes when the last segment gets 1 frame with O in {2, 3}.

Outputs: test/fixtures/long_video/<case>.safetensors — `draw.NN.<kind>` (every draw, call order),
`segment.<i>.start_images` (u8 [1, 3, O, H, W], the start images of each later segment), `input.{start,end}_image`
(u8 [H, W, 3], the input PNGs as get_image_to_video_latent resizes them), and the float video
`video` [1, 3, F, H, W] (i2v_start_end; the saved frames are its truncation) or the saved frames `frames_u8`
[1, F, H, W, 3] (the others) — and cases.json (arguments, segment schedule, draws, the checks above). Needs the input
PNGs of gen_pipelines.py. Deterministic (byte-identical reruns). From the repository root:

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 reference/gen_long_video.py
"""

import json
import os
import sys
import textwrap
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen_pipelines as gp  # noqa: E402  (imports shim first, stubs cv2/imageio/torchvision for cogvideox.utils)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import cogvideox  # noqa: E402

OUT = os.path.join(gp.FIXTURES, "long_video")
INPUTS = os.path.join(gp.FIXTURES, "pipelines", "inputs")  # gen_pipelines.py writes them
UI_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cogvideox.__file__))), "cogvideox", "ui", "ui.py")

# H x W 32 x 32 (latent 4 x 4, token grid 2 x 2) keeps the stored float video small; the tiny 2b transformer's
# position table covers 9 frames, so segments are at most 9 frames.
# fmt: off
CASES = [
    dict(name="i2v_start_end", sampler="Euler", steps=4, seed=43, H=32, W=32, total=13, partial=9, overlap=4,
         start="start_45x70.png", end="end.png", store_video=True,
         note="UI default sampler and overlap; segments of 9 and 5 frames (the last one shorter, with the end "
              "image); start image 45x70 and end image 32x48, both PIL-resized to 32x32; output 9 + 1 = 10 frames; "
              "the float video is stored (frames_u8 = its truncation, asserted)"),
    dict(name="t2v_overlap3", sampler="Euler A", steps=2, seed=44, H=32, W=32, total=9, partial=5, overlap=3,
         note="no start image: segment 0 is T2V (all-255 mask), later ones I2V from 3 frames; overlap 3 -> float32 "
              "weights 0, 1/3, 2/3; 5-frame segments, so segment 2's start images include cross-faded frames; "
              "Euler A draws step noise from the shared generator"),
    dict(name="overlap1_tail1", sampler="DDIM_Origin", steps=2, seed=45, H=32, W=32, total=6, partial=5, overlap=1,
         start="start.png", end="end.png",
         note="overlap 1, total 6: the last segment gets 1 frame (the end image replaces the start image, mask all "
              "keep); its cross-fade weight is 0, so it changes nothing: the output is segment 0 and the end image "
              "never shows"),
]
# fmt: on


def ui_loop_source():
    """The long-video loop of CogVideoX-Fun's UI, verbatim (dedented)."""
    with open(UI_PY, encoding="utf-8") as f:
        lines = f.read().split("\n")
    branch = next(i for i, l in enumerate(lines) if 'if generation_method == "Long Video Generation":' in l)
    start = next(i for i in range(branch, len(lines)) if lines[i].strip() == "init_frames = 0")
    end = next(i for i in range(start, len(lines))
               if lines[i].strip() == "last_frames = init_frames + _partial_video_length"
               and lines[i - 1].strip().startswith("init_frames = init_frames + _partial_video_length"))
    src = textwrap.dedent("\n".join(lines[start:end + 1]))
    for needle in ("while init_frames < length_slider:", "mix_ratio = torch.from_numpy(", "np.float32",
                   "Image.fromarray(", ".astype(np.uint8)", "get_image_to_video_latent(start_image, end_image,"):
        assert needle in src, needle
    return src, (start + 1, end + 1)


LOOP_SRC, LOOP_LINES = ui_loop_source()


def load(case):
    return gp.load_fun({"sampler": case["sampler"]})


def run_once(case, mode, queue=None, seed_offset=0):
    pipe = load(case)
    segs = []

    def pipeline(prompt, **kw):  # pass-through: records each segment's arguments and output
        segs.append({"num_frames": kw["num_frames"], "video": gp.clone(kw["video"]),
                     "mask_video": gp.clone(kw["mask_video"]), "draws_before": len(DRAWS.log)})
        out = pipe(prompt, **kw)
        segs[-1]["out"] = gp.clone(out.videos)
        return out

    seed = case["seed"] + seed_offset
    torch.manual_seed(seed)  # the UI: torch.manual_seed(seed); generator = torch.Generator(...).manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    ns = {
        "self": types.SimpleNamespace(pipeline=pipeline, vae=pipe.vae),
        "torch": torch, "np": np, "Image": Image, "get_image_to_video_latent": gp.get_image_to_video_latent,
        "length_slider": case["total"], "partial_video_length": case["partial"],
        "overlap_video_length": case["overlap"],
        "start_image": os.path.join(INPUTS, case["start"]) if case.get("start") else None,
        "end_image": os.path.join(INPUTS, case["end"]) if case.get("end") else None,
        "prompt_textbox": gp.FUN_PROMPT, "negative_prompt_textbox": gp.FUN_NEGATIVE,
        "sample_step_slider": case["steps"], "cfg_scale_slider": gp.GUIDANCE,
        "width_slider": case["W"], "height_slider": case["H"], "generator": generator,
    }
    DRAWS.start(mode, queue)
    try:
        exec(compile(LOOP_SRC, f"{UI_PY}:{LOOP_LINES[0]}", "exec"), ns)
    finally:
        draws = DRAWS.log if mode == "record" else queue
        DRAWS.stop()
    return {"sample": ns["sample"], "segs": segs, "draws": draws, "ns": ns}


def to_u8_frames(video):
    """save_videos_grid for batch 1: per frame (x * 255).numpy().astype(np.uint8), HWC -> [1, F, H, W, 3]."""
    frames = [(video[0, :, f].transpose(0, 1).transpose(1, 2) * 255).numpy().astype(np.uint8)
              for f in range(video.shape[2])]
    return torch.from_numpy(np.stack(frames))[None]


def check_crash():
    """get_image_to_video_latent([k images], end, video_length=1) for k = 2, 3 raises; k = 1 works."""
    imgs = [Image.fromarray(np.full((32, 32, 3), 17 * i, np.uint8)) for i in range(3)]
    out = {}
    for k in (1, 2, 3):
        for end in (None, os.path.join(INPUTS, "end.png")):
            try:
                gp.get_image_to_video_latent(imgs[:k], end, video_length=1, sample_size=[32, 32])
                res = "ok"
            except RuntimeError as e:
                res = "RuntimeError: " + str(e).split(".")[0]
            out[f"{k} start images, 1 frame, end={'yes' if end else 'no'}"] = res
    assert out["1 start images, 1 frame, end=no"] == "ok" and out["1 start images, 1 frame, end=yes"] == "ok"
    assert all(v.startswith("RuntimeError") for k, v in out.items() if not k.startswith("1 "))
    return out


def analyse(case, run):
    """Asserts the loop's documented behaviour on the captured segments; returns tensors to store and a summary."""
    O, H, W = case["overlap"], case["H"], case["W"]
    segs, sample = run["segs"], run["sample"]
    t, meta = {}, []
    round_differs = 0
    start_total = 0
    expect = None  # the running output, recomputed from the segment outputs
    init = 0
    for i, s in enumerate(segs):
        v, m, out = s["video"], s["mask_video"], s["out"]
        F = s["num_frames"]
        assert out.dtype == torch.float32 and out.shape == (1, 3, F, H, W), out.shape
        last = i == len(segs) - 1
        # conditioning: start images in frames 0..k-1 (mask 0), the rest repeats frame 0 (mask 255), end image in
        # the last frame (mask 0) on the last segment only
        u8 = torch.round(v * 255)
        assert torch.equal(u8 / 255, v.float()) and v.dtype == torch.float32
        has_end = last and case.get("end") is not None
        if i == 0 and not case.get("start"):
            assert not v.any() and bool((m == 255).all())
            k = 0
        else:
            k = 1 if i == 0 else O
            mm = torch.full((F,), 255.0)
            mm[:k] = 0
            if has_end:
                mm[-1] = 0
            assert torch.equal(m.float()[0, 0, :, 0, 0], mm) and bool((m == m[:, :, :, :1, :1]).all())
            ref = u8[:, :, :k].clone()
            tile = torch.cat([ref, ref[:, :, :1].expand(-1, -1, F - k, -1, -1)], 2)
            if has_end:
                end = Image.open(os.path.join(INPUTS, case["end"])).convert("RGB").resize([W, H])
                tile[:, :, -1] = torch.from_numpy(np.array(end)).permute(2, 0, 1).float()[None]
            assert torch.equal(u8, tile)
        if i > 0:
            # start images = uint8 truncation of the previous running output's last O frames; PIL resize is a copy
            prev = expect[0, :, -O:]  # [3, O, H, W]
            trunc = (prev * 255).numpy().astype(np.uint8)
            rnd = np.clip(np.round((prev * 255).numpy()), 0, 255).astype(np.uint8)
            round_differs += int((trunc != rnd).sum())
            start_total += trunc.size
            kept = min(O, F - 1) if has_end else O  # a 1-frame last segment: the end image replaces the start
            assert np.array_equal(u8[0, :, :kept].numpy().astype(np.uint8), trunc[:, :kept])
            for j in range(O):
                img = Image.fromarray(np.ascontiguousarray(trunc[:, j].transpose(1, 2, 0)))
                assert np.array_equal(np.array(img.resize([W, H])), np.array(img))
            t[f"segment.{i}.start_images"] = torch.from_numpy(trunc[None]).contiguous()  # [1, 3, O, H, W] u8
            # cross-fade, as the loop computes it (float32 weights), then concatenation
            w = torch.from_numpy(np.array([float(j) / float(O) for j in range(O)], np.float32)).view(1, 1, O, 1, 1)
            nxt = expect.clone()
            nxt[:, :, -O:] = nxt[:, :, -O:] * (1 - w) + out[:, :, :O] * w
            expect = torch.cat([nxt, out[:, :, O:]], 2)
        else:
            expect = out
        meta.append({"index": i, "init_frames": init, "num_frames": F, "start_images": k, "end_image": has_end,
                     "draws": [d["kind"] for d in run["draws"][s["draws_before"]:
                                                               (segs[i + 1]["draws_before"] if not last else None)]],
                     "output_frames_after": int(expect.shape[2])})
        init = init + F - O
    assert torch.equal(expect, sample), "the running output is not reproduced from the segment outputs"
    # the start / end image as get_image_to_video_latent resizes them (PIL BICUBIC), so the test needs no resizer
    for k in ("start", "end"):
        if case.get(k):
            img = np.array(Image.open(os.path.join(INPUTS, case[k])).convert("RGB").resize([W, H]))
            frame = segs[0]["video"][0, :, 0] if k == "start" else segs[-1]["video"][0, :, -1]
            assert np.array_equal(torch.round(frame * 255).permute(1, 2, 0).numpy().astype(np.uint8), img)
            t[f"input.{k}_image"] = torch.from_numpy(img)  # [H, W, 3] u8
    frames_u8 = to_u8_frames(sample)
    if case.get("store_video"):
        # the saved frames are an exact function of the float video: (x * 255) in float32, truncated
        assert torch.equal(frames_u8, (sample.permute(0, 2, 3, 4, 1) * 255).to(torch.uint8))
        t["video"] = sample.contiguous()
    else:
        t["frames_u8"] = frames_u8
    for i, d in enumerate(run["draws"]):
        t[f"draw.{i:02d}.{d['kind']}"] = d["tensor"].contiguous()
    w = torch.from_numpy(np.array([float(j) / float(O) for j in range(O)], np.float32))
    summary = {
        "segments": meta,
        "output_frames": int(sample.shape[2]),
        "mix_ratio": {"dtype": gp.dtype_name(w), "values": w.tolist(), "one_minus_dtype": gp.dtype_name(1 - w),
                      "one_minus_values": (1 - w).tolist()},
        "start_images_truncation": {"pixels": start_total, "would_differ_if_rounded": round_differs},
        "draws": [{"key": f"draw.{i:02d}.{d['kind']}", "kind": d["kind"], "stream": d["stream"],
                   "shape": list(d["tensor"].shape)} for i, d in enumerate(run["draws"])],
    }
    return t, summary


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}  ui loop: cogvideox/ui/ui.py lines {LOOP_LINES[0]}-{LOOP_LINES[1]}")
    assert os.path.exists(os.path.join(INPUTS, "start_45x70.png")), "run reference/gen_pipelines.py first"
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    DRAWS.install()
    index = {}
    for case in CASES:
        run = run_once(case, "record")
        t, summary = analyse(case, run)
        # replay: other seeds, recorded draws injected -> identical output
        run2 = run_once(case, "replay", queue=run["draws"], seed_offset=1000)
        assert torch.equal(run2["sample"], run["sample"]), f"{case['name']}: replay differs"
        inputs = {k: {"file": f"../pipelines/inputs/{case[k]}", "sha256": gp.sha256(os.path.join(INPUTS, case[k]))}
                  for k in ("start", "end") if case.get(k)}
        index[case["name"]] = dict(
            summary, note=case["note"], sampler=case["sampler"],
            args={"num_inference_steps": case["steps"], "height": case["H"], "width": case["W"],
                  "length_slider": case["total"], "partial_video_length": case["partial"],
                  "overlap_video_length": case["overlap"], "generator_seed": case["seed"]},
            inputs=inputs, tensors={k: [gp.dtype_name(v), list(v.shape)] for k, v in sorted(t.items())})
        path = os.path.join(OUT, case["name"] + ".safetensors")
        save_file({k: t[k].contiguous().clone() for k in sorted(t)}, path,
                  # one key: safetensors writes several metadata keys in a random order
                  metadata={"case": json.dumps({"name": case["name"], "generator": "reference/gen_long_video.py"},
                                               sort_keys=True)})
        print(f"  {case['name']:16s} {os.path.getsize(path):8d} B  segments "
              f"{[s['num_frames'] for s in summary['segments']]} -> {summary['output_frames']} frames, "
              f"draws {len(summary['draws'])}, start px where rounding differs "
              f"{summary['start_images_truncation']['would_differ_if_rounded']}/"
              f"{summary['start_images_truncation']['pixels']}")
    doc = {
        "generator": "reference/gen_long_video.py",
        "versions": {"torch": torch.__version__, "cogvideox_fun": "6c39567"},
        "ui_loop": {"file": "cogvideox/ui/ui.py", "lines": list(LOOP_LINES)},
        "checkpoint": "tiny-cogvideox-fun",
        "component_sha256": {sub: gp.sha256(os.path.join(gp.FUN_DIR, sub)) for sub in (
            "transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
            "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors",
            "tokenizer/spiece.model", "transformer/config.json", "vae/config.json", "scheduler/scheduler_config.json")},
        "common_args": {"prompt": gp.FUN_PROMPT, "negative_prompt": gp.FUN_NEGATIVE, "guidance_scale": gp.GUIDANCE},
        "one_frame_last_segment": check_crash(),
        "cases": index,
    }
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(gp.compact_json(doc) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"  {total:8d} B total test/fixtures/long_video")


DRAWS = gp.DRAWS

if __name__ == "__main__":
    main()
