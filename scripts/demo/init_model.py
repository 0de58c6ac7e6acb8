#!/usr/bin/env python3
"""Builds the untrained demo model folder in CogVideoX-Fun-V1.1-2b-InP's layout with the ORIGINAL classes:
tokenizer/ + text_encoder/ (reference/gen_demo_tokenizer.py: SentencePiece T5Tokenizer, frozen random T5 v1.1),
transformer/ (CogVideoX-Fun's CogVideoXTransformer3DModel, its own init), vae/ (Fun's AutoencoderKLCogVideoX, its own init),
scheduler/ (Fun's CogVideoXDDIMScheduler config), model_index.json. Sizes: scripts/demo/demo_config.json.
Training (scripts/demo/train-vae.ts, then `cogvideox-fun train`) starts from this folder.
  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 scripts/demo/init_model.py OUT_DIR
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "reference"))
import shim  # noqa: E402,F401
import torch  # noqa: E402
from diffusers import CogVideoXDDIMScheduler  # noqa: E402
# CogVideoX-Fun's own model classes (what its predict scripts load): its transformer takes the Fun-only
# `add_noise_in_inpaint_model` key.
from cogvideox.models.autoencoder_magvit import AutoencoderKLCogVideoX  # noqa: E402
from cogvideox.models.transformer3d import CogVideoXTransformer3DModel  # noqa: E402

SEED = 20261202

# CogVideoX-Fun-V1.1-2b-InP's scheduler/scheduler_config.json (as in test/fixtures/tiny-cogvideox-fun).
SCHEDULER = {
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "clip_sample_range": 1.0, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True, "sample_max_value": 1.0, "set_alpha_to_one": True, "snr_shift_scale": 3.0,
    "steps_offset": 0, "timestep_spacing": "trailing", "trained_betas": None,
}

MODEL_INDEX = {
    "_class_name": "CogVideoXFunInpaintPipeline",
    "_diffusers_version": "0.32.2",
    "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5Tokenizer"],
    "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLCogVideoX"],
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: init_model.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(HERE, "demo_config.json")) as f:
        cfg = json.load(f)
    subprocess.run([sys.executable, os.path.join(REPO, "reference", "gen_demo_tokenizer.py"), out], check=True)
    torch.manual_seed(SEED)
    transformer = CogVideoXTransformer3DModel(**cfg["transformer"])
    transformer.save_pretrained(os.path.join(out, "transformer"), safe_serialization=True)
    torch.manual_seed(SEED + 1)
    vae = AutoencoderKLCogVideoX(**cfg["vae"])
    vae.save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
    CogVideoXDDIMScheduler(**SCHEDULER).save_pretrained(os.path.join(out, "scheduler"))
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(MODEL_INDEX, f, indent=2)
        f.write("\n")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    enc = sum(p.numel() for p in vae.encoder.parameters())
    dec = sum(p.numel() for p in vae.decoder.parameters())
    print(f"transformer: {count(transformer):,} parameters; vae: {count(vae):,} (encoder {enc:,}, decoder {dec:,})")


if __name__ == "__main__":
    main()
