"""PyTorch reference timing for bench/pipeline.ts: CogVideoX-Fun's inpaint pipeline on a model folder, fp32 CPU,
per-stage wall time (text = encode_prompt, conditioning = VAE encodes, denoise = the step loop, decode = decode_latents)
and peak RSS. Prints one JSON object.
  python bench/pipeline_torch.py <modelDir> <height> <width> <frames> <steps> [i2v] [threads]
"""
import contextlib
import io
import json
import os
import resource
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "reference"))
import shim  # noqa: E402,F401

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import T5EncoderModel, T5Tokenizer  # noqa: E402
from diffusers import DDIMScheduler  # noqa: E402
from cogvideox.models.autoencoder_magvit import AutoencoderKLCogVideoX as FunVAE  # noqa: E402
from cogvideox.models.transformer3d import CogVideoXTransformer3DModel as FunTransformer  # noqa: E402
from cogvideox.pipeline.pipeline_cogvideox_inpaint import CogVideoX_Fun_Pipeline_Inpaint  # noqa: E402

for _m in ("cv2", "imageio", "torchvision"):
    sys.modules.setdefault(_m, types.ModuleType(_m))
from cogvideox.utils.utils import get_image_to_video_latent  # noqa: E402

d, H, W, F, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
mode = sys.argv[6] if len(sys.argv) > 6 else "t2v"
torch.set_num_threads(int(sys.argv[7]) if len(sys.argv) > 7 else os.cpu_count())

with contextlib.redirect_stdout(io.StringIO()):
    transformer = FunTransformer.from_pretrained_2d(d, subfolder="transformer", torch_dtype=torch.float32).eval()
vae = FunVAE.from_pretrained(d, subfolder="vae", torch_dtype=torch.float32).eval()
text_encoder = T5EncoderModel.from_pretrained(d, subfolder="text_encoder", torch_dtype=torch.float32).eval()
pipe = CogVideoX_Fun_Pipeline_Inpaint(tokenizer=T5Tokenizer.from_pretrained(d, subfolder="tokenizer"), text_encoder=text_encoder,
                                      vae=vae, transformer=transformer,
                                      scheduler=DDIMScheduler.from_pretrained(d, subfolder="scheduler"))
pipe.set_progress_bar_config(disable=True)

times = {"text": 0.0, "conditioning": 0.0, "denoise": 0.0, "decode": 0.0}


def timed(obj, name, key):
    fn = getattr(obj, name)

    def wrap(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            times[key] += time.perf_counter() - t
    setattr(obj, name, wrap)


timed(pipe, "encode_prompt", "text")
timed(pipe, "prepare_mask_latents", "conditioning")
timed(pipe.transformer, "forward", "denoise")
timed(pipe, "decode_latents", "decode")

if mode == "i2v":
    px = (np.arange(H * W * 3, dtype=np.int64) * 37 % 251).astype(np.uint8).reshape(H, W, 3)
    video, mask, _ = get_image_to_video_latent([Image.fromarray(px)], None, video_length=F, sample_size=[H, W])
else:
    video, mask, _ = get_image_to_video_latent(None, None, video_length=F, sample_size=[H, W])
t = time.perf_counter()
with torch.no_grad():
    pipe(prompt="a panda playing a guitar in a bamboo forest", height=H, width=W, num_frames=F, num_inference_steps=steps,
         guidance_scale=6.0, generator=torch.Generator().manual_seed(43), video=video, mask_video=mask, output_type="numpy")
total = time.perf_counter() - t
print(json.dumps({"stages": {k: {"ms": v * 1000} for k, v in times.items()}, "totalMs": total * 1000,
                  "peakRss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "threads": torch.get_num_threads()}))
