#!/usr/bin/env python3
"""Reference-fixture generator for the samplers (diffusers v0.32.2 scheduler classes, CPU, fp32 latents).

Every number written here comes from the ORIGINAL diffusers classes, built exactly as CogVideoX-Fun builds them:
`<Class>.from_config(<the model's scheduler_config.json>)` (the shipped config is a CogVideoXDDIMScheduler config;
classes ignore keys they do not know). See reference/scheduler_fixtures.md for the file layout.

Outputs (relative to the repository root):
  test/fixtures/schedulers/{2b,5b}/scheduler_config.json   the two shipped configs (spec §1.3)
  test/fixtures/schedulers/schedules.json                  timesteps (N = 50, 30, 7), strength slices, scalars
  test/fixtures/schedulers/tables.safetensors              alphas_cumprod (F64 for the CogVideoX classes, F32 else),
                                                           sigmas per N (Euler, Euler A, DPM++)
  test/fixtures/schedulers/inputs.safetensors              the random inputs all chains share (latents, v-predictions)
  test/fixtures/schedulers/steps_2b.safetensors            step chains for all 7 schedulers (2b config)
  test/fixtures/schedulers/steps_5b.safetensors            step chains for DDIM_Cog and DPM_Cog (5b config); the other
                                                           five ignore snr_shift_scale, the generator asserts their 5b
                                                           chains equal the 2b ones bit for bit

Deterministic (fixed seeds, one thread): running it twice gives byte-identical files.

  PYTHONPATH=/work/main/reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src \
      /usr/bin/python3 reference/gen_schedulers.py
"""

import json
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (must precede anything that may import transformers)

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusers  # noqa: E402
import diffusers.schedulers.scheduling_dpm_cogvideox as dpm_cog_module  # noqa: E402
import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module  # noqa: E402
from diffusers import (  # noqa: E402
    CogVideoXDDIMScheduler,
    CogVideoXDPMScheduler,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
)
from diffusers.utils import logging as diffusers_logging  # noqa: E402

assert diffusers.__version__ == "0.32.2", diffusers.__version__
diffusers_logging.set_verbosity_error()  # "config attributes {...} will be ignored" is expected here
warnings.filterwarnings("ignore")
torch.set_num_threads(1)

REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "test", "fixtures", "schedulers")

# Fun's scheduler_dict (predict_*.py / ui) plus CogVideoXDPMScheduler (THUDM cli_demo.py).
SCHEDULERS = {
    "DDIM_Origin": DDIMScheduler,
    "DDIM_Cog": CogVideoXDDIMScheduler,
    "DPM_Cog": CogVideoXDPMScheduler,
    "Euler": EulerDiscreteScheduler,
    "Euler A": EulerAncestralDiscreteScheduler,
    "DPM++": DPMSolverMultistepScheduler,
    "PNDM": PNDMScheduler,
}
COG = ("DDIM_Cog", "DPM_Cog")  # the only classes that read snr_shift_scale
SIGMA_SCHEDULERS = ("Euler", "Euler A", "DPM++")
RETURNS_X0 = ("DDIM_Origin", "DDIM_Cog", "DPM_Cog", "Euler", "Euler A")  # step() also returns pred_original_sample


def shipped_config(snr_shift_scale):
    """Spec §1.3: the scheduler_config.json shipped with CogVideoX(-Fun) 2b (3.0) and 5b / 1.5 (1.0)."""
    return {
        "_class_name": "CogVideoXDDIMScheduler",
        "_diffusers_version": "0.31.0.dev0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "clip_sample_range": 1.0,
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "rescale_betas_zero_snr": True,
        "sample_max_value": 1.0,
        "set_alpha_to_one": True,
        "snr_shift_scale": snr_shift_scale,
        "steps_offset": 0,
        "timestep_spacing": "trailing",
        "trained_betas": None,
    }


CONFIGS = {"2b": shipped_config(3.0), "5b": shipped_config(1.0)}
NS = (50, 30, 7)
STRENGTHS = (0.7, 0.1)
LATENT_SHAPE = (2, 3, 4, 5, 6)
CHAIN_N = 7  # full chain: first step (alpha_bar = 0), N not dividing 1000 (prev_t rule), last step
V2V_N, V2V_STRENGTH, V2V_STEPS = 30, 0.7, 4


# ----------------------------------------------------------------------------------------------------------------
# Noise capture: every draw a scheduler makes goes through diffusers.utils.torch_utils.randn_tensor, imported by name
# into the scheduler modules. Wrap those names so the drawn tensors are recorded (the TS test replays them).
# ----------------------------------------------------------------------------------------------------------------
DRAWN = []


def _recording(original):
    def randn_tensor(*args, **kwargs):
        t = original(*args, **kwargs)
        DRAWN.append(t.detach().clone())
        return t

    return randn_tensor


for _module in (dpm_cog_module, euler_a_module):
    _module.randn_tensor = _recording(_module.randn_tensor)


def build(name, cfg):
    return SCHEDULERS[name].from_config(dict(cfg))


def get_timesteps(scheduler, num_inference_steps, strength):
    """CogVideoX-Fun pipeline_cogvideox_inpaint.py get_timesteps, verbatim."""
    init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
    t_start = max(num_inference_steps - init_timestep, 0)
    timesteps = scheduler.timesteps[t_start * scheduler.order :]
    return timesteps, num_inference_steps - t_start


def scalar(x):
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def timestep_list(ts):
    return ts.tolist()  # ints (int64 schedules) or floats (Euler / Euler A keep float32 timesteps)


def do_step(name, sched, v, t, sample, generator, x0_old=None, t_back=None):
    """One call as the Fun pipeline makes it (eta = 0, generator passed when step() accepts one)."""
    if name == "DPM_Cog":
        prev, x0 = sched.step(v, x0_old, t, t_back, sample, eta=0.0, generator=generator, return_dict=False)
        return prev, x0
    kwargs = {}
    if name in ("DDIM_Origin", "DDIM_Cog"):
        kwargs["eta"] = 0.0
    if name in ("DDIM_Origin", "DDIM_Cog", "Euler", "Euler A", "DPM++"):
        kwargs["generator"] = generator
    out = sched.step(v, t, sample, return_dict=False, **kwargs)
    return out[0], (out[1] if len(out) > 1 else None)


def make_inputs(seed=20241216):
    """The random inputs every chain shares: unit-normal initial latents, one v-prediction per step, the V2V video
    latents and noise. Written once to inputs.safetensors."""
    g = torch.Generator().manual_seed(seed)
    max_steps = 16  # PNDM at N = 7: 12 PRK + 4 PLMS calls
    inputs = {"chain.sample0": torch.randn(LATENT_SHAPE, generator=g)}
    for i in range(max_steps):
        inputs[f"chain.{i}.model_output"] = torch.randn(LATENT_SHAPE, generator=g)
    inputs["v2v.original"] = torch.randn(LATENT_SHAPE, generator=g)
    inputs["v2v.noise"] = torch.randn(LATENT_SHAPE, generator=g)
    for i in range(V2V_STEPS):
        inputs[f"v2v.{i}.model_output"] = torch.randn(LATENT_SHAPE, generator=g)
    return inputs


def run_steps(name, sched, timesteps, sample, inputs, prefix, out, generator):
    """Steps as the Fun denoising loop makes them; records outputs and every noise draw."""
    x0_old = None
    for i, t in enumerate(timesteps):
        v = inputs[f"{prefix}.{i}.model_output"]
        scaled = sched.scale_model_input(sample, t)
        DRAWN.clear()
        prev, x0 = do_step(name, sched, v, t, sample, generator, x0_old, timesteps[i - 1] if i > 0 else None)
        p = f"{name}.{prefix}.{i}"
        out[f"{p}.prev_sample"] = prev.clone()
        if name in ("Euler", "Euler A"):
            out[f"{p}.scaled"] = scaled.clone()
        if name in RETURNS_X0:
            out[f"{p}.pred_original_sample"] = x0.clone()
        for j, n in enumerate(DRAWN):
            out[f"{p}.noise.{j}"] = n
        if name == "DPM_Cog":
            x0_old = x0
        sample = prev


def run_chain(name, cfg, inputs, out, seed):
    """Chain at N = CHAIN_N over every timestep, then a V2V run (strength slice + add_noise + a few steps), then
    add_noise at the first and last timestep of N = 30."""
    g_sched = torch.Generator().manual_seed(seed)
    sched = build(name, cfg)
    sched.set_timesteps(CHAIN_N)
    sample = inputs["chain.sample0"] * sched.init_noise_sigma
    run_steps(name, sched, sched.timesteps, sample, inputs, "chain", out, g_sched)

    # V2V: set_timesteps(N) → Fun's get_timesteps(strength) → add_noise(video_latents, noise, timesteps[:1]) → steps
    sched = build(name, cfg)
    sched.set_timesteps(V2V_N)
    timesteps, _ = get_timesteps(sched, V2V_N, V2V_STRENGTH)
    latent_timestep = timesteps[:1].repeat(LATENT_SHAPE[0])
    sample = sched.add_noise(inputs["v2v.original"], inputs["v2v.noise"], latent_timestep)
    out[f"{name}.v2v.sample0"] = sample.clone()
    run_steps(name, sched, timesteps[:V2V_STEPS], sample, inputs, "v2v", out, g_sched)

    sched = build(name, cfg)
    sched.set_timesteps(V2V_N)
    for which, t in (("first", sched.timesteps[0]), ("last", sched.timesteps[-1])):
        noisy = sched.add_noise(inputs["v2v.original"], inputs["v2v.noise"], t.reshape(1).repeat(LATENT_SHAPE[0]))
        out[f"{name}.add_noise.{which}"] = noisy


def schedule_info(name, cfg, tables, cfg_name):
    sched = build(name, cfg)
    info = {
        "class": type(sched).__name__,
        "order": sched.order,
        "alphas_cumprod_dtype": str(sched.alphas_cumprod.dtype).replace("torch.", ""),
        "N": {},
    }
    if hasattr(sched, "final_alpha_cumprod"):
        info["final_alpha_cumprod"] = scalar(sched.final_alpha_cumprod)
    tables[f"{cfg_name}.{name}.alphas_cumprod"] = sched.alphas_cumprod.clone()
    for n in NS:
        sched = build(name, cfg)
        sched.set_timesteps(n)
        entry = {"timesteps": timestep_list(sched.timesteps), "init_noise_sigma": scalar(sched.init_noise_sigma), "strength": {}}
        if name in SIGMA_SCHEDULERS:
            tables[f"{cfg_name}.{name}.N{n}.sigmas"] = sched.sigmas.clone()
        for s in STRENGTHS:
            ts, n_eff = get_timesteps(sched, n, s)
            entry["strength"][str(s)] = {"timesteps": timestep_list(ts), "num_inference_steps": n_eff}
        info["N"][str(n)] = entry
    return info


def main():
    os.makedirs(OUT, exist_ok=True)
    for cfg_name, cfg in CONFIGS.items():
        os.makedirs(os.path.join(OUT, cfg_name), exist_ok=True)
        with open(os.path.join(OUT, cfg_name, "scheduler_config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")

    schedules = {"diffusers": diffusers.__version__, "torch": torch.__version__, "latent_shape": list(LATENT_SHAPE),
                 "chain_N": CHAIN_N, "v2v": {"N": V2V_N, "strength": V2V_STRENGTH, "steps": V2V_STEPS},
                 "configs": {}}
    tables = {}
    chains = {}
    inputs = make_inputs()
    for cfg_name, cfg in CONFIGS.items():
        schedules["configs"][cfg_name] = {name: schedule_info(name, cfg, tables, cfg_name) for name in SCHEDULERS}
        chains[cfg_name] = {}
        for k, name in enumerate(SCHEDULERS):
            run_chain(name, cfg, inputs, chains[cfg_name], seed=1000 + 10 * k)

    # The non-CogVideoX classes ignore snr_shift_scale: their 5b chains must equal the 2b ones bit for bit.
    for key, t in chains["5b"].items():
        if key.split(".")[0] not in COG:
            assert torch.equal(t, chains["2b"][key]), key
    steps_5b = {k: t for k, t in chains["5b"].items() if k.split(".")[0] in COG}

    save_file({k: v.contiguous() for k, v in sorted(inputs.items())}, os.path.join(OUT, "inputs.safetensors"), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in sorted(tables.items())}, os.path.join(OUT, "tables.safetensors"), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in sorted(chains["2b"].items())}, os.path.join(OUT, "steps_2b.safetensors"), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in sorted(steps_5b.items())}, os.path.join(OUT, "steps_5b.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump(schedules, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
