#!/usr/bin/env python3
"""Reference fixtures for training, computed by CogVideoX-Fun's own training code (scripts/train.py, train_lora.py,
cogvideox/data/dataset_image_video.py, cogvideox/utils/lora_utils.py at 6c39567) and diffusers v0.32.2.

train.py cannot be imported here (it needs accelerate, torchvision, tensorboard, datasets at import time), so the
functions and step fragments used are CUT OUT of the original files at run time (ast for whole functions, marker lines
for statement blocks inside `main()`), dedented and exec'd in a namespace that provides exactly the names they read
(`args`, `accelerator`, `vae`, ...). Nothing of the original is copied into this repository. Library code
(diffusers' DDPMScheduler / get_scheduler / EMAModel, torch.optim.AdamW, clip_grad_norm_ as accelerate calls it,
Fun's create_network / LoRANetwork.save_weights / merge_lora) is imported.

Every random draw is recorded where the original makes it, so the port can replay it:
  * get_random_mask runs with logging stand-ins for `np` / `torch` / `random` in its namespace (they call the real
    generators and log {src, args, value}).
  * add_noise_to_reference_video's `torch.normal` / `torch.randn_like` are wrapped the same way.
  * the t2v_flag block's `np.random.rand()` likewise.
  * VAE posterior samples: a stand-in `vae.encode` returns diffusers' DiagonalGaussianDistribution of injected moments
    whose `.sample()` noise is recorded (`eps_vae`, `eps_vae_mask`).
  * diffusion noise and timesteps: drawn with the step's own `torch.randn(..., generator=torch_rng)` and
    `DiscreteSampling(1000, False)(bsz, generator=torch_rng)`, recorded.

Harness deviations from the shipped runs (recorded in manifest.json): CPU, float32 everywhere (the shipped scripts
train a bf16 transformer), one process, no accelerate (loss.backward(); the clip code; optimizer.step();
lr_scheduler.step(); zero_grad(); ema.step()), gradient_accumulation_steps = 1, T5/VAE replaced by injected tensors.

Output: test/fixtures/training/*. Deterministic (fixed seeds, one thread). From the repository root:

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 reference/gen_training.py
"""

import ast
import contextlib
import io
import json
import os
import random
import sys
import textwrap
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (before anything importing transformers)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from einops import rearrange  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import DDPMScheduler  # noqa: E402
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution  # noqa: E402
from diffusers.optimization import get_scheduler  # noqa: E402
from diffusers.training_utils import EMAModel  # noqa: E402

import cogvideox  # noqa: E402
from cogvideox.models.transformer3d import CogVideoXTransformer3DModel as FunTransformer  # noqa: E402
from cogvideox.pipeline.pipeline_cogvideox_inpaint import get_3d_rotary_pos_embed, get_resize_crop_region_for_grid  # noqa: E402
from cogvideox.utils.discrete_sampler import DiscreteSampling  # noqa: E402
from cogvideox.utils.lora_utils import create_network, merge_lora  # noqa: E402

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

REPO = os.path.dirname(HERE)
FIX = os.path.join(REPO, "test", "fixtures")
OUT = os.path.join(FIX, "training")
FUN = os.path.dirname(os.path.dirname(os.path.abspath(cogvideox.__file__)))
TRAIN_PY = os.path.join(FUN, "scripts", "train.py")
TRAIN_LORA_PY = os.path.join(FUN, "scripts", "train_lora.py")
DATASET_PY = os.path.join(FUN, "cogvideox", "data", "dataset_image_video.py")
INPAINT_PY = os.path.join(FUN, "cogvideox", "pipeline", "pipeline_cogvideox_inpaint.py")

MANIFEST = {"harness": __doc__.split("Harness deviations")[1].split("Output:")[0].strip(), "files": {}}


# --------------------------------------------------------------------------------------
# Cutting original source
# --------------------------------------------------------------------------------------


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def cut_function(path, name):
    """The source of the top-level function `name` in `path`, verbatim."""
    src = read(path)
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(src, node)
    raise KeyError(f"{name} not in {path}")


def cut_block(path, first, last, after=None, exact_last=False):
    """Lines from the one whose stripped text starts with `first` to the next starting with (or, with exact_last,
    equal to) `last`, inclusive, searching from the first line containing `after`; dedented."""
    lines = read(path).split("\n")
    i0 = 0 if after is None else next(i for i, l in enumerate(lines) if after in l)
    s = next(i for i in range(i0, len(lines)) if lines[i].strip().startswith(first))
    e = next(i for i in range(s, len(lines))
             if (lines[i].strip() == last if exact_last else lines[i].strip().startswith(last)))
    return textwrap.dedent("\n".join(lines[s:e + 1])), (s + 1, e + 1)


def load_function(path, name, namespace):
    exec(cut_function(path, name), namespace)
    return namespace[name]


# --------------------------------------------------------------------------------------
# Draw logging stand-ins (call the real generators, log what the original code received)
# --------------------------------------------------------------------------------------


def tolist(v):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


class DrawLog:
    def __init__(self):
        self.log = []

    def add(self, src, args, value, store=True):
        self.log.append({"src": src, "args": args, "value": tolist(value) if store else None})
        return value


def logging_np(log):
    class R:
        @staticmethod
        def choice(a, p=None):
            v = np.random.choice(a, p=p)
            # the port draws an index into `a`
            log.add("np.choice", {"n": len(a), "p": list(map(float, p))}, list(a).index(v))
            return v

        @staticmethod
        def randint(lo, hi=None):
            return log.add("np.randint", [lo, hi], np.random.randint(lo, hi))

        @staticmethod
        def rand():
            return log.add("np.rand", [], np.random.rand())

    return types.SimpleNamespace(random=R, **{k: getattr(np, k) for k in ("array", "float32", "uint8")})


class LoggingTorch(types.ModuleType):
    def __init__(self, log):
        super().__init__("torch")
        self._log = log

    def __getattr__(self, k):
        return getattr(torch, k)

    def randint(self, lo, hi, size, dtype=None):
        v = torch.randint(lo, hi, size, dtype=dtype) if dtype is not None else torch.randint(lo, hi, size)
        self._log.add("torch.randint", [lo, hi, list(size)], v)
        return v

    def normal(self, mean, std, size):
        v = torch.normal(mean=mean, std=std, size=size)
        self._log.add("torch.normal", [mean, std, list(size)], v)
        return v

    def randn_like(self, x):
        v = torch.randn_like(x)
        self._log.add("torch.randn_like", [list(x.shape)], v, store=False)
        return v


def logging_random(log):
    class R:
        @staticmethod
        def randint(a, b):
            return log.add("py.randint", [a, b], random.randint(a, b))

        @staticmethod
        def sample(population, k):
            pop = list(population)
            v = random.sample(population, k)
            return log.add("py.sample", [len(pop), k], v)

    return R


# --------------------------------------------------------------------------------------
# F1: DDPM schedule
# --------------------------------------------------------------------------------------


def scheduler_config(name):
    with open(os.path.join(FIX, name, "scheduler", "scheduler_config.json")) as f:
        return json.load(f)


def gen_schedule():
    out = {}
    meta = {}
    for tag, d in (("2b", "tiny-pipe-2b"), ("5b", "tiny-pipe-5b")):
        cfg = scheduler_config(d)
        # train.py:767 DDPMScheduler.from_pretrained(model, subfolder="scheduler"): from_config of the same dict
        sched = DDPMScheduler.from_config(cfg)
        meta[tag] = {"config": d + "/scheduler/scheduler_config.json", "prediction_type": sched.config.prediction_type}
        out[f"{tag}.betas"] = sched.betas.float()
        out[f"{tag}.alphas_cumprod"] = sched.alphas_cumprod.float()
    sched = DDPMScheduler.from_config(scheduler_config("tiny-pipe-2b"))
    g = torch.Generator().manual_seed(11)
    x0 = torch.randn(5, 3, 4, 6, 10, generator=g)
    eps = torch.randn(5, 3, 4, 6, 10, generator=g)
    t = torch.tensor([0, 1, 500, 998, 999], dtype=torch.int64)
    out["noise.x0"], out["noise.eps"], out["noise.t"] = x0, eps, t
    out["noise.noisy"] = sched.add_noise(x0, eps, t)
    out["noise.v"] = sched.get_velocity(x0, eps, t)
    ac = sched.alphas_cumprod.to(dtype=x0.dtype)
    out["noise.sa"] = (ac[t] ** 0.5).flatten()
    out["noise.s1m"] = ((1 - ac[t]) ** 0.5).flatten()
    # uniform integer timesteps: DiscreteSampling(1000, uniform_sampling=False) (no process group: torch.randint)
    idx = DiscreteSampling(1000, uniform_sampling=False)
    gg = torch.Generator().manual_seed(5)
    out["timesteps.draw"] = idx(7, generator=gg).long()
    save("schedule.safetensors", out, meta)


# --------------------------------------------------------------------------------------
# F2: get_random_mask with logged draws; F3 resize_mask, reference noise
# --------------------------------------------------------------------------------------


MASK_SHAPES = [(9, 3, 32, 48), (1, 3, 32, 48), (49, 3, 16, 16), (13, 3, 24, 40), (2, 3, 8, 8)]
MASK_REPEATS = [2, 4, 1, 1, 1]


def mask_fn(log):
    ns = {"np": logging_np(log), "torch": LoggingTorch(log), "random": logging_random(log)}
    return load_function(DATASET_PY, "get_random_mask", ns)


def gen_masks():
    cases = []
    tensors = {}
    for shape, want in zip(MASK_SHAPES, MASK_REPEATS):
        seen = {}
        seed = 0
        ntypes = 10 if shape[0] != 1 else 2
        while sum(min(seen.get(k, 0), want) for k in range(ntypes)) < want * ntypes and seed < 2000:
            np.random.seed(seed)
            torch.manual_seed(seed)
            random.seed(seed)
            log = DrawLog()
            mask = mask_fn(log)(shape)
            kind = log.log[0]["value"]
            seed += 1
            if seen.get(kind, 0) >= want:
                continue
            seen[kind] = seen.get(kind, 0) + 1
            key = f"mask.{len(cases)}"
            # type 5: the draw IS the mask; keep it out of the JSON (the tensor is stored)
            draws = [d if d["src"] != "torch.randint" or len(d["args"][2]) == 1 or d["args"][2] == [1] else
                     {**d, "value": None, "tensor": key} for d in log.log]
            cases.append({"shape": list(shape), "seed": seed - 1, "type": int(kind), "draws": draws, "mask": key})
            tensors[key] = mask.contiguous()
    # mask_pixel_values as collate_fn computes it (train.py:1151), for one video case
    # mask + mask_pixel_values exactly as collate_fn makes them (train.py:1149-1153), for one video case
    src, lines = cut_block(TRAIN_PY, "mask = get_random_mask(new_examples", 'new_examples["mask"].append(mask)')
    c = next(c for c in cases if c["shape"] == [9, 3, 32, 48] and c["type"] == 0)
    g = torch.Generator().manual_seed(3)
    pv = torch.rand(9, 3, 32, 48, generator=g) * 2 - 1
    ns = {"torch": torch, "get_random_mask": lambda shape: tensors[c["mask"]].clone(),
          "new_examples": {"pixel_values": [pv], "mask_pixel_values": [], "mask": []}}
    exec(src, ns)
    ns["mask_pixel_values"] = ns["new_examples"]["mask_pixel_values"][0]
    tensors["mpv.pixel_values"] = pv
    tensors["mpv.mask_pixel_values"] = ns["mask_pixel_values"]
    save("masks.safetensors", tensors, {"cases": cases, "mpv_mask": c["mask"]})


def gen_resize_and_refnoise():
    ns = {"F": F, "torch": torch}
    resize_mask = load_function(TRAIN_PY, "resize_mask", ns)
    g = torch.Generator().manual_seed(21)
    t = {}
    cases = []
    for i, (B, Fr, H, W, f, h, w, first) in enumerate([
            (2, 9, 32, 32, 3, 4, 4, True), (1, 49, 16, 16, 13, 2, 2, True), (2, 1, 60, 84, 1, 8, 12, True),
            (1, 9, 30, 42, 3, 4, 6, True), (1, 9, 32, 32, 3, 4, 4, False), (1, 17, 40, 48, 5, 5, 6, True)]):
        m = (torch.rand(B, 1, Fr, H, W, generator=g) < 0.5).float()
        latent = torch.zeros(B, 16, f, h, w)
        t[f"resize.{i}.in"] = m.to(torch.uint8)
        t[f"resize.{i}.out"] = resize_mask(m, latent, process_first_frame_only=first)
        cases.append({"latent": [f, h, w], "process_first_frame_only": first})
    # add_noise_to_reference_video (pipeline_cogvideox_inpaint.py:275) with logged draws
    log = DrawLog()
    ns2 = {"torch": LoggingTorch(log)}
    add_noise = load_function(INPAINT_PY, "add_noise_to_reference_video", ns2)
    img = torch.rand(3, 5, 3, 8, 12, generator=g) * 2 - 1
    img[0, :2] = -1.0  # masked frames: noise suppressed by the == -1 test
    img[1, :, :, :4] = -1.0
    torch.manual_seed(77)
    sigma = torch.normal(mean=-3.0, std=0.5, size=(3,))
    ref = torch.randn_like(img)
    torch.manual_seed(77)
    out = add_noise(img.clone())
    assert [d["src"] for d in log.log] == ["torch.normal", "torch.randn_like"]
    assert torch.equal(torch.tensor(log.log[0]["value"]), sigma)
    t["refnoise.image"], t["refnoise.sigma_normal"], t["refnoise.noise"], t["refnoise.out"] = img, sigma, ref, out
    save("resize_mask.safetensors", t, {"cases": cases})


# --------------------------------------------------------------------------------------
# Optimiser pieces on synthetic parameters: AdamW, constant_with_warmup, adaptive clip, plain clip, EMA
# --------------------------------------------------------------------------------------


def clip_block():
    src, lines = cut_block(TRAIN_PY, "trainable_params_grads = [p.grad", "actual_max_grad_norm = max_grad_norm",
                           after="accelerator.backward(loss)", exact_last=True)
    # the block ends with the `else:` branch's assignment; check the shape of what was cut
    assert src.count("actual_max_grad_norm =") == 2 and "linear_decay(" in src, src
    return src, lines


def run_clip(trainable_params, args, global_step, adaptive, src):
    """train.py:1620-1637 (adaptive) or train_lora.py:1566 (plain), then accelerator.clip_grad_norm_ =
    torch.nn.utils.clip_grad_norm_(params, float(max_norm), 2) (accelerate v1.2.1 accelerator.py:2398)."""
    rec = {}
    if adaptive:
        ns = {"torch": torch, "args": args, "global_step": global_step, "trainable_params": trainable_params}
        load_function(TRAIN_PY, "linear_decay", ns)
        exec(src, ns)
        rec.update(total=float(ns["trainable_params_total_norm"]), mgn=float(ns["max_grad_norm"]),
                   actual=float(ns["actual_max_grad_norm"]))
        actual = ns["actual_max_grad_norm"]
    else:
        actual = args.max_grad_norm
        rec.update(actual=float(actual))
    rec["clip_total"] = float(torch.nn.utils.clip_grad_norm_(trainable_params, float(actual), 2))
    return rec


def gen_optim():
    src, lines = clip_block()
    meta = {"clip_block_lines": lines, "runs": []}
    tensors = {}
    shapes = {"a.weight": (8, 6), "a.bias": (8,), "b.weight": (3, 4, 2), "c.weight": (5, 5)}
    for run, (sched_name, start, adaptive, groups, ema_on) in enumerate([
            ("constant_with_warmup", 1, True, "two", True),
            ("constant_with_warmup", 1000, True, "one", False),
            ("constant", 1000, False, "one", False)]):
        g = torch.Generator().manual_seed(100 + run)
        params = {k: torch.nn.Parameter(torch.randn(s, generator=g)) for k, s in shapes.items()}
        lr = 1e-3
        if groups == "two":
            # trainable_modules ["a."] at lr, trainable_modules_low_learning_rate ["b."] at lr/2; c frozen
            params["c.weight"].requires_grad_(False)
            pg = [{"params": [params["a.weight"], params["a.bias"]], "lr": lr},
                  {"params": [params["b.weight"]], "lr": lr / 2}]
            names = [["a.weight", "a.bias"], ["b.weight"]]
        else:
            pg = [{"params": list(params.values()), "lr": lr}]
            names = [list(params.keys())]
        trainable = [p for p in params.values() if p.requires_grad]
        opt = torch.optim.AdamW(pg, lr=lr, betas=(0.9, 0.999), weight_decay=3e-2, eps=1e-10)
        sch = get_scheduler(sched_name, optimizer=opt, num_warmup_steps=2, num_training_steps=10)
        ema = EMAModel(list(params.values())) if ema_on else None
        args = types.SimpleNamespace(max_grad_norm=0.05, initial_grad_norm_ratio=5, abnormal_norm_clip_start=start)
        for k, p in params.items():
            tensors[f"run{run}.init.{k}"] = p.detach().clone()
        steps = []
        for step in range(3):
            scale = [0.02, 0.3, 1.0][step]
            for k, p in params.items():
                if p.requires_grad:
                    p.grad = torch.randn(p.shape, generator=g) * scale
                    tensors[f"run{run}.step{step}.grad.{k}"] = p.grad.clone()
            rec = run_clip(trainable, args, step, adaptive, src)
            rec["lr"] = [grp["lr"] for grp in opt.param_groups]
            opt.step()
            sch.step()
            opt.zero_grad()
            if ema is not None:
                ema.step(list(params.values()))
                rec["ema_decay"] = float(ema.cur_decay_value)
            for k, p in params.items():
                tensors[f"run{run}.step{step}.param.{k}"] = p.detach().clone()
                if p in opt.state and opt.state[p]:
                    st = opt.state[p]
                    tensors[f"run{run}.step{step}.exp_avg.{k}"] = st["exp_avg"].clone()
                    tensors[f"run{run}.step{step}.exp_avg_sq.{k}"] = st["exp_avg_sq"].clone()
            if ema is not None:
                for k, s in zip(params.keys(), ema.shadow_params):
                    tensors[f"run{run}.step{step}.ema.{k}"] = s.clone()
            steps.append(rec)
        meta["runs"].append({"lr_scheduler": sched_name, "lr_warmup_steps": 2, "learning_rate": lr,
                             "adam_weight_decay": 3e-2, "adam_epsilon": 1e-10, "betas": [0.9, 0.999],
                             "max_grad_norm": 0.05, "initial_grad_norm_ratio": 5, "abnormal_norm_clip_start": start,
                             "adaptive_clip": adaptive, "groups": names, "group_lr_ratio": [1, 0.5][:len(names)],
                             "frozen": [k for k, p in params.items() if not p.requires_grad],
                             "use_ema": ema_on, "steps": steps})
    # tables: lr factors and EMA decays
    lrs = {}
    for name, w in (("constant", 3), ("constant_with_warmup", 3), ("constant_with_warmup", 0)):
        p = torch.nn.Parameter(torch.zeros(1))
        o = torch.optim.SGD([p], lr=1.0)
        s = get_scheduler(name, optimizer=o, num_warmup_steps=w, num_training_steps=10)
        vals = []
        for _ in range(10):
            vals.append(o.param_groups[0]["lr"])
            o.step()
            s.step()
        lrs[f"{name}:{w}"] = vals
    e = EMAModel([torch.nn.Parameter(torch.zeros(1))])
    meta["lr_tables"] = lrs
    meta["ema_decay_table"] = [e.get_decay(n) for n in range(1, 21)] + [e.get_decay(89990), e.get_decay(89991),
                                                                       e.get_decay(10 ** 6)]
    save("optim.safetensors", tensors, meta)


# --------------------------------------------------------------------------------------
# The training step on the tiny Fun transformers (full FT and LoRA)
# --------------------------------------------------------------------------------------


class FakeVae:
    """vae.encode(x)[0] → DiagonalGaussianDistribution(injected moments); .sample() noise recorded."""

    def __init__(self, moments, scaling_factor, record):
        self.queue = list(moments)
        self.config = types.SimpleNamespace(scaling_factor=scaling_factor, block_out_channels=[1, 2, 3, 4])
        self.record = record

    def encode(self, x):
        params = self.queue.pop(0)
        assert params.shape[0] == x.shape[0] and params.shape[2] == (x.shape[2] - 1) // 4 + 1, (params.shape, x.shape)
        dist = DiagonalGaussianDistribution(params)
        rec = self.record
        orig = dist.sample

        def sample(generator=None):
            torch.manual_seed(1000 + len(rec))
            eps = torch.randn(dist.mean.shape)
            torch.manual_seed(1000 + len(rec))
            v = orig(generator)
            assert torch.equal(v, dist.mean + dist.std * eps)
            rec.append((params, eps))
            return v

        dist.sample = sample
        return [dist]


def step_fragments():
    """Statement blocks of the step, cut from train.py main()."""
    t2v, l1 = cut_block(TRAIN_PY, "t2v_flag = [(_mask == 1).all()", "t2v_flag = torch.from_numpy(")
    enc, l2 = cut_block(TRAIN_PY, "def _batch_encode_vae(pixel_values):", "return torch.cat(new_pixel_values")
    inp, l3 = cut_block(TRAIN_PY, "latents = latents * vae.config.scaling_factor",
                        'latents = rearrange(latents, "b c f h w -> b f c h w")')
    noise, l4 = cut_block(TRAIN_PY, "noise = torch.randn(latents.size()", "timesteps = timesteps.long()")
    rope, l5 = cut_block(TRAIN_PY, "def _prepare_rotary_positional_embeddings(", "return freqs_cos, freqs_sin")
    tgt, l6 = cut_block(TRAIN_PY, "noisy_latents = noise_scheduler.add_noise(", 'raise ValueError(f"Unknown prediction')
    loss, l7 = cut_block(TRAIN_PY, 'loss = F.mse_loss(noise_pred.float(), target.float(), reduction="mean")',
                         "loss = loss * (1 - args.motion_sub_loss_ratio)")
    return {"t2v": t2v, "encode": enc, "inpaint": inp, "noise": noise, "rope": rope, "target": tgt,
            "loss": loss}, {"t2v": l1, "encode": l2, "inpaint": l3, "noise": l4, "rope": l5, "target": l6, "loss": l7}


STEP_CFGS = {
    # name: (checkpoint, scaling factor, latent (f, h, w), text length)
    "2b": ("tiny-fun-2b-inp", 1.15258426, (3, 4, 6), 226),
    "5b": ("tiny-fun-5b-inp", 0.7, (3, 4, 6), 16),
    "1.5": ("tiny-fun-1.5-5b-inp", 0.7, (2, 4, 6), 16),
}


def load_tiny(ckpt):
    with contextlib.redirect_stdout(io.StringIO()):
        m = FunTransformer.from_pretrained_2d(os.path.join(FIX, ckpt, "transformer"), torch_dtype=torch.float32)
    return m.train()


def make_batch(g, B, f, h, w, masks):
    """A collate_fn batch in inpaint mode (train.py:1149-1159): pixel_values (B,F,3,H,W), mask (B,F,1,H,W) uint8 and
    mask_pixel_values, the masks given instead of drawn."""
    Fr, H, W = (f - 1) * 4 + 1, h * 8, w * 8
    src, _ = cut_block(TRAIN_PY, "mask = get_random_mask(new_examples", 'new_examples["mask"].append(mask)')
    ex = {"pixel_values": [], "mask_pixel_values": [], "mask": []}
    for m in masks:
        ex["pixel_values"].append(torch.rand(Fr, 3, H, W, generator=g) * 2 - 1)
        exec(src, {"torch": torch, "get_random_mask": lambda shape, m=m: m.to(torch.uint8), "new_examples": ex})
    out = {k: torch.stack(v) for k, v in ex.items()}
    out["text"] = ["a", "b"][:B]
    return out


def run_step(frag, model, batch, args, global_step, moments, t2v_rand, scheduler, torch_rng, sf, text, prefix, t):
    """train.py:1438-1611 for one batch, with the fragments exec'd in one namespace."""
    weight_dtype = torch.float32
    vae_rec = []
    vae = FakeVae(moments, sf, vae_rec)
    rand_vals = list(t2v_rand)
    used = []

    def rand():
        v = rand_vals.pop(0)
        used.append(v)
        return v

    np_stub = types.SimpleNamespace(random=types.SimpleNamespace(rand=rand), array=np.array)
    noise_log = DrawLog()
    ns = {"torch": LoggingTorch(noise_log), "np": np_stub, "rearrange": rearrange, "F": F, "args": args,
          "accelerator": types.SimpleNamespace(device="cpu"), "weight_dtype": weight_dtype, "vae": vae,
          "unwrap_model": lambda m: m, "transformer3d": model, "noise_scheduler": scheduler, "torch_rng": torch_rng,
          "idx_sampling": DiscreteSampling(1000, uniform_sampling=False), "batch": batch,
          "get_3d_rotary_pos_embed": get_3d_rotary_pos_embed,
          "get_resize_crop_region_for_grid": get_resize_crop_region_for_grid, "vae_stream_1": None,
          "vae_stream_2": None}
    load_function(TRAIN_PY, "resize_mask", ns)
    ref_log = DrawLog()
    ns_ref = {"torch": LoggingTorch(ref_log)}
    ns["add_noise_to_reference_video"] = load_function(INPAINT_PY, "add_noise_to_reference_video", ns_ref)
    ns["pixel_values"] = batch["pixel_values"].to(weight_dtype)
    ns["mask_pixel_values"] = batch["mask_pixel_values"].to(weight_dtype)
    ns["mask"] = batch["mask"].to(weight_dtype)
    exec(frag["t2v"], ns)
    with torch.no_grad():
        exec(frag["encode"], ns)
        ns["latents"] = ns["_batch_encode_vae"](ns["pixel_values"])
        torch.manual_seed(4242)  # reference noise (global CPU generator), recorded by the wrapper
        exec(frag["inpaint"], ns)
    ns["prompt_embeds"] = text
    ns["bsz"] = ns["latents"].shape[0]
    exec(frag["noise"], ns)
    exec(frag["rope"], ns)
    height, width = batch["pixel_values"].size()[-2], batch["pixel_values"].size()[-1]
    ns["image_rotary_emb"] = (ns["_prepare_rotary_positional_embeddings"](height, width, ns["latents"].size(1), "cpu")
                              if model.config.use_rotary_positional_embeddings else None)
    exec(frag["target"], ns)
    ns["noise_pred"] = model(hidden_states=ns["noisy_latents"], encoder_hidden_states=ns["prompt_embeds"],
                             timestep=ns["timesteps"], image_rotary_emb=ns["image_rotary_emb"], return_dict=False,
                             inpaint_latents=ns["inpaint_latents"])[0]
    exec(frag["loss"], ns)
    loss = ns["loss"]
    loss.backward()
    (lat_params, lat_eps), (mask_params, mask_eps) = vae_rec
    t[f"{prefix}.vae_moments"], t[f"{prefix}.eps_vae"] = lat_params, lat_eps
    t[f"{prefix}.vae_moments_mask"], t[f"{prefix}.eps_vae_mask"] = mask_params, mask_eps
    # only the mask: the stand-in VAE ignores its input, so pixel values and the reference noise (tested standalone
    # in resize_mask.safetensors) do not reach the step's numbers
    t[f"{prefix}.batch.mask"] = batch["mask"]
    t[f"{prefix}.prompt_embeds"] = text
    for k in ("latents", "inpaint_latents", "noise", "noisy_latents", "target", "noise_pred"):
        t[f"{prefix}.{k}"] = ns[k].detach().clone()
    t[f"{prefix}.timesteps"] = ns["timesteps"]
    t[f"{prefix}.t2v_flag"] = ns["t2v_flag"]
    t[f"{prefix}.loss"] = loss.detach().reshape(1)
    rec = {"t2v_rand": used, "loss": float(loss)}
    rec["reference_noise_drawn"] = [d["src"] for d in ref_log.log]
    return rec


def gen_step(name, lora=False):
    ckpt, sf, (f, h, w), L = STEP_CFGS[name]
    frag, frag_lines = step_fragments()
    clip_src, _ = clip_block()
    model = load_tiny(ckpt)
    model.config.add_noise_in_inpaint_model = True  # exercised here; the tiny checkpoints say false
    model.register_to_config(add_noise_in_inpaint_model=True)
    scheduler = DDPMScheduler.from_config(scheduler_config("tiny-pipe-2b"))
    B = 2
    g = torch.Generator().manual_seed(31)
    Fr, H, W = (f - 1) * 4 + 1, h * 8, w * 8
    torch_rng = torch.Generator().manual_seed(42)
    lr = 1e-3
    if lora:
        torch.manual_seed(1)
        with contextlib.redirect_stdout(io.StringIO()):
            network = create_network(1.0, 4, 2, None, model, neuron_dropout=None, add_lora_in_attn_temporal=True)
            network.apply_to(None, model, False, True)
        model.requires_grad_(False)
        params = network.prepare_optimizer_params(lr / 2, lr, lr)
        trainable = [p for p in network.parameters() if p.requires_grad]
        named = dict(network.named_parameters())
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=3e-2, eps=1e-10)
        sch = get_scheduler("constant", optimizer=opt, num_warmup_steps=0, num_training_steps=3)
        ema = None
    else:
        model.requires_grad_(True)
        trainable = [p for p in model.parameters() if p.requires_grad]
        named = dict(model.named_parameters())
        opt = torch.optim.AdamW([{"params": trainable, "lr": lr}], lr=lr, betas=(0.9, 0.999), weight_decay=3e-2,
                                eps=1e-10)
        sch = get_scheduler("constant_with_warmup", optimizer=opt, num_warmup_steps=2, num_training_steps=3)
        ema = EMAModel(model.parameters())
    args = types.SimpleNamespace(train_mode="inpaint", vae_mini_batch=32, motion_sub_loss=False,
                                 max_grad_norm=0.05, initial_grad_norm_ratio=5, abnormal_norm_clip_start=1)
    t = {}
    meta = {"checkpoint": ckpt, "scaling_factor": sf, "latent": [f, h, w], "text_len": L, "batch": B,
            "add_noise_in_inpaint_model": True, "fragments": frag_lines, "lora": lora, "steps": [],
            "learning_rate": lr, "lr_scheduler": "constant" if lora else "constant_with_warmup", "lr_warmup_steps": 2,
            "adam_weight_decay": 3e-2, "adam_epsilon": 1e-10, "max_grad_norm": 0.05, "initial_grad_norm_ratio": 5,
            "abnormal_norm_clip_start": 1, "adaptive_clip": not lora, "use_ema": not lora}
    if lora:
        meta.update(rank=4, network_alpha=2, lora_names=[l.lora_name for l in network.unet_loras])
        for k, v in network.state_dict().items():
            t[f"lora_init.{k}"] = v.clone()
    # masks per step: (sample 0, sample 1) = partial (type 2, k=1) and full (type 1); t2v draws 0.95 then 0.05
    plans = [(0.95,), (0.05,), (0.5,)]
    for step in range(3):
        m0 = torch.zeros(Fr, 1, H, W)
        m0[1 + step % 2:] = 1
        m1 = torch.ones(Fr, 1, H, W)
        batch = make_batch(g, B, f, h, w, [m0, m1])
        moments = [torch.randn(B, 32, f, h, w, generator=g) * 0.5 for _ in range(2)]
        text = torch.randn(B, L, model.config.text_embed_dim, generator=g)
        prefix = f"step{step}"
        rec = run_step(frag, model, batch, args, step, moments, plans[step], scheduler, torch_rng, sf, text, prefix, t)
        want_grads = step == 0 or lora
        for k, p in named.items():
            if p.grad is not None and want_grads:
                t[f"{prefix}.grad.{k}"] = p.grad.clone()
        rec.update(run_clip(trainable, args, step, not lora, clip_src))
        rec["lr"] = [grp["lr"] for grp in opt.param_groups]
        opt.step()
        sch.step()
        opt.zero_grad()
        if ema is not None:
            ema.step(model.parameters())
            rec["ema_decay"] = float(ema.cur_decay_value)
        # optimiser state after steps 1 and 2 (full: step 0 runs at lr 0, so its params equal the checkpoint's), every
        # step for LoRA: a test restarts each step from the reference's state, so AdamW's ill-conditioned elements
        # (|g| near its noise) cannot accumulate
        if step in (1, 2) or lora:
            for k, p in named.items():
                t[f"{prefix}.param.{k}"] = p.detach().clone()
                st = opt.state.get(p)
                if st:
                    t[f"{prefix}.exp_avg.{k}"] = st["exp_avg"].clone()
                    t[f"{prefix}.exp_avg_sq.{k}"] = st["exp_avg_sq"].clone()
            if ema is not None and step == 2:
                for (k, _), s in zip(model.named_parameters(), ema.shadow_params):
                    t[f"{prefix}.ema.{k}"] = s.clone()
        meta["steps"].append(rec)
    tag = f"{'lora' if lora else 'full'}_{name}"
    if lora:
        # the saved LoRA (train_lora.py:1643-1651 → network.save_weights(path, weight_dtype, None)), fp32 and bf16
        for dt, suffix in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            if name == "5b" or suffix == "fp32":  # the 1.5 file is only merged (below), not kept
                network.save_weights(os.path.join(OUT, f"{tag}_saved_{suffix}.safetensors"), dt, None)
        # merge_lora of the trained LoRA into the base weights (what validation / predict do)
        base = load_tiny(ckpt)
        pipe = types.SimpleNamespace(transformer=base, text_encoder=None)
        with contextlib.redirect_stdout(io.StringIO()):
            merge_lora(pipe, os.path.join(OUT, f"{tag}_saved_fp32.safetensors"), 1.0, "cpu", torch.float32)
        if name != "5b":
            os.remove(os.path.join(OUT, f"{tag}_saved_fp32.safetensors"))
        for k, v in base.state_dict().items():
            if k.endswith(".weight") and v.dim() == 2:
                t[f"merged.{k}"] = v.clone()
    save(f"step_{tag}.safetensors", t, meta)


# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# F4 geometry: frame indices, bucket sizes, resize/crop, 4k+1 rule, length_to_frame_num
# --------------------------------------------------------------------------------------


def gen_geometry():
    BUCKET_PY = os.path.join(FUN, "cogvideox", "data", "bucket_sampler.py")
    src = read(BUCKET_PY)
    ns = {}
    for node in ast.parse(src).body:  # ASPECT_RATIO_512 = {...} and get_closest_ratio, from the file
        if isinstance(node, ast.Assign) and node.targets[0].id == "ASPECT_RATIO_512":
            ns["ASPECT_RATIO_512"] = ast.literal_eval(node.value)
    exec(cut_function(BUCKET_PY, "get_closest_ratio"), ns)
    out = {"frames": [], "buckets": [], "rule": [], "length_to_frame_num": []}
    # ds.py:261-271 frame indices with a stand-in reader (len) and logged random.randint
    fsrc, _ = cut_block(DATASET_PY, "min_sample_n_frames = min(", "batch_index = np.linspace(")
    for n, N, stride in [(100, 49, 3), (49, 49, 1), (30, 49, 3), (200, 13, 5), (7, 9, 2), (13, 13, 1)]:
        for seed in range(2):
            random.seed(seed)
            log = DrawLog()
            me = types.SimpleNamespace(video_sample_n_frames=N, video_length_drop_end=1.0, video_length_drop_start=0.0,
                                       video_sample_stride=stride)
            g = {"self": me, "video_reader": list(range(n)), "random": logging_random(log), "np": np, "int": int, "min": min}
            exec(fsrc, g)
            out["frames"].append({"n": n, "N": N, "stride": stride, "draws": log.log,
                                  "indices": [int(x) for x in g["batch_index"]]})
    # collate_fn geometry (train.py:1001-1003, 1079-1080, 1114-1119)
    gsrc, _ = cut_block(TRAIN_PY, "closest_size = list(map(lambda x: int(x), closest_size))",
                        "resize_size = int(h * closest_size[1] / w), closest_size[1]")
    for (h, w) in [(480, 720), (720, 1280), (1080, 1920), (512, 512), (600, 400), (37, 53), (100, 1000), (1000, 100)]:
        for S, r in [(256, 1), (512, 1), (1024, 1.25), (1024, 2)]:
            sizes = {k: [x / 512 * S / r for x in v] for k, v in ns["ASPECT_RATIO_512"].items()}
            closest_size, closest_ratio = ns["get_closest_ratio"](h, w, ratios=sizes)
            closest_size = [int(x / 16) * 16 for x in closest_size]
            g = {"closest_size": closest_size, "h": h, "w": w}
            exec(gsrc, g)
            th, tw = g["closest_size"]
            rh, rw = g["resize_size"]
            out["buckets"].append({"h": h, "w": w, "S": S, "r": r, "ratio": closest_ratio, "size": g["closest_size"],
                                   "resize": [rh, rw], "crop": [int(round((rh - th) / 2.0)), int(round((rw - tw) / 2.0))]})
    rsrc, _ = cut_block(TRAIN_PY, "local_latent_length = (batch_video_length - 1)", "batch_video_length = 1")
    for L in [1, 2, 4, 5, 9, 12, 13, 17, 20, 49, 50, 53, 85]:
        for pt in (None, 2):
            g = {"batch_video_length": L, "sample_n_frames_bucket_interval": 4, "patch_size_t": pt}
            exec(rsrc, g)
            out["rule"].append({"frames": L, "patch_size_t": pt, "out": g["batch_video_length"]})
    lsrc, _ = cut_block(TRAIN_PY, "def get_length_to_frame_num(token_length):", "return length_to_frame_num")
    for Sv, Si, N, tok in [(256, 1024, 49, 512), (512, 512, 49, 512), (256, 1024, 85, 512), (384, 640, 13, 256)]:
        args = types.SimpleNamespace(image_sample_size=Si, video_sample_size=Sv, video_sample_n_frames=N)
        g = {"args": args, "sample_n_frames_bucket_interval": 4}
        exec(lsrc, g)
        table = g["get_length_to_frame_num"](N * tok * tok)
        out["length_to_frame_num"].append({"Sv": Sv, "Si": Si, "N": N, "tok": tok, "table": [[k, v] for k, v in table.items()]})
    with open(os.path.join(OUT, "geometry.json"), "w") as f:
        json.dump(out, f)
    print("geometry.json written")


def save(name, tensors, meta):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, {"meta": json.dumps(meta)})
    MANIFEST["files"][name] = {"bytes": os.path.getsize(path), "tensors": len(tensors)}
    print(f"{name}: {len(tensors)} tensors, {os.path.getsize(path) / 1024:.0f} KiB")


def main():
    gen_schedule()
    gen_masks()
    gen_resize_and_refnoise()
    gen_optim()
    gen_geometry()
    gen_step("2b")
    gen_step("5b", lora=True)
    gen_step("1.5", lora=True)
    MANIFEST["versions"] = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                            "diffusers": diffusers.__version__}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(MANIFEST, f, indent=1)


if __name__ == "__main__":
    main()
