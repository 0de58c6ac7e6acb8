#!/usr/bin/env python3
"""diffusers / PEFT loading of a LoRA written by OUR trainer (`--lora-format diffusers`), as THUDM's CogVideoX
cli_demo loads `--lora_path`:

    pipe.load_lora_weights(lora_path, weight_name="pytorch_lora_weights.safetensors", adapter_name="test_1")
    pipe.fuse_lora(lora_scale=1 / lora_rank)

Input: test/fixtures/training/diffusers_lora/<model>/pytorch_lora_weights.safetensors, made by
reference/train_tiny_lora.ts (our `train()` on test/fixtures/tiny-pipe-2b and tiny-pipe-1.5, rank 4, alpha 2).
diffusers v0.32.2 CogVideoXPipeline (fp32, CPU), peft 0.21.0. For lora_scale in (1/rank, 1.0) a fresh pipeline loads
and fuses the file; the fused transformer's output on fixed inputs (RoPE tables from the pipeline's
_prepare_rotary_positional_embeddings where the model uses them) and its fused 2-D weights are stored, beside the
base transformer's output.

Scale convention (diffusers v0.32.2 lora_base.py fuse_lora → PEFT LoraLayer.merge): the file has no alphas, so
get_peft_kwargs sets lora_alpha = r (PEFT scaling 1) and fusing adds lora_scale · B·A. Our trainer folds alpha/rank
into lora_B, so lora_scale 1.0 reproduces the trained network; cli_demo's 1/lora_rank is right for a LoRA trained
with lora_alpha = 1 and saved unfolded (the convention of THUDM's original training, per diffusers
examples/cogvideo/README.md).

Output: test/fixtures/training/diffusers_lora/<model>/fused.safetensors. From the repository root:

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/site-peft:/work/pyref/src/diffusers-0.32.2/src \
    /usr/bin/python3 reference/gen_diffusers_lora.py
"""

import json
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (before anything importing transformers)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
import peft  # noqa: E402
from diffusers import CogVideoXPipeline  # noqa: E402

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

REPO = os.path.dirname(HERE)
FIX = os.path.join(REPO, "test", "fixtures")
# model: latent frames of the fixed input (1.5 patches frame pairs)
MODELS = {"tiny-pipe-2b": 3, "tiny-pipe-1.5": 2}


def gen(name, frames):
    model = os.path.join(FIX, name)
    d = os.path.join(FIX, "training", "diffusers_lora", name)
    lora = load_file(os.path.join(d, "pytorch_lora_weights.safetensors"))
    rank = next(v.shape[0] for k, v in lora.items() if k.endswith("lora_A.weight"))
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, frames, 16, 8, 12, generator=g)
    text = torch.randn(1, 16, 48, generator=g)
    t = torch.tensor([500])
    out = {"input.hidden_states": x, "input.encoder_hidden_states": text, "input.timestep": t}
    meta = {"rank": rank, "scales": [], "model": name, "diffusers": diffusers.__version__,
            "peft": peft.__version__, "torch": torch.__version__}
    rope = {}

    def run(pipe):
        tr = pipe.transformer
        if tr.config.use_rotary_positional_embeddings and not rope:
            # pipeline_cogvideox.py: _prepare_rotary_positional_embeddings(height, width, latent frames, device)
            rope["emb"] = pipe._prepare_rotary_positional_embeddings(8 * 8, 12 * 8, frames, "cpu")
        with torch.no_grad():
            return tr(hidden_states=x, encoder_hidden_states=text, timestep=t, image_rotary_emb=rope.get("emb"),
                      return_dict=False)[0]

    base = CogVideoXPipeline.from_pretrained(model, torch_dtype=torch.float32)
    out["base.output"] = run(base)
    base_w = {k: v.clone() for k, v in base.transformer.state_dict().items()}
    del base
    for tag, scale in (("cli_demo", 1 / rank), ("unit", 1.0)):
        pipe = CogVideoXPipeline.from_pretrained(model, torch_dtype=torch.float32)
        pipe.load_lora_weights(d, weight_name="pytorch_lora_weights.safetensors", adapter_name="test_1")
        pipe.fuse_lora(lora_scale=scale)
        out[f"{tag}.output"] = run(pipe)
        # fused weights: the PEFT wrapper keeps the merged weight in base_layer
        changed = 0
        for k, v in pipe.transformer.state_dict().items():
            if ".lora_" in k:
                continue
            wname = k.replace(".base_layer.", ".")
            if v.dim() == 2 and not torch.equal(v, base_w[wname]):
                out[f"{tag}.weight.{wname}"] = v.clone()
                changed += 1
        meta["scales"].append({"tag": tag, "lora_scale": scale, "fused_weights": changed})
        del pipe
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(d, "fused.safetensors"),
              {"meta": json.dumps(meta)})
    print(f"{name}/fused.safetensors:", json.dumps(meta))


def main():
    for name, frames in MODELS.items():
        gen(name, frames)


if __name__ == "__main__":
    main()
