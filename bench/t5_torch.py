"""PyTorch side of bench/t5.ts: HF T5EncoderModel on the same random T5-XXL checkpoint, one 226-token prompt.
Prints one JSON line. Mode 'bf16': the whole model in bf16 (9.5 GB; fp32 would be 19 GB, which does not fit beside
anything else in 24 GiB). Mode 'fp32-blocks': fp32 compute-only, one block at a time upcast from the bf16 model."""
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import shim  # noqa: F401,E402
import torch  # noqa: E402
from transformers import T5EncoderModel  # noqa: E402

path, mode = sys.argv[1], sys.argv[2]
t0 = time.time()
model = T5EncoderModel.from_pretrained(path, dtype=torch.bfloat16).eval()
load_s = time.time() - t0
torch.manual_seed(0)
ids = torch.randint(3, min(32000, model.config.vocab_size - 100), (1, 226))
res = {"mode": mode, "threads": torch.get_num_threads(), "load_s": load_s}
with torch.inference_mode():
    if mode == "bf16":
        model(ids)  # warm-up
        t0 = time.time()
        model(ids)
        res["forward_s"] = time.time() - t0
    else:
        enc = model.encoder
        h = enc.embed_tokens(ids).float()
        bias = None
        block_s = []
        for i, blk in enumerate(enc.block):
            b32 = blk.float()
            if i == 0:
                b32(h, position_bias=None, cache_position=torch.arange(h.shape[1]))  # warm-up
            t0 = time.time()
            out = b32(h, position_bias=bias, cache_position=torch.arange(h.shape[1]))
            block_s.append(time.time() - t0)
            h, bias = out[0], out[1] if bias is None else bias
            blk.to(torch.bfloat16)
        res["block_s"] = block_s
        res["forward_s"] = sum(block_s)
res["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(res))
