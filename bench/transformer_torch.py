"""PyTorch side of bench/transformer.ts: one CogVideoXBlock (diffusers v0.32.2) in fp32 with block 0 of a checkpoint,
CFG batch 2, on T×lh×lw latents (+226 text tokens), RoPE tables from the pipeline helper for RoPE models.
Prints one JSON line. Usage: transformer_torch.py TRANSFORMER_DIR T LATENT_H LATENT_W [warmup [REPEATS]]
(with warmup: the best of REPEATS timed runs, default 1)."""
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import shim  # noqa: F401,E402  (diffusers imports transformers; see reference/shim.py)
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

path, T, lh, lw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
warmup = len(sys.argv) > 5 and sys.argv[5] == "warmup"
repeats = int(sys.argv[6]) if warmup and len(sys.argv) > 6 else 1
cfg = json.load(open(os.path.join(path, "config.json")))
H, hd = cfg["num_attention_heads"], cfg["attention_head_dim"]
D = H * hd
block = CogVideoXBlock(dim=D, num_attention_heads=H, attention_head_dim=hd, time_embed_dim=cfg["time_embed_dim"],
                       dropout=0.0, activation_fn=cfg["activation_fn"], attention_bias=cfg["attention_bias"],
                       norm_elementwise_affine=cfg["norm_elementwise_affine"], norm_eps=cfg["norm_eps"]).eval()
prefix = "transformer_blocks.0."
with safe_open(os.path.join(path, "diffusion_pytorch_model.safetensors"), "pt") as f:
    sd = {k[len(prefix):]: f.get_tensor(k).float() for k in f.keys() if k.startswith(prefix)}
block.load_state_dict(sd)
torch.manual_seed(0)
N = T * (lh // 2) * (lw // 2)
hidden, enc, temb = torch.randn(2, N, D), torch.randn(2, 226, D), torch.randn(2, cfg["time_embed_dim"])
rope = None
if cfg["use_rotary_positional_embeddings"]:
    gh, gw = lh // 2, lw // 2
    crops = get_resize_crop_region_for_grid((gh, gw), cfg["sample_width"] // 2, cfg["sample_height"] // 2)
    rope = get_3d_rotary_pos_embed(embed_dim=hd, crops_coords=crops, grid_size=(gh, gw), temporal_size=T)
with torch.inference_mode():
    if warmup:
        block(hidden, enc, temb, image_rotary_emb=rope)
    dt = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.time(), time.process_time()  # process_time: CPU time of all threads
        block(hidden, enc, temb, image_rotary_emb=rope)
        dt, cpu = min(dt, time.time() - t0), min(cpu, time.process_time() - c0)
print(json.dumps({"block_s": dt, "block_cpu_s": cpu, "repeats": repeats, "tokens": N + 226, "threads": torch.get_num_threads(),
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
