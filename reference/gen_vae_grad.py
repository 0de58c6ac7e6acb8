#!/usr/bin/env python3
"""Gradient fixtures for the 3D causal VAE: PyTorch autograd through the ORIGINAL code, fp32 on CPU.

  - CogVideoX-Fun 6c39567 `cogvideox/models/autoencoder_magvit.py` (`AutoencoderKLCogVideoX`): encode (chunks of 8
    frames, the first taking the remainder) and decode with Fun's chunking (latent frame 0 alone with the Upsample3D
    first-frame flag, then pairs); the conv caches carried from chunk to chunk are not detached, so gradients flow
    through them.
  - diffusers v0.32.2 `models/autoencoders/autoencoder_kl_cogvideox.py`: decode with diffusers' chunking (odd T: one
    call (0,1,2) in which SpatialNorm3D and Upsample3D split off frame 0).

For each: loss = sum(output * R) with a fixed random R; the gradient of every parameter and of the input is stored.
Autograd runs in float64 (the fp32 checkpoint values, exactly), so the stored gradients are the exact gradients of
the fp32 model rounded once: a float32 computation is then compared with the truth, not with another float32
rounding (a bias gradient sums thousands of terms of both signs). The checkpoint is a smaller config than
reference/gen_vae.py's (so every gradient fits in a small file) and is stored in fp32. Deterministic (seeded, one
thread). Documented in reference/vae_fixtures.md.

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 reference/gen_vae_grad.py
"""

import json
import os
import shutil
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (must precede transformers, which diffusers may import)

import torch  # noqa: E402
import diffusers  # noqa: E402
from diffusers import AutoencoderKLCogVideoX as DiffusersVAE  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from cogvideox.models.autoencoder_magvit import AutoencoderKLCogVideoX as FunVAE  # noqa: E402

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()

REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "test", "fixtures", "vae", "grad")
VAE_DIR = os.path.join(OUT, "vae")

SEED = 20250301
CONFIG = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(4, 8, 8, 8),
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=2,
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
FRAMES, H, W = 17, 16, 16  # encode: chunks of 9 and 8 frames
T_FUN, T_DIF = 3, 3  # decode: Fun calls (0), (1,2); diffusers one call (0,1,2) with the odd first-frame split


def build_checkpoint():
    torch.manual_seed(SEED)
    model = FunVAE(**CONFIG).eval()
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            z = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim == 1 and "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.25 * z)
            elif p.ndim == 1 and "norm" in name and name.endswith(".bias"):
                p.copy_(0.2 * z)
            elif name.endswith(".bias"):
                p.add_(0.05 * z)
    if os.path.isdir(VAE_DIR):
        shutil.rmtree(VAE_DIR)
    model.save_pretrained(VAE_DIR, safe_serialization=True)


def load(cls):
    m = cls.from_pretrained(VAE_DIR, torch_dtype=torch.float32).eval().double()
    m.requires_grad_(True)
    return m


def grads(model, prefix):
    out = {}
    for name, p in model.named_parameters():
        if name.startswith(prefix):
            assert p.grad is not None, name
            out[f"grad.{name}"] = p.grad.detach().clone()
    return out


def run(model, prefix, inp, forward, seed):
    model.zero_grad(set_to_none=True)
    x = inp.clone().double().requires_grad_(True)
    out = forward(x)
    R = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).double()
    loss = (out * R).sum()
    loss.backward()
    t = {"input": inp, "output": out.detach(), "R": R, "loss": loss.detach().reshape(1), "grad.input": x.grad.detach()}
    t.update(grads(model, prefix))
    # parameters that take no part (none expected): their gradient would be None, asserted above
    return t


def save(name, tensors):
    tensors = {k: v.detach().contiguous().to(torch.float32) for k, v in tensors.items()}
    path = os.path.join(OUT, name)
    save_file(tensors, path)
    print(f"{name:28s} {os.path.getsize(path) / 1024:8.1f} KiB  {len(tensors)} tensors  loss {tensors['loss'].item():+.6f}")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}  diffusers {diffusers.__version__}")
    os.makedirs(OUT, exist_ok=True)
    build_checkpoint()
    fun, dif = load(FunVAE), load(DiffusersVAE)
    assert fun.auto_split_process is False
    n = sum(p.numel() for p in fun.parameters())
    print(f"checkpoint: {n} parameters (fp32)")

    g = torch.Generator().manual_seed(SEED + 2)
    x = (torch.rand((1, 3, FRAMES, H, W), generator=g) * 2 - 1).contiguous()
    enc = run(fun, "encoder.", x, lambda v: fun.encode(v).latent_dist.parameters, SEED + 3)
    # the posterior's KL term (diffusers DiagonalGaussianDistribution.kl(): sums over dims 1, 2, 3 only)
    with torch.no_grad():
        post = fun.encode(x.double()).latent_dist
        enc["kl"] = post.kl()
    save("encode.safetensors", enc)

    z = torch.randn((1, CONFIG["latent_channels"], T_FUN, H // 8, W // 8), generator=g)
    save("decode_fun.safetensors", run(fun, "decoder.", z, lambda v: fun.decode(v).sample, SEED + 4))
    z2 = torch.randn((1, CONFIG["latent_channels"], T_DIF, H // 8, W // 8), generator=g)
    save("decode_diffusers.safetensors", run(dif, "decoder.", z2, lambda v: dif.decode(v).sample, SEED + 5))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT) if f.endswith(".safetensors"))
    ck = sum(os.path.getsize(os.path.join(VAE_DIR, f)) for f in os.listdir(VAE_DIR))
    print(f"fixtures {total / 2**20:.2f} MiB, checkpoint {ck / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
