#!/usr/bin/env python3
"""PyTorch CPU fp32 time of one demo-VAE training step (the reference for scripts/demo/train-vae.ts's step time):
encode -> posterior sample -> decode, loss = mean |x - x_hat| + kl_weight * mean KL, backward, AdamW step.
CogVideoX-Fun's AutoencoderKLCogVideoX with the folder's vae/config.json and random weights; random input in [-1, 1].
Prints one JSON line per shape: {"shape": [B, 3, F, H, W], "s_per_step": [...], "threads": n, "loadavg": "..."}.
  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 scripts/demo/vae_step_torch.py VAE_DIR B,F,H,W [B,F,H,W ...] [--steps 3]
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "reference"))
import shim  # noqa: E402,F401
import safetensors.torch  # noqa: E402,F401  (diffusers reads safetensors.torch without importing it)
import torch  # noqa: E402
from cogvideox.models.autoencoder_magvit import AutoencoderKLCogVideoX  # noqa: E402


def main():
    args = sys.argv[1:]
    steps = 3
    if "--steps" in args:
        i = args.index("--steps")
        steps = int(args[i + 1])
        del args[i:i + 2]
    vae_dir, shapes = args[0], [tuple(int(v) for v in s.split(",")) for s in args[1:]]
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX.from_pretrained(vae_dir).float().train()
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4, weight_decay=1e-2)
    for b, f, h, w in shapes:
        x = torch.rand(b, 3, f, h, w) * 2 - 1
        times = []
        for _ in range(steps + 1):  # the first step warms up
            t0 = time.perf_counter()
            post = vae.encode(x).latent_dist
            z = post.sample()
            x_hat = vae.decode(z).sample
            rec = (x_hat - x).abs().mean()
            kl = 0.5 * (post.mean ** 2 + post.var - 1.0 - post.logvar).mean()
            loss = rec + 1e-3 * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"shape": [b, 3, f, h, w], "s_per_step": [round(t, 3) for t in times[1:]],
                          "threads": torch.get_num_threads(), "loadavg": open("/proc/loadavg").read().strip()}))


if __name__ == "__main__":
    main()
