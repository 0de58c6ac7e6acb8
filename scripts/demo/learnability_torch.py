"""Diagnostic, not the product's trainer: can this transformer learn the world at all, and how many steps does it
take? The ORIGINAL classes (CogVideoX-Fun's CogVideoXTransformer3DModel, its VAE, transformers' T5) trained in
PyTorch on the world's latents, 5-7x faster per step than `cogvideox-fun train` with Fun's masks here, with two
simplifications that make it a probe rather than Fun's objective:
  - conditioning: half the rows text to video (inpaint latents 0, what Fun gives 90 % of full masks), half "first frame
    given": mask channel 1 on latent frame 0, the clip's own frame-0 posterior mean there, zeros elsewhere (Fun encodes
    the masked video instead; the VAE's spatio-temporal GroupNorm makes that differ from the clip's frame 0);
  - one fixed 17-frame window per clip, 64 clips (the last ones) kept out for the eval losses.
The rest is train.py's: DDPMScheduler from the folder, uniform timesteps, v-prediction target, MSE, AdamW (wd 1e-2,
eps 1e-8), gradient clip 1.0, T5 embeddings without an attention mask (train.py:1508-1519).
The saved transformer goes in a copy of the model folder for bench/demo_quality.ts (scripts/demo/README.md, "Can the
transformer learn the world?").

  prep:  python3 learnability_torch.py prep --model DIR --out data.pt [--n 2000]   (~25 min: 0.7 s per clip)
  train: python3 learnability_torch.py train --model DIR --data data.pt --out RUN [--rope 1] [--minutes 50]
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "reference"))
import gen_pipelines as gp  # noqa: E402  (shim before transformers; the Fun classes)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import DDPMScheduler  # noqa: E402
from diffusers.models.embeddings import get_3d_rotary_pos_embed  # noqa: E402
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid  # noqa: E402
from transformers import T5EncoderModel, T5Tokenizer  # noqa: E402


def prep(a):
    meta = json.load(open(os.path.join(a.world, "metadata-videos.json")))[: a.n]
    vae = gp.FunVAE.from_pretrained(a.model, subfolder="vae", torch_dtype=torch.float32).eval()
    te = T5EncoderModel.from_pretrained(a.model, subfolder="text_encoder").eval()
    tok = T5Tokenizer.from_pretrained(a.model, subfolder="tokenizer")
    rng = np.random.default_rng(0)
    moms, t0 = [], time.time()
    with torch.no_grad():
        for i, m in enumerate(meta):
            raw = subprocess.run(["ffmpeg", "-v", "quiet", "-i", os.path.join(a.world, m["file_path"]), "-f", "rawvideo",
                                  "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
            fr = np.frombuffer(raw, np.uint8).reshape(-1, 64, 96, 3)
            s = int(rng.integers(0, fr.shape[0] - 17 + 1))
            x = torch.from_numpy(fr[s:s + 17].astype(np.float32) / 255 * 2 - 1).permute(3, 0, 1, 2)[None]
            moms.append(vae.encode(x)[0].parameters[0].clone())
            if i % 200 == 0:
                print(i, f"{time.time() - t0:.0f}s", flush=True)
        texts = [m["text"] for m in meta]
        ids = tok(texts, padding="max_length", max_length=a.text_len, truncation=True, add_special_tokens=True, return_tensors="pt")
        embeds = te(ids.input_ids)[0]  # no attention mask, as train.py and the pipelines
    torch.save({"moments": torch.stack(moms), "embeds": embeds.clone(), "texts": texts}, a.out)


def train(a):
    torch.manual_seed(a.seed)
    D = torch.load(a.data)
    sf = json.load(open(os.path.join(a.model, "vae", "config.json")))["scaling_factor"]
    mom, emb = D["moments"], D["embeds"]
    N = mom.shape[0]
    NE = min(64, N // 4)
    tr, ev = np.arange(N - NE), np.arange(N - NE, N)
    cfg = json.load(open(os.path.join(a.model, "transformer", "config.json")))
    cfg["use_rotary_positional_embeddings"] = bool(a.rope)
    if a.init:
        with contextlib.redirect_stdout(io.StringIO()):
            model = gp.FunTransformer.from_pretrained_2d(a.init, subfolder="transformer", torch_dtype=torch.float32)
        model.register_to_config(use_rotary_positional_embeddings=bool(a.rope))
    else:
        model = gp.FunTransformer.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
    model.train()
    ac = DDPMScheduler.from_pretrained(a.model, subfolder="scheduler").alphas_cumprod.float()
    C = mom.shape[1] // 2
    F, h, w = mom.shape[2:]
    rope = None
    if a.rope:  # pipeline_cogvideox_inpaint.py _prepare_rotary_positional_embeddings, CogVideoX 1.0 branch
        ps = cfg["patch_size"]
        crops = get_resize_crop_region_for_grid((h // ps, w // ps), cfg["sample_width"] // ps, cfg["sample_height"] // ps)
        rope = get_3d_rotary_pos_embed(embed_dim=cfg["attention_head_dim"], crops_coords=crops, grid_size=(h // ps, w // ps), temporal_size=F)

    def batch(idx, g, first_frame):
        m = mom[idx]
        mean, logv = m[:, :C], m[:, C:]
        x0 = ((mean + torch.exp(0.5 * logv.clamp(-30, 20)) * torch.randn(mean.shape, generator=g)) * sf).permute(0, 2, 1, 3, 4)
        inp = torch.zeros(len(idx), F, C + 1, h, w)
        for j in range(len(idx)):
            if first_frame[j]:
                inp[j, 0, 0] = 1.0
                inp[j, 0, 1:] = mean[j, :, 0]
        return x0, inp * sf

    def v_loss(x0, inp, e, t, g, per_frame=False):
        noise = torch.randn(x0.shape, generator=g)
        s1, s2 = ac[t].sqrt().view(-1, 1, 1, 1, 1), (1 - ac[t]).sqrt().view(-1, 1, 1, 1, 1)
        pred = model(hidden_states=s1 * x0 + s2 * noise, encoder_hidden_states=e, timestep=t, inpaint_latents=inp,
                     image_rotary_emb=rope, return_dict=False)[0]
        err = (pred.float() - (s1 * noise - s2 * x0)) ** 2
        return err.mean(dim=(0, 2, 3, 4)) if per_frame else err.mean()

    def evaluate():
        """v-loss per latent frame on the held-aside clips: text to video and first frame given, t = 999 and 700."""
        model.eval()
        g, out, idx = torch.Generator().manual_seed(123), {}, torch.from_numpy(ev)
        with torch.no_grad():
            for name, ff, tt in (("t2v999", 0, 999), ("ff999", 1, 999), ("t2v700", 0, 700), ("ff700", 1, 700)):
                x0, inp = batch(idx, g, [ff] * NE)
                out[name] = [round(v, 3) for v in v_loss(x0, inp, emb[idx], torch.full((NE,), tt), g, True).tolist()]
        model.train()
        return out

    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    os.makedirs(a.out, exist_ok=True)
    print("params", sum(p.numel() for p in model.parameters()), "eval", evaluate(), flush=True)
    if a.eval_only:
        return
    g, rng = torch.Generator().manual_seed(a.seed), np.random.default_rng(a.seed)
    t0, losses = time.time(), []
    for step in range(1, a.steps + 1):
        for pg in opt.param_groups:
            pg["lr"] = a.lr * min(1, step / 100)
        idx = torch.from_numpy(rng.choice(tr, a.batch, replace=False))
        x0, inp = batch(idx, g, (rng.random(a.batch) >= a.t2v).astype(int))
        loss = v_loss(x0, inp, emb[idx], torch.randint(0, 1000, (a.batch,), generator=g), g)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        done = (time.time() - t0) / 60 > a.minutes
        if step % 200 == 0 or done:
            print(f"step {step} loss {np.mean(losses[-200:]):.4f} {(time.time() - t0) / step:.3f}s/step", flush=True)
        if step % a.save_every == 0 or done:
            print("eval", step, evaluate(), flush=True)
            model.save_pretrained(os.path.join(a.out, "transformer"), safe_serialization=True)
        if done:
            break


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("prep")
    q.add_argument("--model", required=True)
    q.add_argument("--world", default="/work/demo-run/world")
    q.add_argument("--out", required=True)
    q.add_argument("--n", type=int, default=2000)
    q.add_argument("--text-len", type=int, default=32)
    t = sub.add_parser("train")
    t.add_argument("--model", required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--rope", type=int, default=1)
    t.add_argument("--init", default="")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--steps", type=int, default=10 ** 6)
    t.add_argument("--minutes", type=float, default=50)
    t.add_argument("--t2v", type=float, default=0.5)
    t.add_argument("--save-every", type=int, default=1000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-only", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(2)
    prep(a) if a.cmd == "prep" else train(a)
