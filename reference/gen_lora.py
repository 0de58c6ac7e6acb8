#!/usr/bin/env python3
"""Reference fixtures for LoRA merging, computed by CogVideoX-Fun's own code (`cogvideox/utils/lora_utils.py`, 6c39567).

  1. Two LoRAs for the tiny Fun 2b-InP transformer (test/fixtures/tiny-cogvideox-fun/transformer, fp32), made with
     `create_network` + `apply_to` exactly as scripts/train_lora.py does (transformer passed as the root module, so the
     names are `lora_unet__transformer_blocks_0_attn1_to_q`-style, every Linear wrapped), then given random non-zero
     up weights (seeded; training starts them at zero) and saved with `LoRANetwork.save_weights`:
       A: rank 4, network_alpha 3 (scale 0.75), every Linear, saved fp32 (save_weights(dtype=float32)).
       B: rank 2, network_alpha 5 (scale 2.5), saved bf16 (as training in bf16 saves it), then cut down to a subset of
          layers (block 1 attention + feed-forward, proj_out), the keys renamed to the single-underscore form
          (`lora_unet_transformer_blocks_1_attn1_to_q`, which merge_lora resolves the same way) and the `alpha` of
          `proj_out` dropped (merge_lora then uses scale 1.0, not alpha/rank). Written with safetensors' save_file with
          the metadata save_weights wrote.
  2. merge_lora(pipe, A, 0.55) then merge_lora(pipe, B, -1.3) on a fresh copy of the transformer loaded with
     `from_pretrained_2d(torch_dtype=float32)` (the predict scripts' loader), `pipe` standing in for the pipeline
     (merge_lora reads only `pipe.transformer` / `pipe.text_encoder`). Default device/dtype ('cpu', float32), as every
     Fun caller (predict_*.py, the UI) calls it. Stored: every Linear weight after the two merges (`fp32.<name>`), one
     transformer forward on a small input after the merges (`in.*`, `out`).
  3. The same two merges on a copy cast to bfloat16 (`.to(torch.bfloat16)`, as predict loads with weight_dtype bf16):
     merge_lora adds the fp32 delta in place into the bf16 weight (one rounding per merge_lora call). Stored as BF16:
     `bf16.<name>`.
  4. unmerge_lora(B, -1.3) then unmerge_lora(A, 0.55) on the fp32 copy: the largest difference to the original weights
     is printed (not stored: the test compares against the checkpoint itself).

Output: test/fixtures/lora/{lora_a,lora_b,merged}.safetensors; merged.safetensors metadata "merges" lists the merges.
Deterministic (fixed seeds, one thread). From the repository root:

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 reference/gen_lora.py
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (before anything importing transformers: lora_utils does)

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
from cogvideox.models.transformer3d import CogVideoXTransformer3DModel as FunTransformer  # noqa: E402
from cogvideox.utils.lora_utils import create_network, merge_lora, unmerge_lora  # noqa: E402

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()

REPO = os.path.dirname(HERE)
MODEL = os.path.join(REPO, "test", "fixtures", "tiny-cogvideox-fun", "transformer")
OUT = os.path.join(REPO, "test", "fixtures", "lora")
SEED = 20250101
MERGES = [("lora_a.safetensors", 0.55), ("lora_b.safetensors", -1.3)]
# Small forward input (Fun inpaint model: 16 latent + 17 inpaint channels; the sincos-PE 2b needs the full 226 text
# rows). 4x6 latents are below the 8x12 sample size, so Fun's interpolated position table is exercised too.
T, H, W = 2, 4, 6
TIMESTEP = 637


def load_transformer():
    with contextlib.redirect_stdout(io.StringIO()):  # from_pretrained_2d prints its progress
        return FunTransformer.from_pretrained_2d(MODEL, torch_dtype=torch.float32).eval()


def make_lora(rank, alpha, seed):
    """A LoRANetwork over a throwaway copy of the transformer, as train_lora.py builds it, with random up weights."""
    torch.manual_seed(seed)  # LoRAModule's kaiming_uniform_ init of lora_down uses the global generator
    model = load_transformer()
    with contextlib.redirect_stdout(io.StringIO()):
        net = create_network(1.0, rank, alpha, None, model, neuron_dropout=None, add_lora_in_attn_temporal=True)
        net.apply_to(None, model, False, True)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for lora in net.unet_loras:
            w = lora.lora_up.weight
            w.copy_(torch.randn(w.shape, generator=g) * 0.2)
    return net


def canonical_metadata(path):
    """safetensors 0.8 writes __metadata__ in HashMap order (varies run to run); rewrite the header with the metadata
    keys sorted (same bytes otherwise, same header length) so reruns give byte-identical files."""
    with open(path, "rb") as f:
        blob = bytearray(f.read())
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n
    blob[8:8 + n] = text + b" " * (n - len(text))
    with open(path, "wb") as f:
        f.write(blob)


def linear_weights(model):
    return {f"{n}.weight": m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    path_a = os.path.join(OUT, "lora_a.safetensors")
    path_b = os.path.join(OUT, "lora_b.safetensors")

    net_a = make_lora(4, 3.0, SEED)
    net_a.save_weights(path_a, torch.float32, None)

    net_b = make_lora(2, 5.0, SEED + 100)
    with tempfile.TemporaryDirectory() as tmp:
        full_b = os.path.join(tmp, "b.safetensors")
        net_b.save_weights(full_b, torch.bfloat16, None)
        with safe_open(full_b, "pt") as f:
            meta_b = f.metadata()
        sd_b = load_file(full_b)
    keep = ("lora_unet__transformer_blocks_1_attn1_", "lora_unet__transformer_blocks_1_ff_", "lora_unet__proj_out.")
    sd_b = {k.replace("lora_unet__", "lora_unet_"): v for k, v in sd_b.items() if k.startswith(keep)}
    del sd_b["lora_unet_proj_out.alpha"]
    save_file(sd_b, path_b, meta_b)

    # The files as merge_lora reads them (load_file); check the formats we claim.
    sd_a = load_file(path_a)
    assert all(k.startswith("lora_unet__") for k in sd_a), list(sd_a)[:3]
    assert {v.dtype for v in sd_a.values()} == {torch.float32}
    assert {v.dtype for v in load_file(path_b).values()} == {torch.bfloat16}
    print(f"lora_a: {len(sd_a) // 3} layers; lora_b: {len(load_file(path_b))} tensors")

    # --- fp32 merges + forward ---
    model = load_transformer()
    original = {k: v.detach().clone() for k, v in linear_weights(model).items()}
    pipe = types.SimpleNamespace(transformer=model, text_encoder=None)
    for name, mult in MERGES:
        merge_lora(pipe, os.path.join(OUT, name), mult)
    merged = {f"fp32.{k}": v.detach().clone().contiguous() for k, v in linear_weights(model).items()}
    changed = sum(not torch.equal(merged[f"fp32.{k}"], original[k]) for k in original)
    print(f"fp32: {changed}/{len(original)} Linear weights changed by the merges")

    g = torch.Generator().manual_seed(SEED + 7)
    inputs = {
        "in.hidden_states": torch.randn(1, T, 16, H, W, generator=g),
        "in.encoder_hidden_states": torch.randn(1, model.config.max_text_seq_length, 48, generator=g),
        "in.inpaint_latents": torch.cat(
            [(torch.rand(1, T, 1, H, W, generator=g) < 0.5).float(), torch.randn(1, T, 16, H, W, generator=g)], dim=2),
        "in.timestep": torch.tensor([TIMESTEP], dtype=torch.int64),
    }
    with torch.no_grad():
        out = model(hidden_states=inputs["in.hidden_states"], encoder_hidden_states=inputs["in.encoder_hidden_states"],
                    timestep=inputs["in.timestep"], inpaint_latents=inputs["in.inpaint_latents"], return_dict=False)[0]
        base = load_transformer()
        out_base = base(hidden_states=inputs["in.hidden_states"], encoder_hidden_states=inputs["in.encoder_hidden_states"],
                        timestep=inputs["in.timestep"], inpaint_latents=inputs["in.inpaint_latents"], return_dict=False)[0]
    rel = ((out - out_base).norm() / out_base.norm()).item()
    print(f"output after merges: {tuple(out.shape)}, rel-L2 change vs unmerged model {rel:.3f}")

    for name, mult in reversed(MERGES):
        unmerge_lora(pipe, os.path.join(OUT, name), mult)
    worst = max((v - original[k]).abs().max().item() for k, v in linear_weights(model).items())
    print(f"fp32 unmerge_lora(B), unmerge_lora(A): max-abs difference to the original weights {worst:.3e}")

    # --- bf16 merges ---
    model16 = load_transformer().to(torch.bfloat16)
    pipe16 = types.SimpleNamespace(transformer=model16, text_encoder=None)
    for name, mult in MERGES:
        merge_lora(pipe16, os.path.join(OUT, name), mult)
    merged16 = {f"bf16.{k}": v.detach().clone().contiguous() for k, v in linear_weights(model16).items()}
    assert {v.dtype for v in merged16.values()} == {torch.bfloat16}

    tensors = {**merged, **merged16, **{k: v.contiguous() for k, v in inputs.items()}, "out": out.contiguous()}
    meta = {"merges": json.dumps([{"file": n, "multiplier": m} for n, m in MERGES]), "timestep": str(TIMESTEP)}
    save_file(tensors, os.path.join(OUT, "merged.safetensors"), meta)
    for n in ("lora_a.safetensors", "lora_b.safetensors", "merged.safetensors"):
        canonical_metadata(os.path.join(OUT, n))
    for n in sorted(os.listdir(OUT)):
        print(f"{n}: {os.path.getsize(os.path.join(OUT, n))} bytes")


if __name__ == "__main__":
    main()
