#!/usr/bin/env python3
"""Reference-fixture generator for the 3D causal VAE (AutoencoderKLCogVideoX).

Every expected value is computed by the ORIGINAL code, in fp32 on CPU:
  - CogVideoX-Fun 6c39567 `cogvideox/models/autoencoder_magvit.py` (Fun's own Upsample3D with the first-frame flag,
    Fun's decode chunking: latent frame 0 alone, then pairs), and
  - diffusers v0.32.2 `models/autoencoders/autoencoder_kl_cogvideox.py` (diffusers' decode chunking (0,1,2),(3,4),…).
Both load the same tiny checkpoint. Encoding is the same code in both (Fun's `_encode`/`tiled_encode` are diffusers').

Outputs (paths relative to the repository root), documented key by key in reference/vae_fixtures.md:
  test/fixtures/tiny-vae/vae/                       config.json + diffusion_pytorch_model.safetensors (bf16)
  test/fixtures/tiny-cogvideox-fun/vae/             the same two files (byte-identical)
  test/fixtures/tiny-cogvideox-fun/model_index.json (merged: only the "vae" key is written)
  test/fixtures/vae/*.safetensors, cases.json       inputs and reference outputs

Deterministic (fixed seeds, one thread): running it twice gives byte-identical files.

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 reference/gen_vae.py
"""

import json
import os
import shutil
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (must precede transformers, which diffusers may import)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import diffusers  # noqa: E402
from diffusers import AutoencoderKLCogVideoX as DiffusersVAE  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from cogvideox.models.autoencoder_magvit import AutoencoderKLCogVideoX as FunVAE  # noqa: E402

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()

REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(REPO, "test", "fixtures")
VAE_DIR = os.path.join(FIXTURES, "tiny-vae", "vae")
PIPE_DIR = os.path.join(FIXTURES, "tiny-cogvideox-fun")
OUT = os.path.join(FIXTURES, "vae")

SEED = 20241216
CONFIG = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(8, 16, 16, 32),  # real: (128, 256, 256, 512); kept small so the fixtures stay small
    latent_channels=16,  # as real
    layers_per_block=3,  # as real
    norm_num_groups=4,  # real 32: 2, 4, 4, 8 channels per group here (real: 4, 8, 8, 16)
    norm_eps=1e-6,
    act_fn="silu",
    temporal_compression_ratio=4,
    sample_height=480,
    sample_width=720,
    scaling_factor=1.15258426,
    force_upcast=True,
    use_quant_conv=False,
    use_post_quant_conv=False,
)

# (H, W) pixel sizes: S1 latent 2x2, S2 latent 3x2 (odd height, non-square)
SIZES = {"s1": (16, 16), "s2": (24, 16)}
# pixel frame counts for encode; latent counts (F-1)/4+1 for decode. 13 = one first chunk of 13 (not 9).
FRAMES = (1, 9, 17, 13)


# --------------------------------------------------------------------------------------------------------------------
# checkpoint


def build_checkpoint():
    torch.manual_seed(SEED)
    model = FunVAE(**CONFIG).eval()
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            z = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim == 1 and ("norm" in name) and name.endswith(".weight"):
                p.copy_(1.0 + 0.25 * z)  # GroupNorm gamma
            elif p.ndim == 1 and ("norm" in name) and name.endswith(".bias"):
                p.copy_(0.2 * z)  # GroupNorm beta
            elif name.endswith(".bias"):
                p.add_(0.05 * z)  # conv biases: default init, perturbed
            # conv weights keep torch's default (seeded) init
        # what the checkpoint will hold: bf16 values (the fp32 model computes with exactly these)
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    for d in (VAE_DIR, os.path.join(PIPE_DIR, "vae")):
        if os.path.isdir(d):
            shutil.rmtree(d)
    model.to(torch.bfloat16).save_pretrained(VAE_DIR, safe_serialization=True)
    shutil.copytree(VAE_DIR, os.path.join(PIPE_DIR, "vae"))
    merge_model_index()


def merge_model_index():
    path = os.path.join(PIPE_DIR, "model_index.json")
    idx = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            idx = json.load(f)
    idx.setdefault("_class_name", "CogVideoXFunInpaintPipeline")
    idx.setdefault("_diffusers_version", "0.32.2")
    idx["vae"] = ["diffusers", "AutoencoderKLCogVideoX"]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(idx, f, indent=2, sort_keys=True)
        f.write("\n")


def load(cls):
    m = cls.from_pretrained(VAE_DIR, torch_dtype=torch.float32).eval()
    for p in m.parameters():
        assert p.dtype == torch.float32
    return m


# --------------------------------------------------------------------------------------------------------------------
# hooks


class Recorder:
    """Forward hooks that collect each call's output of the named submodules, in call order."""

    def __init__(self, root, names):
        self.calls = {n: [] for n in names}
        self.handles = []
        for n in names:
            mod = root.get_submodule(n)
            self.handles.append(mod.register_forward_hook(self._hook(n)))

    def _hook(self, name):
        def fn(_m, _inp, out):
            o = out[0] if isinstance(out, tuple) else out
            self.calls[name].append(o.detach().clone())

        return fn

    def remove(self):
        for h in self.handles:
            h.remove()


ENC_POINTS = ["conv_in", "down_blocks.0", "down_blocks.1", "down_blocks.2", "down_blocks.3", "mid_block", "conv_out"]  # conv_out = moments per chunk
DEC_POINTS = ["conv_in", "mid_block", "up_blocks.0", "up_blocks.1", "up_blocks.2", "up_blocks.3"]  # conv_out = the output
# diffusers' per-call points: the low-resolution ones (its odd first call splits SpatialNorm and Upsample there)
DEC_POINTS_DIFFUSERS = ["conv_in", "mid_block", "up_blocks.0", "up_blocks.1"]


def record(module, points, fn):
    rec = Recorder(module, points)
    try:
        out = fn()
    finally:
        rec.remove()
    return out, rec.calls


# --------------------------------------------------------------------------------------------------------------------
# inputs


def video(F_, H, W, seed, batch=1):
    """A smooth moving pattern plus noise, in [-1, 1] (like a normalised video)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(F_, dtype=torch.float32)[:, None, None]
    y = torch.arange(H, dtype=torch.float32)[None, :, None]
    x = torch.arange(W, dtype=torch.float32)[None, None, :]
    chans = []
    for c in range(3):
        base = torch.sin(0.37 * x + 0.21 * y * (c + 1) + 0.5 * t) * torch.cos(0.11 * y - 0.3 * t + c)
        chans.append(base)
    v = torch.stack(chans)[None].repeat(batch, 1, 1, 1, 1)
    v = 0.8 * v + 0.25 * torch.randn(v.shape, generator=g)
    return v.clamp(-1, 1).contiguous()


def latents(T, h, w, seed, batch=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, 16, T, h, w), generator=g).contiguous()


def stats(t):
    return f"{tuple(t.shape)} mean={t.mean().item():+.4f} std={t.std().item():.4f} maxabs={t.abs().max().item():.3f}"


def save(name, tensors):
    tensors = {k: v.detach().contiguous().to(torch.float32) for k, v in tensors.items()}
    path = os.path.join(OUT, name)
    save_file(tensors, path)
    size = os.path.getsize(path)
    print(f"{name:44s} {size / 1024:8.1f} KiB  " + ", ".join(sorted(tensors)[:6]) + (" …" if len(tensors) > 6 else ""))
    return size


# --------------------------------------------------------------------------------------------------------------------
# cases


@torch.no_grad()
def encode_cases(fun, cases):
    for si, (sname, (H, W)) in enumerate(SIZES.items()):
        for F_ in FRAMES:
            x = video(F_, H, W, seed=1000 + 10 * si + F_)
            detailed = sname == "s1" and F_ == 17
            t = {"x": x}
            if detailed:
                post, calls = record(fun.encoder, ENC_POINTS, lambda: fun.encode(x).latent_dist)
                for p, outs in calls.items():
                    for c, o in enumerate(outs):
                        t[f"chunk{c}.{p}"] = o
                chunks = len(calls["conv_in"])
            else:
                post = fun.encode(x).latent_dist
                chunks = None
            g = torch.Generator().manual_seed(2000 + F_)
            noise = torch.randn(post.mean.shape, generator=g)
            sample = post.sample(generator=torch.Generator().manual_seed(2000 + F_))
            assert torch.equal(sample, post.mean + post.std * noise)
            t.update(moments=post.parameters, noise=noise, sample=sample)
            name = f"encode_{F_}f_{H}x{W}.safetensors"
            cases.append({"kind": "encode", "file": name, "frames": F_, "height": H, "width": W, "detailed": detailed,
                          "chunks": chunks})
            print(f"  moments {stats(post.parameters)}")
            save(name, t)


@torch.no_grad()
def decode_cases(fun, dif, cases):
    for si, (sname, (H, W)) in enumerate(SIZES.items()):
        h, w = H // 8, W // 8
        for F_ in FRAMES:
            T = (F_ - 1) // 4 + 1
            z = latents(T, h, w, seed=3000 + 10 * si + T)
            # per-call points: Fun at T=4 (calls: frame 0, pair (1,2), trailing single 3), diffusers at T=5 (calls (0,1,2)
            # with its odd first-frame split, then (3,4))
            detailed = {"fun": sname == "s1" and T == 4, "diffusers": sname == "s1" and T == 5}
            t = {"z": z}
            for which, model in (("fun", fun), ("diffusers", dif)):
                if detailed[which]:
                    points = DEC_POINTS if which == "fun" else DEC_POINTS_DIFFUSERS
                    out, calls = record(model.decoder, points, lambda: model.decode(z).sample)
                    for p, outs in calls.items():
                        for c, o in enumerate(outs):
                            t[f"{which}.call{c}.{p}"] = o
                else:
                    out = model.decode(z).sample
                t[which] = out
                print(f"  {which} {stats(out)}")
            name = f"decode_{T}t_{H}x{W}.safetensors"
            cases.append({"kind": "decode", "file": name, "latent_frames": T, "height": H, "width": W,
                          "fun_frames": t["fun"].shape[2], "diffusers_frames": t["diffusers"].shape[2],
                          "detailed": [k for k, v in detailed.items() if v]})
            save(name, t)


@torch.no_grad()
def tiled_cases(fun, dif, cases):
    # decode: latent 7x5 (56x40 px), tiles of 48x40 px = 6x5 latent, default overlap factors 1/6, 1/5. These sizes keep
    # diffusers' tile stride (8*int(6*5/6) = 40, 8*int(5*4/5) = 32 px) equal to its crop (48-int(48/6) = 40, 40-int(40/5)
    # = 32 px), as the defaults do at 480x720; other tiny sizes make its output larger than 8x the latent (a quirk).
    tile = dict(tile_sample_min_height=48, tile_sample_min_width=40)
    T, H, W = 2, 56, 40
    z = latents(T, H // 8, W // 8, seed=4000)
    t = {"z": z}
    for which, model in (("fun", fun), ("diffusers", dif)):
        model.enable_tiling(**tile)
        t[which] = model.decode(z).sample
        model.disable_tiling()
        untiled = model.decode(z).sample
        assert t[which].shape == untiled.shape
        assert not torch.allclose(t[which], untiled, atol=1e-3), "tiling must change the numbers"
        print(f"  tiled {which} {stats(t[which])}  max |tiled - untiled| {(t[which] - untiled).abs().max().item():.3f}")
    name = f"decode_tiled_{T}t_{H}x{W}.safetensors"
    cases.append({"kind": "decode_tiled", "file": name, "latent_frames": T, "height": H, "width": W,
                  "tile_sample_min_height": 48, "tile_sample_min_width": 40,
                  "tile_overlap_factor_height": 1 / 6, "tile_overlap_factor_width": 1 / 5})
    save(name, t)

    # encode: 5 frames at 40x48 px, tiles of 32x32 px with overlap factors 1/4 (so latent blending happens)
    F_, H, W = 5, 40, 48
    x = video(F_, H, W, seed=4100)
    fun.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32, tile_overlap_factor_height=0.25,
                      tile_overlap_factor_width=0.25)
    tiled = fun.encode(x).latent_dist.parameters
    fun.disable_tiling()
    # reset the overlap factors to the defaults for anything that runs later
    fun.tile_overlap_factor_height, fun.tile_overlap_factor_width = 1 / 6, 1 / 5
    untiled = fun.encode(x).latent_dist.parameters
    assert not torch.allclose(tiled, untiled, atol=1e-3)
    name = f"encode_tiled_{F_}f_{H}x{W}.safetensors"
    cases.append({"kind": "encode_tiled", "file": name, "frames": F_, "height": H, "width": W,
                  "tile_sample_min_height": 32, "tile_sample_min_width": 32,
                  "tile_overlap_factor_height": 0.25, "tile_overlap_factor_width": 0.25})
    print(f"  tiled moments {stats(tiled)}")
    save(name, {"x": x, "moments": tiled, "moments_untiled": untiled})


@torch.no_grad()
def batch_cases(fun, cases):
    # batch of 2 (slicing on and off give the same numbers)
    x = video(9, 16, 16, seed=5000, batch=2)
    x[1] = x[1].flip(-1)
    moments = fun.encode(x).latent_dist.parameters
    z = latents(2, 2, 2, seed=5001, batch=2)
    dec = fun.decode(z).sample
    fun.enable_slicing()
    assert torch.allclose(fun.decode(z).sample, dec, atol=1e-5)
    assert torch.allclose(fun.encode(x).latent_dist.parameters, moments, atol=1e-5)
    fun.disable_slicing()
    name = "batch2.safetensors"
    cases.append({"kind": "batch", "file": name})
    save(name, {"x": x, "moments": moments, "z": z, "fun": dec})


@torch.no_grad()
def resize_cases(cases):
    """F.interpolate references for src/nn/resize.ts (nearest: floor(dst*in/out) in fp32; trilinear align_corners=False)."""
    g = torch.Generator().manual_seed(6000)
    t = {}
    x = torch.randn((1, 1, 5, 7, 6), generator=g)
    t["x"] = x
    sizes = {"up": (9, 13, 11), "down": (3, 4, 5), "mixed": (7, 3, 12), "same": (5, 7, 6)}
    for k, s in sizes.items():
        t[f"nearest.{k}"] = F.interpolate(x, size=s, mode="nearest")
        t[f"trilinear.{k}"] = F.interpolate(x, size=s, mode="trilinear", align_corners=False)
    t["nearest.x2"] = F.interpolate(x, scale_factor=2.0, mode="nearest")
    t["trilinear.x2"] = F.interpolate(x, scale_factor=2.0, mode="trilinear", align_corners=False)
    x2 = x[:, :, 0]
    t["nearest2d.x2"] = F.interpolate(x2, scale_factor=2.0, mode="nearest")
    t["nearest2d.up"] = F.interpolate(x2, size=(10, 15), mode="nearest")
    name = "resize.safetensors"
    cases.append({"kind": "resize", "file": name, "sizes": sizes})
    save(name, t)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}  diffusers {diffusers.__version__}  numpy {np.__version__}")
    build_checkpoint()
    fun, dif = load(FunVAE), load(DiffusersVAE)
    sd0, sd1 = fun.state_dict(), dif.state_dict()
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    assert fun.auto_split_process is False  # Fun's default: frame 0 alone, then pairs

    # this generator's files only: OUT/grad/ belongs to reference/gen_vae_grad.py
    os.makedirs(OUT, exist_ok=True)
    for n in os.listdir(OUT):
        if n.endswith(".safetensors") or n == "cases.json":
            os.remove(os.path.join(OUT, n))
    cases = []
    encode_cases(fun, cases)
    decode_cases(fun, dif, cases)
    tiled_cases(fun, dif, cases)
    batch_cases(fun, cases)
    resize_cases(cases)
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write("[\n" + ",\n".join("  " + json.dumps(c) for c in cases) + "\n]\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT) if os.path.isfile(os.path.join(OUT, n)))
    ck = sum(os.path.getsize(os.path.join(VAE_DIR, n)) for n in os.listdir(VAE_DIR))
    print(f"fixtures {total / 2**20:.2f} MiB, checkpoint {ck / 2**20:.2f} MiB (x2 copies)")


if __name__ == "__main__":
    main()
