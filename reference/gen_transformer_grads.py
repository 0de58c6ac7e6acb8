#!/usr/bin/env python3
"""Gradient fixtures for the CogVideoX / CogVideoX-Fun transformer: PyTorch autograd through the ORIGINAL classes.

For three tiny checkpoints written by reference/gen_transformer.py (one per kind of position handling):
  fun-2b-inp      CogVideoX-Fun `cogvideox.models.transformer3d.CogVideoXTransformer3DModel`, sincos table, run at a
                  latent size other than its sample size (Fun's trilinear table resize), inpaint latents
  fun-5b-inp      the same class with RoPE (tables from `CogVideoX_Fun_Pipeline_Inpaint._prepare_rotary_positional_embeddings`)
  cogvideox1.5-5b diffusers v0.32.2 `CogVideoXTransformer3DModel`, patch_size_t 2 (Linear patchify), "slice" RoPE
the loss is sum(out * R) for a fixed random R of the output's shape; `loss.backward()` gives the gradient of every
parameter (`model.named_parameters()`, checkpoint names) and of the inputs `hidden_states` / `encoder_hidden_states`.

Output: test/fixtures/transformer/grads/<variant>__<h>x<w>.safetensors with
  in.*                 the forward's inputs (as in the parity dumps: hidden_states, encoder_hidden_states, timestep
                       int64, inpaint_latents, rope_cos / rope_sin)
  R                    the output weights of the loss, out's shape
  out                  the forward's output; loss  [1]
  grad.in.hidden_states, grad.in.encoder_hidden_states
  grad.<parameter name>  every parameter's gradient, torch layout
and grads.json (the case list: checkpoint, sizes, keys). Deterministic (fixed seeds, one thread). From the repo root:

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 reference/gen_transformer_grads.py
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen_transformer as gt  # noqa: E402  (imports shim, diffusers and CogVideoX-Fun; main() does not run)
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

OUT_DIR = os.path.join(gt.OUT_DIR, "grads")
SEED = 20261202
CASES = [  # (variant of gen_transformer.VARIANTS, latent h, w, T)
    ("fun-2b-inp", 12, 4, 3),
    ("fun-5b-inp", 12, 4, 3),
    ("cogvideox1.5-5b", 6, 8, 4),
]


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    for f in os.listdir(OUT_DIR):
        os.remove(os.path.join(OUT_DIR, f))
    variants = {v["name"]: v for v in gt.VARIANTS}
    index = {}
    for ci, (name, h, w, T) in enumerate(CASES):
        v = variants[name]
        d = os.path.join(gt.FIXTURES, f"tiny-{name}", "transformer")
        model = gt.model_class(v).from_pretrained(d).eval()
        assert model.dtype == torch.float32
        t = gt.make_inputs(v, model, h, w, T, SEED + ci)
        kw = gt.model_kwargs(t)
        hidden = kw["hidden_states"].clone().requires_grad_(True)
        encoder = kw["encoder_hidden_states"].clone().requires_grad_(True)
        kw["hidden_states"], kw["encoder_hidden_states"] = hidden, encoder
        model.zero_grad(set_to_none=True)
        out = model(**kw, return_dict=False)[0]
        g = torch.Generator().manual_seed(SEED + 100 + ci)
        R = torch.randn(out.shape, generator=g)
        loss = (out * R).sum()
        loss.backward()
        t["R"] = R
        t["out"] = out.detach()
        t["loss"] = loss.detach().reshape(1)
        t["grad.in.hidden_states"] = hidden.grad
        t["grad.in.encoder_hidden_states"] = encoder.grad
        names = []
        for pname, p in model.named_parameters():
            assert p.grad is not None, pname
            t["grad." + pname] = p.grad
            names.append(pname)
        case = f"{name}__{h}x{w}"
        path = os.path.join(OUT_DIR, case + ".safetensors")
        meta = {"case": json.dumps({"variant": name, "h": h, "w": w, "T": T, "generator": "reference/gen_transformer_grads.py"}, sort_keys=True)}
        save_file({k: t[k].detach().contiguous() for k in sorted(t)}, path, metadata=meta)
        index[case] = {"variant": name, "checkpoint": f"tiny-{name}/transformer", "h": h, "w": w, "T": T,
                       "parameters": sorted(names), "keys": sorted(t)}
        print(f"  {case:28s} {os.path.getsize(path):8d} B  loss {loss.item():.4f}  |grad h| {hidden.grad.norm().item():.4f}  "
              f"{len(names)} parameters")
    with open(os.path.join(OUT_DIR, "grads.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump({"cases": index}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
