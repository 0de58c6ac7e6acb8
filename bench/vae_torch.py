"""PyTorch CPU fp32 side of bench/vae.ts: diffusers v0.32.2 AutoencoderKLCogVideoX (its own chunking, no tiling) on one
case. Prints one JSON line: run time, CPU seconds (all threads), peak RSS (VmHWM of this process), output shape.

  PYTHONPATH=/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src python3 bench/vae_torch.py DIR CASE
"""
import json
import os
import resource
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import shim  # noqa: E402,F401

import torch  # noqa: E402
import diffusers  # noqa: E402
from diffusers import AutoencoderKLCogVideoX  # noqa: E402

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()

CASES = {
    "decode-9x384x672": ("decode", (1, 16, 3, 48, 84)),
    "decode-49x256x256": ("decode", (1, 16, 13, 32, 32)),
    "encode-9x384x672": ("encode", (1, 3, 9, 384, 672)),
    "encode-49x256x256": ("encode", (1, 3, 49, 256, 256)),
}


def peak_rss_gib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    d, name = sys.argv[1], sys.argv[2]
    kind, shape = CASES[name]
    t0 = time.perf_counter()
    vae = AutoencoderKLCogVideoX.from_pretrained(d, torch_dtype=torch.float32).eval()
    load_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g) if kind == "decode" else torch.rand(shape, generator=g) * 2 - 1
    with torch.no_grad():
        t1 = time.perf_counter()
        c1 = cpu_s()
        out = vae.decode(x).sample if kind == "decode" else vae.encode(x).latent_dist.parameters
        run_s = time.perf_counter() - t1
        run_cpu = cpu_s() - c1
    print(json.dumps({
        "backend": f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "load_s": load_s, "run_s": run_s, "cpu_s": run_cpu, "out_shape": list(out.shape),
        "out_rms": out.float().pow(2).mean().sqrt().item(), "finite": bool(torch.isfinite(out).all()),
        "peak_rss_gib": peak_rss_gib(),
    }))


if __name__ == "__main__":
    main()
