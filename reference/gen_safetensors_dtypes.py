"""Writes test/fixtures/safetensors/dtypes.safetensors with the ORIGINAL safetensors library (torch backend):
one tensor per dtype the reader supports, plus the expected float64 values, so the TS reader is checked against
bytes it did not write itself. Run: PYTHONPATH=... python3 reference/gen_safetensors_dtypes.py"""
import json
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "safetensors")
os.makedirs(OUT, exist_ok=True)
g = torch.Generator().manual_seed(7)
base = torch.randn(3, 5, generator=g, dtype=torch.float64) * 10
special = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 1e-7, 3.0e38, float("inf"), float("-inf")], dtype=torch.float64)
tensors = {
    "f64": base,
    "f32": base.float(),
    "f16": base.half(),
    "bf16": base.bfloat16(),
    "f16_special": special.half(),
    "bf16_special": special.bfloat16(),
    "i64": torch.tensor([[0, -1, 2147483647], [-2147483648, 5, 6]], dtype=torch.int64),
    "i32": torch.tensor([1, -2, 3, 2147483647], dtype=torch.int32),
    "i16": torch.tensor([-32768, 32767, 0], dtype=torch.int16),
    "i8": torch.tensor([-128, 127, 1], dtype=torch.int8),
    "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True], dtype=torch.bool),
    "scalar": torch.tensor(3.25, dtype=torch.float32),
    "empty": torch.zeros(0, 4, dtype=torch.float32),
}
save_file(tensors, os.path.join(OUT, "dtypes.safetensors"), metadata={"format": "pt"})
def plain(x):  # JSON has no inf/nan: write them as strings
    return x if x == x and abs(x) != float("inf") else str(x)


expected = {k: {"shape": list(v.shape), "values": [plain(x) for x in v.double().flatten().tolist()]} for k, v in tensors.items()}
with open(os.path.join(OUT, "dtypes.json"), "w") as f:
    json.dump(expected, f, indent=0)
print("wrote", sorted(tensors))
