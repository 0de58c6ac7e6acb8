"""Learning-rate tables of every scheduler CogVideoX-Fun's training can pick (scripts/train.py --lr_scheduler, built by
diffusers v0.32.2 get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=args.lr_warmup_steps,
num_training_steps=args.max_train_steps), train.py:1206-1211, one process). num_cycles and power keep get_scheduler's
defaults (1 and 1.0): train.py passes neither. piecewise_constant is left out: train.py passes no step_rules, so
get_scheduler would fail on it.

Records optimizer.param_groups[0]["lr"] before each of the first T + 2 optimizer steps (the lr the step runs with),
for two base learning rates (polynomial's floor lr_end = 1e-7 makes its factor depend on the base lr) and several
(warmup, training steps) pairs. Writes test/fixtures/training/lr_schedules.json.
  /usr/bin/python3 reference/gen_lr_schedules.py   (with the reference environment of setup_env.sh)
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (before anything importing transformers)

import torch  # noqa: E402
from diffusers.optimization import get_scheduler  # noqa: E402

import cogvideox  # noqa: E402

TRAIN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cogvideox.__file__))), "scripts", "train.py")
OUT = os.path.join(HERE, "..", "test", "fixtures", "training", "lr_schedules.json")

NAMES = ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"]
SHAPES = [(3, 10), (0, 7), (1, 1), (100, 1000)]
BASE_LRS = [1e-4, 5e-4]


def table(name, warmup, total, lr):
    p = torch.nn.Parameter(torch.zeros(1))
    o = torch.optim.SGD([p], lr=lr)
    s = get_scheduler(name, optimizer=o, num_warmup_steps=warmup, num_training_steps=total)
    vals = []
    for _ in range(total + 2):
        vals.append(o.param_groups[0]["lr"])
        o.step()
        try:
            s.step()
        except ZeroDivisionError:
            # polynomial with warmup == training steps divides by zero at step T (after the last optimizer step:
            # the original fails there, at the end of training); the table stops where the original does
            break
    return vals


def check_train_py():
    """The call and the choices this table assumes, as they stand in the original (fails if they change)."""
    src = open(TRAIN_PY).read()
    call = ("get_scheduler(\n        args.lr_scheduler,\n        optimizer=optimizer,\n"
            "        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,\n"
            "        num_training_steps=args.max_train_steps * accelerator.num_processes,\n    )")
    assert call in src, "train.py's get_scheduler call changed"
    assert '"linear", "cosine", "cosine_with_restarts", "polynomial",\'\n            \' "constant", "constant_with_warmup"' in src


def main():
    check_train_py()
    tables = []
    for name in NAMES:
        for warmup, total in SHAPES:
            for lr in BASE_LRS:
                tables.append({"name": name, "warmup": warmup, "training_steps": total, "lr": lr,
                               "lrs": table(name, warmup, total, lr)})
    meta = {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__, "tables": tables}
    with open(OUT, "w") as f:
        json.dump(meta, f)
    print(f"wrote {OUT}: {len(tables)} tables")


if __name__ == "__main__":
    main()
