#!/usr/bin/env python3
"""PyTorch CPU fp32 time of one training step of the demo transformer (CogVideoX-Fun's CogVideoXTransformer3DModel
from TRANSFORMER_DIR/config.json, random weights): forward on [B, T, 16, h, w] noisy latents (the config's sample sizes) + 17-channel inpaint
latents + [B, L, text_embed_dim] text, v-prediction MSE against a random target, backward, AdamW step. Sizes the
demo model for CPU training (it does not check numbers).
  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 scripts/demo/dit_step_torch.py TRANSFORMER_DIR B,L [B,L ...] [--steps 3]
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
from cogvideox.models.transformer3d import CogVideoXTransformer3DModel  # noqa: E402


def main():
    args = sys.argv[1:]
    steps = 3
    if "--steps" in args:
        i = args.index("--steps")
        steps = int(args[i + 1])
        del args[i:i + 2]
    model = CogVideoXTransformer3DModel.from_pretrained(args[0]).float().train()
    cfg = model.config
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2)
    T = (cfg.sample_frames - 1) // cfg.temporal_compression_ratio + 1
    h, w = cfg.sample_height, cfg.sample_width
    C = cfg.out_channels
    for spec in args[1:]:
        B, L = (int(v) for v in spec.split(","))
        x = torch.randn(B, T, C, h, w)
        inpaint = torch.randn(B, T, cfg.in_channels - C, h, w)
        text = torch.randn(B, L, cfg.text_embed_dim)
        target = torch.randn(B, T, C, h, w)
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            t = torch.randint(0, 1000, (B,))
            out = model(hidden_states=x, encoder_hidden_states=text, timestep=t, inpaint_latents=inpaint, return_dict=False)[0]
            loss = torch.nn.functional.mse_loss(out.float(), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        n = sum(p.numel() for p in model.parameters())
        print(json.dumps({"batch": B, "text_len": L, "video_tokens": T * (h // cfg.patch_size) * (w // cfg.patch_size), "params": n,
                          "s_per_step": [round(v, 3) for v in times[1:]], "threads": torch.get_num_threads(),
                          "loadavg": open("/proc/loadavg").read().strip()}))


if __name__ == "__main__":
    main()
