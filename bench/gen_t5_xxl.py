"""Writes a T5-XXL encoder checkpoint with RANDOM weights in the real names, shapes and dtype (bf16), sharded like
the CogVideoX release (text_encoder/model-0000k-of-00002.safetensors + model.safetensors.index.json), for benchmarks.
Never committed (bench/.weights/ is git-ignored). Usage: python3 bench/gen_t5_xxl.py OUT_DIR"""
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".weights", "t5-xxl", "text_encoder")
os.makedirs(out, exist_ok=True)
cfg = {
    "architectures": ["T5EncoderModel"], "d_ff": 10240, "d_kv": 64, "d_model": 4096, "dense_act_fn": "gelu_new",
    "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
    "is_encoder_decoder": True, "is_gated_act": True, "layer_norm_epsilon": 1e-06, "model_type": "t5",
    "num_decoder_layers": 24, "num_heads": 64, "num_layers": 24, "output_past": True, "pad_token_id": 0,
    "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 32128,
}
D, F, H, L, V = 4096, 10240, 64, 24, 32128
g = torch.Generator().manual_seed(0)


def rnd(shape, std):
    return (torch.randn(shape, generator=g, dtype=torch.float32) * std).to(torch.bfloat16)


def names():
    yield "shared.weight", (V, D), 1.0
    yield "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", (32, H), 0.5
    for l in range(L):
        p = f"encoder.block.{l}.layer"
        yield f"{p}.0.layer_norm.weight", (D,), None
        yield f"{p}.0.SelfAttention.q.weight", (D, D), 1.0 / math.sqrt(D * 64)
        yield f"{p}.0.SelfAttention.k.weight", (D, D), 1.0 / math.sqrt(D)
        yield f"{p}.0.SelfAttention.v.weight", (D, D), 1.0 / math.sqrt(D)
        yield f"{p}.0.SelfAttention.o.weight", (D, D), 1.0 / math.sqrt(D)
        yield f"{p}.1.layer_norm.weight", (D,), None
        yield f"{p}.1.DenseReluDense.wi_0.weight", (F, D), 1.0 / math.sqrt(D)
        yield f"{p}.1.DenseReluDense.wi_1.weight", (F, D), 1.0 / math.sqrt(D)
        yield f"{p}.1.DenseReluDense.wo.weight", (D, F), 1.0 / math.sqrt(F)
    yield "encoder.final_layer_norm.weight", (D,), None


items = list(names())
split = 1 + 12 * 9  # shard 1: embedding, bias, blocks 0..11 (~4.9 GB, like the release's 4.99 GB first shard)
shards = [items[:split + 1], items[split + 1:]]
weight_map, total = {}, 0
for k, part in enumerate(shards):
    fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
    tensors = {}
    for name, shape, std in part:
        tensors[name] = (1 + 0.1 * torch.randn(shape, generator=g)).to(torch.bfloat16) if std is None else rnd(shape, std)
        weight_map[name] = fname
        total += tensors[name].numel() * 2
    save_file(tensors, os.path.join(out, fname), metadata={"format": "pt"})
    print("wrote", fname, sum(t.numel() for t in tensors.values()) * 2 / 1e9, "GB", flush=True)
    del tensors
with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
print("done", total / 1e9, "GB")
