"""Random CogVideoX-Fun transformer checkpoints in the real shapes (bf16, diffusers layout) for benchmarks:
Fun-2b-InP (D=1920, 30 layers, sincos PE) and Fun-5b-InP (D=3072, 42 layers, RoPE). Never committed.
Usage: python3 bench/gen_transformer_weights.py OUT_ROOT [2b|5b ...]"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

root = sys.argv[1]
which = sys.argv[2:] or ["2b", "5b"]
g = torch.Generator().manual_seed(0)
BASE = {
    "_class_name": "CogVideoXTransformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
    "attention_head_dim": 64, "dropout": 0.0, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 33,
    "max_text_seq_length": 226, "norm_elementwise_affine": True, "norm_eps": 1e-05, "out_channels": 16,
    "patch_size": 2, "sample_frames": 49, "sample_height": 60, "sample_width": 90, "spatial_interpolation_scale": 1.875,
    "temporal_compression_ratio": 4, "temporal_interpolation_scale": 1.0, "text_embed_dim": 4096, "time_embed_dim": 512,
    "timestep_activation_fn": "silu", "use_learned_positional_embeddings": False, "add_noise_in_inpaint_model": False,
}
VARIANTS = {
    "2b": dict(num_attention_heads=30, num_layers=30, use_rotary_positional_embeddings=False),
    "5b": dict(num_attention_heads=48, num_layers=42, use_rotary_positional_embeddings=True),
}


def rnd(shape, std=0.02):
    return (torch.randn(shape, generator=g) * std).to(torch.bfloat16)


for name in which:
    cfg = {**BASE, **VARIANTS[name]}
    D, L = cfg["num_attention_heads"] * 64, cfg["num_layers"]
    t = {
        "patch_embed.proj.weight": rnd((D, 33, 2, 2)), "patch_embed.proj.bias": rnd((D,)),
        "patch_embed.text_proj.weight": rnd((D, 4096)), "patch_embed.text_proj.bias": rnd((D,)),
        "time_embedding.linear_1.weight": rnd((512, D)), "time_embedding.linear_1.bias": rnd((512,)),
        "time_embedding.linear_2.weight": rnd((512, 512)), "time_embedding.linear_2.bias": rnd((512,)),
        "norm_final.weight": 1 + rnd((D,)), "norm_final.bias": rnd((D,)),
        "norm_out.linear.weight": rnd((2 * D, 512)), "norm_out.linear.bias": rnd((2 * D,)),
        "norm_out.norm.weight": 1 + rnd((D,)), "norm_out.norm.bias": rnd((D,)),
        "proj_out.weight": rnd((64, D)), "proj_out.bias": rnd((64,)),
    }
    for i in range(L):
        p = f"transformer_blocks.{i}"
        for n in ("norm1", "norm2"):
            t[f"{p}.{n}.linear.weight"] = rnd((6 * D, 512))
            t[f"{p}.{n}.linear.bias"] = rnd((6 * D,))
            t[f"{p}.{n}.norm.weight"] = 1 + rnd((D,))
            t[f"{p}.{n}.norm.bias"] = rnd((D,))
        for n in ("to_q", "to_k", "to_v", "to_out.0"):
            t[f"{p}.attn1.{n}.weight"] = rnd((D, D))
            t[f"{p}.attn1.{n}.bias"] = rnd((D,))
        for n in ("norm_q", "norm_k"):
            t[f"{p}.attn1.{n}.weight"] = 1 + rnd((64,))
            t[f"{p}.attn1.{n}.bias"] = rnd((64,))
        t[f"{p}.ff.net.0.proj.weight"] = rnd((4 * D, D))
        t[f"{p}.ff.net.0.proj.bias"] = rnd((4 * D,))
        t[f"{p}.ff.net.2.weight"] = rnd((D, 4 * D))
        t[f"{p}.ff.net.2.bias"] = rnd((D,))
    out = os.path.join(root, f"fun-{name}", "transformer")
    os.makedirs(out, exist_ok=True)
    save_file(t, os.path.join(out, "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print("wrote", out, sum(v.numel() for v in t.values()) * 2 / 1e9, "GB", flush=True)
    del t
print(json.dumps({"done": which}))
