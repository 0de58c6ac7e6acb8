#!/usr/bin/env python3
"""Reference fixture for the bucket collate_fn of CogVideoX-Fun's scripts/train.py (commit 6c39567) with
--random_hw_adapt, with and without --training_with_video_token_length, on image and video batches.

`get_length_to_frame_num` + `collate_fn` (train.py:1013-1178) and `get_random_downsample_ratio` (train.py:81-111) are
CUT OUT of train.py at run time (see gen_training.py) and exec'd with:
  * `rng`: a numpy Generator (np.random.default_rng(PCG64(seed)), as train.py:743) behind a logging stand-in: every
    `rng.choice` is recorded as {src: "np.choice", value: index drawn}. The index is drawn with the same generator
    call (choice(len(a), p=p) consumes the stream exactly as choice(a, p=p)), so duplicates in the list (image_ratio
    2.0 next to 2) are logged as the index numpy picked.
  * `get_random_mask`: a stand-in returning an all-zero [f, 1, h, w] mask and recording the shape asked for (the
    mask draws themselves are covered by gen_training.py's masks fixture).
  * `transforms`: torchvision is not installed here; a stand-in with torchvision's size semantics (Resize to the
    given (h, w) by bilinear interpolate, CenterCrop with int(round((H - h) / 2.0)) offsets, Normalize in place).
    Only sizes are compared: pixel values are zero frames.
  * `get_closest_ratio`, ASPECT_RATIO_512, ASPECT_RATIO_RANDOM_CROP_*: from cogvideox/data/bucket_sampler.py.

Examples are uint8 zero arrays (F, h, w, 3) of the sizes the dataset would hand over (after ds.py resize_frame).

Output: test/fixtures/training/collate.json. From the repository root:

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 reference/gen_training_collate.py
"""

import ast
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from gen_training import FUN, OUT, TRAIN_PY, cut_block, cut_function, read  # noqa: E402

torch.set_num_threads(1)
BUCKET_PY = os.path.join(FUN, "cogvideox", "data", "bucket_sampler.py")


class LoggingRng:
    def __init__(self, seed, log):
        self.g = np.random.default_rng(np.random.PCG64(seed))
        self.log = log

    def choice(self, a, p=None):
        arr = np.asarray(a)
        idx = int(self.g.choice(len(arr), p=p))
        self.log.append({"src": "np.choice", "args": {"n": len(arr), "p": None if p is None else list(map(float, p))},
                         "value": idx})
        return arr[idx]


def transforms_standin(record):
    class Compose:
        def __init__(self, ts):
            self.ts = ts

        def __call__(self, x):
            for t in self.ts:
                x = t(x)
            return x

    class Resize:
        def __init__(self, size, interpolation=None):
            self.size = [int(s) for s in size]

        def __call__(self, x):
            record.setdefault("resize", []).append(self.size)
            return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)

    class CenterCrop:
        def __init__(self, size):
            self.size = [int(s) for s in size]

        def __call__(self, x):
            H, W = x.shape[-2:]
            th, tw = self.size
            top, left = int(round((H - th) / 2.0)), int(round((W - tw) / 2.0))
            record.setdefault("crop", []).append([top, left])
            return x[..., top:top + th, left:left + tw]

    class Normalize:
        def __init__(self, mean, std, inplace=False):
            self.mean, self.std = mean, std

        def __call__(self, x):
            return (x - 0.5) / 0.5

    return types.SimpleNamespace(Compose=Compose, Resize=Resize, CenterCrop=CenterCrop, Normalize=Normalize,
                                 InterpolationMode=types.SimpleNamespace(BILINEAR="bilinear"))


def bucket_namespace():
    src = read(BUCKET_PY)
    ns = {"np": np}
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and \
                node.targets[0].id.startswith("ASPECT_RATIO"):
            exec(ast.get_source_segment(src, node), ns)
    exec(cut_function(BUCKET_PY, "get_closest_ratio"), ns)
    return ns


# (video_sample_size, image_sample_size, video_sample_n_frames, token_sample_size, token-length, patch_size_t)
CONFIGS = [
    (512, 1024, 17, 512, False, None),
    (1024, 1024, 17, 512, False, None),
    (768, 768, 13, 512, False, 2),
    (256, 1024, 49, 512, True, None),
    (256, 640, 17, 256, True, 2),
    (512, 256, 9, 512, True, None),
]
# batches: (type, frames, h, w) per example; examples[0] decides the geometry
BATCHES = [
    [("video", 17, 480, 640), ("video", 9, 360, 480)],
    [("video", 13, 720, 1280)],
    [("video", 49, 256, 448), ("video", 33, 256, 256)],
    [("image", 1, 600, 400), ("image", 1, 1024, 1024)],
    [("image", 1, 300, 500)],
    [("video", 21, 1080, 1080)],
]


def run_case(collate_src, ns_bucket, cfg, batch, seed, adapt):
    Sv, Si, N, tok, toklen, pt = cfg
    log, record, masks = [], {}, []
    args = types.SimpleNamespace(video_sample_n_frames=N, token_sample_size=tok, image_sample_size=Si,
                                 video_sample_size=Sv, random_hw_adapt=adapt, training_with_video_token_length=toklen,
                                 random_ratio_crop=False, train_mode="inpaint",
                                 enable_text_encoder_in_dataloader=False)

    def get_random_mask(shape):
        masks.append(list(shape))
        f, _, h, w = shape
        return torch.zeros(f, 1, h, w, dtype=torch.uint8)

    ns = dict(ns_bucket)
    ns.update({"args": args, "torch": torch, "transforms": transforms_standin(record), "rng": LoggingRng(seed, log),
               "sample_n_frames_bucket_interval": 4, "patch_size_t": pt, "get_random_mask": get_random_mask})
    exec(cut_function(TRAIN_PY, "get_random_downsample_ratio"), ns)
    exec(collate_src, ns)
    examples = [{"pixel_values": np.zeros((f, h, w, 3), np.uint8), "data_type": t, "text": "x"}
                for (t, f, h, w) in batch]
    out = ns["collate_fn"](examples)
    return {
        "video_sample_size": Sv, "image_sample_size": Si, "video_sample_n_frames": N, "token_sample_size": tok,
        "training_with_video_token_length": toklen, "random_hw_adapt": adapt, "patch_size_t": pt, "seed": seed,
        "examples": [{"type": t, "frames": f, "height": h, "width": w} for (t, f, h, w) in batch],
        "draws": log, "resize": record.get("resize", []), "crop": record.get("crop", []), "mask_shapes": masks,
        "pixel_values": list(out["pixel_values"].shape), "mask": list(out["mask"].shape),
    }


def main():
    collate_src, lines = cut_block(TRAIN_PY, "def get_length_to_frame_num(token_length):", "return new_examples")
    ns_bucket = bucket_namespace()
    cases = []
    for ci, cfg in enumerate(CONFIGS):
        for bi, batch in enumerate(BATCHES):
            for seed in range(3):
                cases.append(run_case(collate_src, ns_bucket, cfg, batch, 100 * ci + 10 * bi + seed, True))
            if ci == 0:
                cases.append(run_case(collate_src, ns_bucket, cfg, batch, 0, False))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "collate.json"), "w") as f:
        json.dump({"source": {"file": "scripts/train.py", "lines": lines}, "torch": torch.__version__,
                   "numpy": np.__version__, "cases": cases}, f)
    print(f"collate.json: {len(cases)} cases")


if __name__ == "__main__":
    main()
