#!/usr/bin/env python3
"""Reference-fixture generator for the CogVideoX / CogVideoX-Fun diffusion transformer.

Everything written here is computed by the ORIGINAL code, imported from the source trees:
  - diffusers v0.32.2         `diffusers.CogVideoXTransformer3DModel`, `CogVideoXPatchEmbed`,
                               `CogVideoXPipeline` / `CogVideoXImageToVideoPipeline._prepare_rotary_positional_embeddings`
  - CogVideoX-Fun (6c39567)   `cogvideox.models.transformer3d.CogVideoXTransformer3DModel` / `CogVideoXPatchEmbed`,
                               `cogvideox.pipeline.pipeline_cogvideox_inpaint.CogVideoX_Fun_Pipeline_Inpaint
                               ._prepare_rotary_positional_embeddings` (its own np.linspace RoPE grid)
Nothing is re-implemented: pipeline helpers are called as unbound methods on a stand-in `self` that only carries
`transformer.config` and `vae_scale_factor_spatial` (the only attributes they read); intermediate values are taken with
forward hooks and with a pass-through wrapper around the attention processor (see capture()).

Outputs (paths relative to the repository root; layout documented in reference/transformer_fixtures.md):
  test/fixtures/tiny-<variant>/transformer/           save_pretrained() of 8 tiny random checkpoints (fp32 safetensors)
  test/fixtures/tiny-cogvideox-fun/transformer/       copy of tiny-fun-2b-inp/transformer (+ model_index.json merge)
  test/fixtures/transformer/<variant>__<h>x<w>[__t<T>].safetensors   per-module activations of one forward
  test/fixtures/transformer/tables.safetensors + tables.json        RoPE / 2b-PE tables at the real model sizes

Deterministic (fixed seeds, one thread); running it twice gives byte-identical files. From the repository root:

  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 reference/gen_transformer.py
"""

import contextlib
import copy
import io
import json
import os
import shutil
import sys
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (must precede anything importing transformers: the Fun pipeline module does)

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import CogVideoXTransformer3DModel as DiffusersTransformer  # noqa: E402
from diffusers.models.embeddings import CogVideoXPatchEmbed as DiffusersPatchEmbed  # noqa: E402
from diffusers.pipelines.cogvideo import pipeline_cogvideox as diffusers_t2v_module  # noqa: E402
from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline  # noqa: E402
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import CogVideoXImageToVideoPipeline  # noqa: E402

from cogvideox.models.transformer3d import CogVideoXPatchEmbed as FunPatchEmbed  # noqa: E402
from cogvideox.models.transformer3d import CogVideoXTransformer3DModel as FunTransformer  # noqa: E402
from cogvideox.pipeline import pipeline_cogvideox_inpaint as fun_inpaint_module  # noqa: E402
from cogvideox.pipeline.pipeline_cogvideox_inpaint import CogVideoX_Fun_Pipeline_Inpaint  # noqa: E402

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()

REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(REPO, "test", "fixtures")
OUT_DIR = os.path.join(FIXTURES, "transformer")
PIPE_DIR = os.path.join(FIXTURES, "tiny-cogvideox-fun")

SEED = 20241216
B = 2
TEXT_LEN = 226  # max_text_seq_length of every tiny config (as the real ones); text length of the 2b (sincos PE) dumps
# Text length of the dumps of models without a positional table (5b/1.5 RoPE models, except the learned-PE 5b-I2V).
# Both diffusers and Fun take the text length from encoder_hidden_states.size(1); only the models that add a table
# (2b sincos, 5b-I2V learned) need it to equal max_text_seq_length (the table has 226 + N rows). Using 16 there
# keeps the fixtures small (the [B, 226, D] text-stream tensors are ~80% of the bytes) and checks that a port does not
# hard-code 226. 16 = the length of the short T5 fixture (test/fixtures/t5/encoder_io_len16.safetensors).
ROPE_TEXT_LEN = 16
TIMESTEPS = [999, 421]
MASK_VALUE = 1.15
VAE_SCALE_SPATIAL = 8  # vae_scale_factor_spatial of every CogVideoX VAE (2 ** (len(block_out_channels) - 1))
PE_ROWS = (4, 4, 8)  # 2b PE tables are [N, 1920]: 16 stored rows each (RoPE tables: 8 + 48 + 8 rows of 64)

# Keys NOT stored in the per-case dumps (all are exact copies of stored keys, or block-1 repeats of block-0
# diagnostics); the generator asserts the equalities before dropping them. See transformer_fixtures.md.
DROPPED_KEYS = (
    "block.0.in.hidden",  # == patch_embed.output[:, L:]
    "block.0.in.encoder",  # == patch_embed.output[:, :L]
    "block.1.in.hidden",  # == block.0.out.hidden
    "block.1.in.encoder",  # == block.0.out.encoder
    "block.1.attn.q",  # block-1 internals (block 1 is tested end to end by block.0.out.* -> block.1.out.*)
    "block.1.attn.k",
    "block.1.attn.out",
    "proj_out.output",  # == out before unpatchify (a pure permutation, checked below)
)

# --------------------------------------------------------------------------------------
# Tiny configs
# --------------------------------------------------------------------------------------

COMMON = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    num_layers=2,
    time_embed_dim=16,
    text_embed_dim=48,  # = d_model of the tiny T5 in tiny-cogvideox-fun/text_encoder
    max_text_seq_length=TEXT_LEN,
    out_channels=16,
    sample_height=8,
    sample_width=12,
    sample_frames=9,
    flip_sin_to_cos=True,
    freq_shift=0,
    activation_fn="gelu-approximate",
    timestep_activation_fn="silu",
    norm_elementwise_affine=True,
    norm_eps=1e-5,
    dropout=0.0,
    attention_bias=True,
    spatial_interpolation_scale=1.875,
    temporal_interpolation_scale=1.0,
    temporal_compression_ratio=4,
    patch_size=2,
)

ROPE = dict(use_rotary_positional_embeddings=True)
V15 = dict(patch_size_t=2, patch_bias=False, sample_frames=13, **ROPE)  # 13 frames -> 4 latent frames (even)

# cases: (latent h, latent w, latent T).  The first one is the "native" size (sample_height x sample_width).
#  12x4 : 6x2 token grid -> RoPE crop ((0,2),(4,3)): left = round(2.5) = 2 (half-to-even; half-up would give 3), and
#         Fun's np.linspace grid_w [2, 2.5] differs from diffusers' torch.linspace [2, 1.5]; 2b PE: 4x6 -> 6x2.
#  6x8  : 1.5 ("slice" RoPE: the grid may not exceed sample_height/2 x sample_width/2 = 4x6 tokens).
CASES_10 = [(8, 12, 3), (12, 4, 3)]
CASES_15 = [(8, 12, 4), (6, 8, 4)]

VARIANTS = [
    # max_text_seq_length 16 (not 226) keeps the fixtures small; fun-2b-inp keeps 226 for the tiny pipeline.
    dict(name="cogvideox-2b", cls="diffusers", pipe="t2v", cfg=dict(in_channels=16, max_text_seq_length=ROPE_TEXT_LEN), cases=CASES_10),
    dict(name="fun-2b-inp", cls="fun", pipe="fun", cfg=dict(in_channels=33), cases=CASES_10),
    dict(name="cogvideox-5b", cls="diffusers", pipe="t2v", cfg=dict(in_channels=16, **ROPE), cases=CASES_10),
    dict(name="fun-5b-inp", cls="fun", pipe="fun", cfg=dict(in_channels=33, **ROPE), cases=CASES_10),
    # learned PE: diffusers raises for any h x w other than the sample size, and RECOMPUTES sincos (ignoring the
    # learned table) when T differs from (sample_frames - 1) / 4 + 1 -> second case = same size, T = 2.
    dict(name="cogvideox-5b-i2v", cls="diffusers", pipe="i2v",
         cfg=dict(in_channels=32, use_learned_positional_embeddings=True, max_text_seq_length=ROPE_TEXT_LEN, **ROPE),
         cases=[(8, 12, 3), (8, 12, 2)]),
    dict(name="cogvideox1.5-5b", cls="diffusers", pipe="t2v", cfg=dict(in_channels=16, **V15), cases=CASES_15),
    dict(name="cogvideox1.5-5b-i2v", cls="diffusers", pipe="i2v", cfg=dict(in_channels=32, ofs_embed_dim=16, **V15),
         cases=CASES_15),
    # T = 1: Fun appends a zero frame (T_loc = 2) and slices the output back to 1 frame.
    dict(name="fun-1.5-5b-inp", cls="fun", pipe="fun", cfg=dict(in_channels=33, **V15), cases=CASES_15 + [(8, 12, 1)]),
    # CogVideoX-Fun InP models whose latent width is not 16 (4 latent channels: in 2*4+1 = 9, out 4). Nothing but the
    # key add_noise_in_inpaint_model, which Fun's class writes into every config it saves, says these are Fun models:
    # a port must take Fun's 2b position table (trilinear resize of the sample-size table; here 4x6 -> 3x4 tokens and 2
    # of 3 frames) and Fun's RoPE grid (np.linspace; the 12x4 crop is off-origin, where diffusers' grid differs).
    dict(name="fun-2b-inp-c4", cls="fun", pipe="fun", latent=4,
         cfg=dict(in_channels=9, out_channels=4, max_text_seq_length=ROPE_TEXT_LEN), cases=[(6, 8, 2)]),
    dict(name="fun-5b-inp-c4", cls="fun", pipe="fun", latent=4, cfg=dict(in_channels=9, out_channels=4, **ROPE),
         cases=[(12, 4, 3)]),
]


def variant_config(v):
    cfg = dict(COMMON)
    cfg.update(v["cfg"])
    return cfg


def model_class(v):
    return FunTransformer if v["cls"] == "fun" else DiffusersTransformer


# --------------------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------------------


def init_weights(model, seed):
    """Every parameter random: Linear/Conv weights N(0, 1/fan_in); every bias 0.1*N(0,1); every LayerNorm weight
    1 + 0.1*N(0,1) and bias 0.1*N(0,1); a persistent learned pos_embedding = its sincos init + 0.2*N(0,1) on ALL rows
    (text rows included: diffusers adds the whole table), stored as float32 (diffusers builds it in float64: the torch
    sincos path multiplies float32 positions by float64 frequencies)."""
    g = torch.Generator().manual_seed(seed)
    norm_modules = {n for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            z = torch.randn(p.shape, generator=g, dtype=torch.float32)
            owner, leaf = name.rsplit(".", 1)
            if owner in norm_modules:
                v = 1.0 + 0.1 * z if leaf == "weight" else 0.1 * z
            elif leaf == "bias":
                v = 0.1 * z
            elif leaf == "weight" and p.dim() >= 2:
                v = z * (p[0].numel() ** -0.5)  # fan_in = in_features (Linear) or C*kh*kw (Conv2d)
            else:
                raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")
            p.copy_(v)
        sd_keys = set(model.state_dict().keys())
        for name, buf in sorted(model.named_buffers(), key=lambda kv: kv[0]):
            if name in sd_keys:  # persistent buffers only (5b-I2V learned patch_embed.pos_embedding)
                assert name == "patch_embed.pos_embedding", name
                model.patch_embed.pos_embedding = (
                    buf.float() + 0.2 * torch.randn(buf.shape, generator=g, dtype=torch.float32)).contiguous()


def state_dicts_equal(a, b):
    """Bit-identical state dicts. One tolerated dtype difference: a model built from a config holds the learned
    patch_embed.pos_embedding in float64 (see init_weights) and load_state_dict copies the stored float32 values into
    it, so after from_pretrained it is float64 with exactly the float32 values."""
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    for k in sa:
        x, y = sa[k], sb[k]
        if k == "patch_embed.pos_embedding" and x.dtype != y.dtype:
            if not (y.dtype == torch.float64 and torch.equal(y.float().double(), y) and torch.equal(x, y.float())):
                return False
        elif x.dtype != y.dtype or not torch.equal(x, y):
            return False
    return True


def write_checkpoint(v, index):
    cfg = variant_config(v)
    cls = model_class(v)
    torch.manual_seed(SEED + index)
    model = cls(**cfg).eval()
    init_weights(model, SEED + 1000 * (index + 1))
    d = os.path.join(FIXTURES, f"tiny-{v['name']}", "transformer")
    if os.path.isdir(d):
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    assert sorted(os.listdir(d)) == ["config.json", "diffusion_pytorch_model.safetensors"], os.listdir(d)

    reloaded = cls.from_pretrained(d).eval()
    assert reloaded.dtype == torch.float32
    assert state_dicts_equal(model, reloaded), f"{v['name']}: reload differs"
    # non-persistent buffers (2b sincos table) are rebuilt from the config: must be identical too
    ba, bb = dict(model.named_buffers()), dict(reloaded.named_buffers())
    assert ba.keys() == bb.keys() and all(torch.equal(ba[k].double(), bb[k].double()) for k in ba)
    if v["cls"] == "fun":
        # the loader the Fun pipelines / predict scripts actually use
        with contextlib.redirect_stdout(io.StringIO()):
            fun2d = FunTransformer.from_pretrained_2d(d, torch_dtype=torch.float32).eval()
        assert state_dicts_equal(model, fun2d), f"{v['name']}: from_pretrained_2d differs"
    return reloaded, d


def merge_model_index():
    path = os.path.join(PIPE_DIR, "model_index.json")
    idx = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            idx = json.load(f)
    idx.setdefault("_class_name", "CogVideoXFunInpaintPipeline")
    idx.setdefault("_diffusers_version", "0.32.2")
    idx["transformer"] = ["diffusers", "CogVideoXTransformer3DModel"]  # as the released model_index.json; Fun loads it with its own class
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(idx, f, indent=2, sort_keys=True)
        f.write("\n")


# --------------------------------------------------------------------------------------
# RoPE through the original pipeline helpers
# --------------------------------------------------------------------------------------

PIPELINE_CLASSES = {
    "t2v": CogVideoXPipeline,
    "i2v": CogVideoXImageToVideoPipeline,
    "fun": CogVideoX_Fun_Pipeline_Inpaint,
}


def pipeline_rope(pipe, transformer_config, height_px, width_px, num_latent_frames):
    """`<Pipeline>._prepare_rotary_positional_embeddings(self, height, width, latents.size(1), device)` with a stand-in
    self: the method reads self.transformer.config.{patch_size, patch_size_t, sample_height, sample_width,
    attention_head_dim} and self.vae_scale_factor_spatial only."""
    fake = types.SimpleNamespace(
        transformer=types.SimpleNamespace(config=transformer_config),
        vae_scale_factor_spatial=VAE_SCALE_SPATIAL,
    )
    cos, sin = PIPELINE_CLASSES[pipe]._prepare_rotary_positional_embeddings(
        fake, height_px, width_px, num_latent_frames, torch.device("cpu"))
    assert cos.dtype == torch.float32 and sin.dtype == torch.float32
    return cos.contiguous(), sin.contiguous()


# --------------------------------------------------------------------------------------
# Activation capture
# --------------------------------------------------------------------------------------


class Recorder:
    def __init__(self):
        self.t = {}

    def put(self, key, value):
        assert key not in self.t, key
        self.t[key] = value.detach().clone().contiguous()


class CapturingProcessor:
    """Pass-through wrapper around the model's own CogVideoXAttnProcessor2_0: while the processor runs,
    F.scaled_dot_product_attention is wrapped so that its query/key arguments - i.e. q/k after to_q/to_k, the QK
    LayerNorms and (video tokens) RoPE, [B, heads, S, head_dim] - are recorded. Numerics are untouched."""

    def __init__(self, inner, rec, prefix):
        self.inner, self.rec, self.prefix = inner, rec, prefix

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        orig = F.scaled_dot_product_attention

        def sdpa(query, key, value, *args, **kwargs):
            self.rec.put(self.prefix + "attn.q", query)
            self.rec.put(self.prefix + "attn.k", key)
            return orig(query, key, value, *args, **kwargs)

        F.scaled_dot_product_attention = sdpa
        try:
            return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                              attention_mask=attention_mask, image_rotary_emb=image_rotary_emb)
        finally:
            F.scaled_dot_product_attention = orig


def zero_weight_output(module, *inputs):
    """Output of a copy of `module` whose parameters are all zero, on all-zero inputs. For CogVideoXPatchEmbed this
    is exactly the positional table its forward adds (0 + pos == pos bit for bit), taken through the original
    forward code path (Fun: trilinear interpolation; diffusers: stored / recomputed sincos or learned table)."""
    m = copy.deepcopy(module)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        return m(*[torch.zeros_like(x) for x in inputs])


@torch.no_grad()
def run_case(model, inputs):
    rec = Recorder()
    hooks = []
    pe_inputs = {}

    def hook(key, fn=lambda o: o):
        return lambda m, i, o: rec.put(key, fn(o))

    hooks.append(model.time_proj.register_forward_hook(hook("time.t_emb")))
    hooks.append(model.time_embedding.register_forward_hook(hook("time.emb")))
    if getattr(model, "ofs_embedding", None) is not None:
        hooks.append(model.ofs_proj.register_forward_hook(hook("ofs.t_emb")))
        hooks.append(model.ofs_embedding.register_forward_hook(hook("ofs.emb")))
    hooks.append(model.patch_embed.register_forward_pre_hook(lambda m, a: pe_inputs.update(args=a)))
    hooks.append(model.patch_embed.register_forward_hook(hook("patch_embed.output")))
    procs = []
    for i, blk in enumerate(model.transformer_blocks):
        p = f"block.{i}."
        hooks.append(blk.register_forward_pre_hook(
            lambda m, a, kw, p=p: (rec.put(p + "in.hidden", kw["hidden_states"]),
                                   rec.put(p + "in.encoder", kw["encoder_hidden_states"])) and None,
            with_kwargs=True))
        hooks.append(blk.norm1.linear.register_forward_hook(hook(p + "norm1")))
        hooks.append(blk.attn1.to_out[0].register_forward_hook(hook(p + "attn.out")))
        hooks.append(blk.register_forward_hook(
            lambda m, a, o, p=p: (rec.put(p + "out.hidden", o[0]), rec.put(p + "out.encoder", o[1])) and None))
        procs.append((blk.attn1, blk.attn1.processor))
        blk.attn1.set_processor(CapturingProcessor(blk.attn1.processor, rec, p))
    # norm_final: 2b applies it to the video tokens; RoPE models to concat(text, video) and then drop the text rows.
    # Stored: the video rows (identical per-token result either way).
    hooks.append(model.norm_final.register_forward_hook(hook("norm_final.output")))
    hooks.append(model.norm_out.register_forward_hook(hook("norm_out.output")))
    hooks.append(model.proj_out.register_forward_hook(hook("proj_out.output")))
    try:
        out = model(**inputs, return_dict=False)[0]
    finally:
        for h in hooks:
            h.remove()
        for attn, proc in procs:
            attn.set_processor(proc)
    rec.put("out", out)
    t = rec.t
    n_video = t["norm_out.output"].shape[1]
    t["norm_final.output"] = t["norm_final.output"][:, -n_video:].contiguous()

    pe = model.patch_embed
    if pe.use_positional_embeddings or pe.use_learned_positional_embeddings:
        pos = zero_weight_output(pe, *pe_inputs["args"])[:1]
        t["patch_embed.pos"] = pos.contiguous()

    # the capture must not have changed anything
    plain = model(**inputs, return_dict=False)[0]
    assert torch.equal(plain, out)
    return t


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


def case_name(v, h, w, T):
    default_T = v["cases"][0][2]
    return f"{v['name']}__{h}x{w}" + ("" if T == default_T else f"__t{T}")


def text_len(model):
    # models that add a positional table (2b sincos, 5b-I2V learned) need len == max_text_seq_length
    pe = model.patch_embed
    return model.config.max_text_seq_length if (pe.use_positional_embeddings or pe.use_learned_positional_embeddings) else ROPE_TEXT_LEN


def make_inputs(v, model, h, w, T, seed):
    g = torch.Generator().manual_seed(seed)
    lat = v.get("latent", 16)
    latents = torch.randn(B, T, lat, h, w, generator=g)
    t = {}
    if v["pipe"] == "i2v":
        # I2V pipelines: model input = cat([latents, image_latents], dim=2); image latents = encoded first frame,
        # zero-padded in time.
        image_latents = torch.zeros(B, T, 16, h, w)
        image_latents[:, :1] = torch.randn(B, 1, 16, h, w, generator=g)
        latents = torch.cat([latents, image_latents], dim=2)
    t["in.hidden_states"] = latents
    t["in.encoder_hidden_states"] = torch.randn(B, text_len(model), 48, generator=g)
    t["in.timestep"] = torch.tensor(TIMESTEPS, dtype=torch.int64)
    if v["cls"] == "fun":
        mask = (torch.rand(B, T, 1, h, w, generator=g) < 0.5).float() * MASK_VALUE
        t["in.inpaint_latents"] = torch.cat([mask, torch.randn(B, T, lat, h, w, generator=g)], dim=2)
    if model.config.get("ofs_embed_dim"):
        # CogVideoXImageToVideoPipeline: ofs_emb = latents.new_full((1,), fill_value=2.0)  (shape [1], not [B])
        t["in.ofs"] = torch.full((1,), 2.0)
    if model.config.use_rotary_positional_embeddings:
        cos, sin = pipeline_rope(v["pipe"], model.config, h * VAE_SCALE_SPATIAL, w * VAE_SCALE_SPATIAL, T)
        t["in.rope_cos"], t["in.rope_sin"] = cos, sin
    return t


def model_kwargs(t):
    kw = dict(hidden_states=t["in.hidden_states"], encoder_hidden_states=t["in.encoder_hidden_states"],
              timestep=t["in.timestep"])
    if "in.inpaint_latents" in t:
        kw["inpaint_latents"] = t["in.inpaint_latents"]
    if "in.ofs" in t:
        kw["ofs"] = t["in.ofs"]
    if "in.rope_cos" in t:
        kw["image_rotary_emb"] = (t["in.rope_cos"], t["in.rope_sin"])
    return kw


def stats(x):
    x = x.float()
    return f"std={x.std().item():.3f} maxabs={x.abs().max().item():.3f}"


def write_case(v, vi, ci, model, h, w, T):
    t = make_inputs(v, model, h, w, T, SEED + 100 * vi + ci)
    acts = run_case(model, model_kwargs(t))
    t.update(acts)
    # invariants a port relies on
    c_out = model.config.out_channels
    assert t["out"].shape == (B, T, c_out, h, w), t["out"].shape
    n_text = t["in.encoder_hidden_states"].shape[1]
    assert torch.equal(t["block.0.in.hidden"], t["patch_embed.output"][:, n_text:])
    assert torch.equal(t["block.0.in.encoder"], t["patch_embed.output"][:, :n_text])
    assert torch.equal(t["block.1.in.hidden"], t["block.0.out.hidden"])
    assert torch.equal(t["block.1.in.encoder"], t["block.0.out.encoder"])
    p, pt = model.config.patch_size, model.config.patch_size_t or 1
    Tl = max(T, pt)  # Fun 1.5: T = 1 is padded to 2
    y = t["proj_out.output"].reshape(B, Tl // pt, h // p, w // p, c_out, pt, p, p)
    y = y.permute(0, 1, 5, 4, 2, 6, 3, 7).reshape(B, Tl, c_out, h, w)[:, :T]
    assert torch.equal(y, t["out"]), "out is not unpatchify(proj_out.output)"
    for k in DROPPED_KEYS:
        del t[k]
    name = case_name(v, h, w, T)
    # ONE metadata key: safetensors keeps __metadata__ in a hash map, so several keys come out in random order
    meta = {"case": json.dumps({"variant": v["name"], "class": v["cls"], "h": h, "w": w, "T": T,
                                "generator": "reference/gen_transformer.py"}, sort_keys=True)}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    save_file({k: t[k].contiguous() for k in sorted(t)}, path, metadata=meta)
    print(f"  {name:32s} S={t['patch_embed.output'].shape[1]:4d} {os.path.getsize(path):8d} B  out {stats(t['out'])}  "
          f"block.1.out.hidden {stats(t['block.1.out.hidden'])}")
    return name, {"variant": v["name"], "checkpoint": f"tiny-{v['name']}/transformer", "h": h, "w": w, "T": T,
                  "text_len": n_text, "tensors": {k: [str(t[k].dtype).replace("torch.", ""), list(t[k].shape)]
                                                   for k in sorted(t)}}


# --------------------------------------------------------------------------------------
# Tables at the real sizes
# --------------------------------------------------------------------------------------

TABLE_SIZES = [(480, 720), (384, 672), (512, 512), (352, 640), (672, 384), (768, 768)]
REAL_5B = types.SimpleNamespace(attention_head_dim=64, patch_size=2, patch_size_t=None, sample_height=60,
                                sample_width=90)
REAL_15 = types.SimpleNamespace(attention_head_dim=64, patch_size=2, patch_size_t=2, sample_height=300,
                                sample_width=300)
REAL_T_5B = 13  # (49 - 1) / 4 + 1 latent frames
SIZE_15 = (768, 1360)
REAL_T_15_DIFFUSERS = 22  # 81 frames -> 21 latent frames, padded to 22 by CogVideoXPipeline (additional_frames)
REAL_T_15_FUN = 20  # the Fun inpaint pipeline instead clips to 20 latent frames (num_frames 81 -> 77)
D_2B = 1920


def row_subsample(n, seed, n_head=8, n_tail=8, n_rand=48):
    rng = np.random.RandomState(seed)
    mid = np.sort(rng.choice(np.arange(n_head, n - n_tail), size=n_rand, replace=False))
    rows = np.concatenate([np.arange(n_head), mid, np.arange(n - n_tail, n)]).astype(np.int64)
    assert len(np.unique(rows)) == len(rows)
    return torch.from_numpy(rows)


def add_table(tables, index, prefix, full, seed, source, extra=None, n_rows=(8, 8, 48)):
    rows = row_subsample(full.shape[0], seed, *n_rows)
    tables[prefix + ".rows"] = rows
    tables[prefix + ".shape"] = torch.tensor(list(full.shape), dtype=torch.int64)
    tables[prefix + ".values"] = full[rows].contiguous()
    entry = {"prefix": prefix, "shape": list(full.shape), "rows_stored": len(rows), "source": source}
    entry.update(extra or {})
    index.append(entry)


def check_rope_grid(cos, sin, grids, head_dim, T, hh, ww):
    """The grid positions stored next to a table must reproduce the table through diffusers'
    get_1d_rotary_pos_embed (the function both pipelines call), exactly."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    dims = (head_dim // 4, head_dim // 8 * 3, head_dim // 8 * 3)
    c = cos.view(T, hh, ww, head_dim)
    s = sin.view(T, hh, ww, head_dim)
    o = 0
    for axis, (g, d) in enumerate(zip(grids, dims)):
        gc, gs = get_1d_rotary_pos_embed(d, g, use_real=True)
        if axis == 0:
            want_c, want_s = c[:, 0, 0, o:o + d], s[:, 0, 0, o:o + d]
        elif axis == 1:
            want_c, want_s = c[0, :, 0, o:o + d], s[0, :, 0, o:o + d]
        else:
            want_c, want_s = c[0, 0, :, o:o + d], s[0, 0, :, o:o + d]
        assert torch.equal(gc, want_c) and torch.equal(gs, want_s), f"grid axis {axis} does not reproduce the table"
        o += d


def write_tables():
    tables, index = {}, []
    seed = SEED
    for (H, W) in TABLE_SIZES:
        size = f"{H}x{W}"
        hh, ww = H // 16, W // 16
        crop_fun = fun_inpaint_module.get_resize_crop_region_for_grid((hh, ww), 45, 30)
        crop_diff = diffusers_t2v_module.get_resize_crop_region_for_grid((hh, ww), 45, 30)
        assert crop_fun == crop_diff, (crop_fun, crop_diff)
        (top, left), (bottom, right) = crop_fun
        tables[f"rope.{size}.crop"] = torch.tensor([top, left, bottom, right], dtype=torch.int64)
        # grid positions as the two helpers compute them (expressions of the original get_3d_rotary_pos_embed,
        # verified below against the tables they produce)
        grids = {
            "fun": (torch.from_numpy(np.linspace(0, REAL_T_5B, REAL_T_5B, endpoint=False, dtype=np.float32)),
                    torch.from_numpy(np.linspace(top, bottom, hh, endpoint=False, dtype=np.float32)),
                    torch.from_numpy(np.linspace(left, right, ww, endpoint=False, dtype=np.float32))),
            "diffusers": (torch.linspace(0, REAL_T_5B * (REAL_T_5B - 1) / REAL_T_5B, REAL_T_5B, dtype=torch.float32),
                          torch.linspace(top, bottom * (hh - 1) / hh, hh, dtype=torch.float32),
                          torch.linspace(left, right * (ww - 1) / ww, ww, dtype=torch.float32)),
        }
        for impl, pipe in (("fun", "fun"), ("diffusers", "t2v")):
            cos, sin = pipeline_rope(pipe, REAL_5B, H, W, REAL_T_5B)
            assert cos.shape == (REAL_T_5B * hh * ww, 64)
            check_rope_grid(cos, sin, grids[impl], 64, REAL_T_5B, hh, ww)
            for axis, g in zip(("t", "h", "w"), grids[impl]):
                tables[f"rope.{impl}.{size}.grid_{axis}"] = g.contiguous()
            seed += 1
            src = ("CogVideoX_Fun_Pipeline_Inpaint._prepare_rotary_positional_embeddings" if impl == "fun"
                   else "diffusers CogVideoXPipeline._prepare_rotary_positional_embeddings")
            extra = {"height": H, "width": W, "latent_frames": REAL_T_5B, "crop": [[top, left], [bottom, right]],
                     "head_dim": 64, "base_grid_hw": [30, 45]}
            add_table(tables, index, f"rope.{impl}.{size}.cos", cos, seed, src, extra)
            add_table(tables, index, f"rope.{impl}.{size}.sin", sin, seed, src, extra)  # same rows as cos
        print(f"  rope {size}: crop {crop_fun}")

    # 1.5 "slice" RoPE, 768x1360 @ 81 frames
    H, W = SIZE_15
    hh, ww = H // 16, W // 16
    for impl, pipe, T_lat in (("diffusers", "t2v", REAL_T_15_DIFFUSERS), ("fun", "fun", REAL_T_15_FUN)):
        cos, sin = pipeline_rope(pipe, REAL_15, H, W, T_lat)
        Tp = (T_lat + 1) // 2
        assert cos.shape == (Tp * hh * ww, 64)
        check_rope_grid(cos, sin, (torch.arange(Tp, dtype=torch.float32), torch.arange(hh, dtype=torch.float32),
                                   torch.arange(ww, dtype=torch.float32)), 64, Tp, hh, ww)
        seed += 1
        src = (f"{'CogVideoX_Fun_Pipeline_Inpaint' if impl == 'fun' else 'diffusers CogVideoXPipeline'}"
               "._prepare_rotary_positional_embeddings (patch_size_t 2, grid_type slice)")
        extra = {"height": H, "width": W, "latent_frames": T_lat, "rope_frames": Tp, "head_dim": 64,
                 "max_size_hw": [150, 150]}
        add_table(tables, index, f"rope15.{impl}.{H}x{W}.cos", cos, seed, src, extra)
        add_table(tables, index, f"rope15.{impl}.{H}x{W}.sin", sin, seed, src, extra)

    # 2b sincos PE (D = 1920): Fun's trilinear interpolation of the stored 13x30x45 table vs diffusers' recompute.
    pe_args = dict(patch_size=2, patch_size_t=None, in_channels=1, embed_dim=D_2B, text_embed_dim=1, bias=True,
                   sample_width=90, sample_height=60, sample_frames=49, temporal_compression_ratio=4,
                   max_text_seq_length=TEXT_LEN, spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0,
                   use_positional_embeddings=True, use_learned_positional_embeddings=False)
    pe_modules = {"fun": FunPatchEmbed(**pe_args).eval(), "diffusers": DiffusersPatchEmbed(**pe_args).eval()}
    for (H, W) in TABLE_SIZES:
        size = f"{H}x{W}"
        h, w = H // 8, W // 8
        seed += 1
        for impl, m in pe_modules.items():
            with torch.no_grad():
                full = zero_weight_output(m, torch.zeros(1, TEXT_LEN, 1), torch.zeros(1, REAL_T_5B, 1, h, w))[0]
            assert full.dtype == torch.float32 and torch.count_nonzero(full[:TEXT_LEN]) == 0
            video = full[TEXT_LEN:]
            assert video.shape == (REAL_T_5B * (h // 2) * (w // 2), D_2B)
            src = ("CogVideoX-Fun CogVideoXPatchEmbed.forward (pos_embedding 13x30x45 -> F.interpolate trilinear)"
                   if impl == "fun" else "diffusers CogVideoXPatchEmbed.forward (_get_positional_embeddings recompute)")
            add_table(tables, index, f"pe.{impl}.{size}", video, seed, src,
                      {"height": H, "width": W, "latent_frames": REAL_T_5B, "token_grid_thw": [13, h // 2, w // 2],
                       "note": "video rows only; the full added table is concat(zeros[226, D], this)"},
                      n_rows=PE_ROWS)
            del full, video
        print(f"  pe {size}")

    path = os.path.join(OUT_DIR, "tables.safetensors")
    save_file({k: tables[k].contiguous() for k in sorted(tables)}, path,
              metadata={"generator": "reference/gen_transformer.py"})
    with open(os.path.join(OUT_DIR, "tables.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump({"file": "tables.safetensors", "diffusers": diffusers.__version__, "cogvideox_fun": "6c39567",
                   "row_subsample": "rows[i] = index into the full table of stored row i (first 8, sorted pseudo-"
                                    "random middle rows, last 8); .shape = full table shape",
                   "tables": index}, f, indent=1)
        f.write("\n")


# --------------------------------------------------------------------------------------


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    print(f"torch {torch.__version__}  diffusers {diffusers.__version__}  safetensors {safetensors.__version__}  "
          f"numpy {np.__version__}")
    os.makedirs(OUT_DIR, exist_ok=True)
    for f in os.listdir(OUT_DIR):
        if f.endswith(".safetensors") or f.endswith(".json"):
            os.remove(os.path.join(OUT_DIR, f))

    cases_index = {}
    for vi, v in enumerate(VARIANTS):
        model, ckpt_dir = write_checkpoint(v, vi)
        print(f"{v['name']}: {model_class(v).__module__}.{model_class(v).__name__} -> {os.path.relpath(ckpt_dir, REPO)}")
        if v["name"] == "fun-2b-inp":
            dst = os.path.join(PIPE_DIR, "transformer")
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(ckpt_dir, dst)
            merge_model_index()
        for ci, (h, w, T) in enumerate(v["cases"]):
            name, shapes = write_case(v, vi, ci, model, h, w, T)
            cases_index[name] = shapes

    with open(os.path.join(OUT_DIR, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump({"dropped_keys": list(DROPPED_KEYS), "cases": cases_index}, f, indent=1)
        f.write("\n")

    print("tables")
    write_tables()

    print("files")
    total = 0
    paths = sorted(os.path.join(OUT_DIR, f) for f in os.listdir(OUT_DIR))
    for v in VARIANTS:
        d = os.path.join(FIXTURES, f"tiny-{v['name']}", "transformer")
        paths += sorted(os.path.join(d, f) for f in os.listdir(d))
    d = os.path.join(PIPE_DIR, "transformer")
    paths += sorted(os.path.join(d, f) for f in os.listdir(d)) + [os.path.join(PIPE_DIR, "model_index.json")]
    for p in paths:
        n = os.path.getsize(p)
        total += n
        print(f"  {n:9d}  {os.path.relpath(p, REPO)}")
    print(f"  {total:9d}  total")


if __name__ == "__main__":
    main()
