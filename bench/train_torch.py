"""PyTorch side of bench/train.ts: one training step of CogVideoX-Fun's transformer in fp32 on CPU, as scripts/train.py
(full) / train_lora.py (--lora RANK ALPHA: create_network + apply_to, train_lora.py:811-821) run it: forward with
inpaint latents, MSE on the v target, backward, clip_grad_norm_, AdamW step; timed after one warm-up step (unless
--no-warmup). --gradient-checkpointing: transformer3d.enable_gradient_checkpointing() as train.py:910-911 does.
Reports the RSS after loading and the peak (ru_maxrss). Also writes the D = 1920 two-layer stack's random weights
(seeded) for the TS side. Prints one JSON line.
Usage: train_torch.py MODEL_DIR F H W [REPEATS] [--gradient-checkpointing] [--lora RANK ALPHA] [--no-warmup]
                       [--batch B] [--text-len L]   (1 and 226 by default)
       train_torch.py --make-d1920 DIR"""
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import shim  # noqa: F401,E402
import contextlib  # noqa: E402
import io  # noqa: E402
import torch  # noqa: E402
import safetensors.torch  # noqa: E402,F401  (save_pretrained uses safetensors.torch without importing it)
from cogvideox.models.transformer3d import CogVideoXTransformer3DModel  # noqa: E402
from cogvideox.utils.lora_utils import create_network  # noqa: E402

D1920 = dict(activation_fn="gelu-approximate", attention_bias=True, attention_head_dim=64, dropout=0.0,
             flip_sin_to_cos=True, freq_shift=0, in_channels=33, max_text_seq_length=226, norm_elementwise_affine=True,
             norm_eps=1e-5, num_attention_heads=30, num_layers=2, out_channels=16, patch_size=2, sample_frames=49,
             sample_height=60, sample_width=90, spatial_interpolation_scale=1.875, temporal_compression_ratio=4,
             temporal_interpolation_scale=1.0, text_embed_dim=4096, time_embed_dim=512, timestep_activation_fn="silu",
             use_rotary_positional_embeddings=False, use_learned_positional_embeddings=False)

if "--make-d1920" in sys.argv:
    out = sys.argv[sys.argv.index("--make-d1920") + 1]
    if not os.path.exists(os.path.join(out, "diffusion_pytorch_model.safetensors")):
        torch.manual_seed(0)
        CogVideoXTransformer3DModel(**D1920).save_pretrained(out, safe_serialization=True)
    print(json.dumps({"dir": out}))
    sys.exit(0)

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
pos = []  # the positional arguments come before the flags
for a in sys.argv[1:]:
    if a.startswith("--"):
        break
    pos.append(a)
lora = sys.argv[sys.argv.index("--lora") + 1:sys.argv.index("--lora") + 3] if "--lora" in sys.argv else None
path, F, H, W = pos[0], int(pos[1]), int(pos[2]), int(pos[3])
repeats = int(pos[4]) if len(pos) > 4 else 3
B = int(sys.argv[sys.argv.index("--batch") + 1]) if "--batch" in sys.argv else 1
L = int(sys.argv[sys.argv.index("--text-len") + 1]) if "--text-len" in sys.argv else 226


def rss_gib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 2**20


with contextlib.redirect_stdout(io.StringIO()):
    model = CogVideoXTransformer3DModel.from_pretrained_2d(path, torch_dtype=torch.float32).train()
    if "--gradient-checkpointing" in sys.argv:
        model.enable_gradient_checkpointing()
    if lora:
        model.requires_grad_(False)
        network = create_network(1.0, int(lora[0]), float(lora[1]), None, model, neuron_dropout=None,
                                 add_lora_in_attn_temporal=True)
        network.apply_to(None, model, False, True)
cfg = model.config
params = [p for p in (network.parameters() if lora else model.parameters()) if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), weight_decay=3e-2, eps=1e-10)
g = torch.Generator().manual_seed(0)
C = cfg.out_channels
latents = torch.randn(B, F, C, H, W, generator=g)
inpaint = torch.randn(B, F, cfg.in_channels - C, H, W, generator=g)
text = torch.randn(B, L, cfg.text_embed_dim, generator=g)
target = torch.randn(B, F, C, H, W, generator=g)
t = torch.tensor([500] * B)


def step():
    pred = model(hidden_states=latents, encoder_hidden_states=text, timestep=t, inpaint_latents=inpaint,
                 return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(pred.float(), target.float(), reduction="mean")
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 0.05, 2)
    opt.step()
    opt.zero_grad()
    return float(loss)


loaded = rss_gib()
if "--no-warmup" not in sys.argv:
    step()
times = []
for _ in range(repeats):
    t0 = time.time()
    step()
    times.append(time.time() - t0)
print(json.dumps({"step_s": min(times), "median_s": sorted(times)[len(times) // 2], "repeats": repeats,
                  "tokens": L + F * (H // cfg.patch_size) * (W // cfg.patch_size), "batch": B, "params": sum(p.numel() for p in params),
                  "threads": torch.get_num_threads(), "loaded_rss_gib": loaded,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
