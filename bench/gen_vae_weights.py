"""Writes a CogVideoX VAE checkpoint with RANDOM weights in the real config, names, shapes and dtype (bf16, like the
released vae/diffusion_pytorch_model.safetensors, 431 MB), for benchmarks. Never committed (bench/.weights/ is
git-ignored). Conv weights keep diffusers' default init (seeded); GroupNorm affines and biases are perturbed.

  PYTHONPATH=/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src python3 bench/gen_vae_weights.py OUT_DIR
Prints one JSON line (the folder and its size)."""
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import shim  # noqa: E402,F401

import torch  # noqa: E402
import diffusers  # noqa: E402
from diffusers import AutoencoderKLCogVideoX  # noqa: E402

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".weights", "vae-2b", "vae")
torch.manual_seed(0)
# spec §1.2: the VAE config shared by every CogVideoX(-Fun) model (2b scaling factor)
model = AutoencoderKLCogVideoX(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 256, 512), layers_per_block=3,
    norm_num_groups=32, norm_eps=1e-6, act_fn="silu", temporal_compression_ratio=4, sample_height=480,
    sample_width=720, scaling_factor=1.15258426, force_upcast=True, use_quant_conv=False, use_post_quant_conv=False,
).eval()
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    for name, p in model.named_parameters():
        z = torch.randn(p.shape, generator=g)
        if p.ndim == 1 and "norm" in name and name.endswith(".weight"):
            p.copy_(1.0 + 0.1 * z)
        elif name.endswith(".bias"):
            p.add_(0.02 * z)
model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
print(json.dumps({"dir": out, "bytes": size, "params": sum(p.numel() for p in model.parameters())}))
