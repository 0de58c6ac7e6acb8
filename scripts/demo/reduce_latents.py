#!/usr/bin/env python3
"""Rewrites a demo model folder with fewer VAE latent channels (16 → K, default 5), keeping what the VAE and the
transformer learned. Why: the transformer patches the latent 4×4, so with 16 channels a token carries 4·4·33 = 528
input and 4·4·16 = 256 output numbers through a width of 192. The noise it must predict is isotropic over all 256
output dimensions, so at least a quarter of it cannot be predicted (measured at step 7950: v-loss 0.47 at t = 10 and
0.32 at t = 100; generations keep coloured speckle, i2v frame 0 reaches 17.7 dB). With K = 5 a token carries 176 in
and 80 out, below the width, as in the released models (2b: 2·2·33 = 132 in, width 1920). Reconstruction PSNR of
the step-7800 VAE after the projection, before any decoder training (17 clips; 16 channels 29.3–29.5 dB): K = 4
24.8 dB, K = 5 28.2 dB (--clips 200); K = 5 27.3 dB, K = 6 28.2 dB (--clips 100). K = 6 would carry 208 inputs per
token, above the width.

How: the world's latents live mostly in a few directions (of their 16×16 second moment, the top 5 eigenvalues hold
96 % at step 7800 of the VAE). With V the top-K eigenvectors and λ their eigenvalues, z_K = diag(λ)^-½ Vᵀ z (unit
second moment per channel) and z ≈ V diag(λ)^½ z_K = B z_K. Everything that reads or writes z is linear in it:
  VAE encoder conv_out (posterior mean rows) → A = diag(λ)^-½ Vᵀ applied to its output channels (bias too);
    log-variance rows → constant (the mean measured posterior variance carried through A);
  VAE decoder conv_in and every SpatialNorm3D conv_y / conv_b (they read z) → their input channels times B.
  So new_decoder(z_K) == old_decoder(B z_K) exactly (uncentred moment: no constant to absorb, checked below).
  Transformer patch_embed.proj: noisy and masked-latent input channels times B·sf/sf_K; proj_out rows: A·sf_K/sf
    over the channel axis of its (C, p, p) output layout (transformer3d.py:641-642). The inner blocks are kept. This
    is only a starting point (the noise now lives in K dimensions, not 16); `cogvideox-fun train` goes on from it.
Latents come from the ORIGINAL classes (CogVideoX-Fun's AutoencoderKLCogVideoX) on the first 17 frames of --clips
world clips spread over the world. Prints the eigenvalue shares, the decoder check and reconstruction PSNR before/after.
  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf:/work/pyref/src/diffusers-0.32.2/src:/work/pyref/src/CogVideoX-Fun \
    /usr/bin/python3 scripts/demo/reduce_latents.py --model DIR --world WORLD --out OUT [--transformer DIR] [--channels 5] [--clips 200]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "reference"))
import shim  # noqa: E402,F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from cogvideox.models.autoencoder_magvit import AutoencoderKLCogVideoX  # noqa: E402

FRAMES = 17


def read_clip(path, frames, height, width):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-frames:v", str(frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    x = np.frombuffer(raw, np.uint8)
    if x.size != frames * height * width * 3:
        raise ValueError(f"{path}: expected {frames} frames of {width}x{height}, got {x.size} bytes")
    x = torch.from_numpy(x.reshape(frames, height, width, 3).astype(np.float32) / 127.5 - 1)
    return x.permute(3, 0, 1, 2)[None]  # [1, 3, F, H, W]


def psnr(a, b):
    mse = torch.mean(((a.clamp(-1, 1) - b) * 127.5) ** 2).item()
    return 10 * np.log10(255 ** 2 / mse)


def load_weights(folder):
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .safetensors file")
    out = {}
    for f in files:
        out.update(load_file(os.path.join(folder, f)))
    return out


def contract_in(w, m):
    """w [out, C, ...] with input channels C → [out, K, ...]: w' = w · m, m [C, K]."""
    return torch.einsum("oc...,ck->ok...", w.double(), m).to(w.dtype).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="model folder (vae/, transformer/, …)")
    ap.add_argument("--transformer", help="transformer folder to carry over (default: MODEL/transformer), e.g. train-state/demo-dit/transformer")
    ap.add_argument("--world", required=True, help="make-world folder (metadata.json, videos/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--channels", type=int, default=5)
    ap.add_argument("--clips", type=int, default=200)
    a = ap.parse_args()
    if os.path.exists(a.out):
        raise FileExistsError(f"--out {a.out} exists")
    torch.set_grad_enabled(False)
    vae_dir = os.path.join(a.model, "vae")
    vcfg = json.load(open(os.path.join(vae_dir, "config.json")))
    C, K = vcfg["latent_channels"], a.channels
    if not 0 < K < C:
        raise ValueError(f"--channels must be in [1, {C - 1}] (the VAE has {C}), got {K}")
    vae = AutoencoderKLCogVideoX.from_pretrained(vae_dir).eval()
    meta = json.load(open(os.path.join(a.world, "metadata.json")))
    videos = [m for m in meta if m.get("type", "video") == "video"]
    if len(videos) < a.clips:
        raise ValueError(f"{a.world}: {len(videos)} clips, --clips {a.clips}")
    pick = [videos[round(i * (len(videos) - 1) / max(a.clips - 1, 1))] for i in range(a.clips)]

    # 1. posterior means of the clips, and the second moment over channels
    clips, means, logvars = [], [], []
    for i, m in enumerate(pick):
        x = read_clip(os.path.join(a.world, m["file_path"]), FRAMES, m["height"], m["width"])
        mom = vae._encode(x)  # [1, 2C, f, h, w] (mean, logvar)
        clips.append(x)
        means.append(mom[:, :C])
        logvars.append(mom[:, C:])
        if (i + 1) % 50 == 0:
            print(f"encoded {i + 1}/{len(pick)}", flush=True)
    z = torch.cat([t.permute(0, 2, 3, 4, 1).reshape(-1, C) for t in means]).double()
    second = z.T @ z / z.shape[0]
    lam, vec = torch.linalg.eigh(second)
    lam, vec = lam.flip(0), vec.flip(1)
    # an eigenvector's sign is arbitrary (LAPACK builds may differ): make each one's largest entry positive, so the
    # folder (and the latents a transformer was trained on) can be rebuilt on another machine
    vec = vec * torch.sign(vec.gather(0, vec.abs().argmax(0, keepdim=True)))
    share = torch.cumsum(lam, 0) / lam.sum()
    print("second-moment eigenvalues:", " ".join(f"{v:.3f}" for v in lam.tolist()))
    print("cumulative share:", " ".join(f"{v:.4f}" for v in share.tolist()))
    V, L = vec[:, :K], lam[:K]
    A = torch.diag(L.rsqrt()) @ V.T  # [K, C]: z_K = A z
    B = V @ torch.diag(L.sqrt())  # [C, K]: z ≈ B z_K
    var = torch.cat([t.permute(0, 2, 3, 4, 1).reshape(-1, C) for t in logvars]).double().exp().mean(0)
    logvar_k = torch.log((A ** 2) @ var)  # posterior variance carried through A (σ ≈ e^-5: negligible beside 1)
    zk = z @ A.T
    sf_old = vcfg["scaling_factor"]
    sf_new = float(f"{1 / zk.std().item():.8g}")
    print(f"K = {K}: share {share[K - 1].item():.4f}; z_K std {zk.std().item():.4f} → scaling_factor {sf_new}; posterior logvar {logvar_k.tolist()}")

    # 2. VAE weights
    vw = load_weights(vae_dir)
    nw = dict(vw)
    wo, bo = vw["encoder.conv_out.conv.weight"], vw["encoder.conv_out.conv.bias"]
    Af = A.to(wo.dtype)
    nw["encoder.conv_out.conv.weight"] = torch.cat([torch.einsum("kc,c...->k...", A, wo[:C].double()).to(wo.dtype),
                                                    torch.zeros_like(wo[:K])]).contiguous()
    nw["encoder.conv_out.conv.bias"] = torch.cat([Af @ bo[:C], logvar_k.to(bo.dtype)]).contiguous()
    readers = [k for k in vw if k.startswith("decoder.") and k.endswith("weight")
               and (k == "decoder.conv_in.conv.weight" or ".conv_y." in k or ".conv_b." in k)]
    for k in readers:
        if vw[k].shape[1] != C:
            raise ValueError(f"{k}: expected {C} input channels, got {list(vw[k].shape)}")
        nw[k] = contract_in(vw[k], B)
    print(f"VAE: encoder.conv_out and {len(readers)} decoder tensors that read z rewritten")
    ncfg = dict(vcfg, latent_channels=K, scaling_factor=sf_new)
    new_vae = AutoencoderKLCogVideoX.from_config(ncfg).eval()
    new_vae.load_state_dict(nw, strict=True)

    # 3. checks: new decoder on z_K equals old decoder on B z_K; reconstruction PSNR before / after
    worst, worst_enc, p_old, p_new = 0.0, 0.0, [], []
    for x, mu in list(zip(clips, means))[:: max(1, len(clips) // 16)]:
        mk = torch.einsum("kc,bc...->bk...", A, mu.double()).float()
        back = torch.einsum("ck,bk...->bc...", B, mk.double()).float()
        y_old = vae.decode(mu).sample
        y_ref = vae.decode(back).sample
        y_new = new_vae.decode(mk).sample
        worst = max(worst, (y_new - y_ref).abs().max().item())
        p_old.append(psnr(y_old, x))
        p_new.append(psnr(y_new, x))
        enc = new_vae._encode(x)[:, :K]
        worst_enc = max(worst_enc, (enc - mk).abs().max().item())
    print(f"new decoder(z_K) vs old decoder(B z_K): max |diff| {worst:.2e}; new encoder mean vs A·old mean: {worst_enc:.2e}")
    print(f"reconstruction PSNR over {len(p_old)} clips: {C} channels {np.mean(p_old):.2f} dB → {K} channels {np.mean(p_new):.2f} dB")
    if worst > 1e-3 or worst_enc > 1e-3:
        raise RuntimeError("the rewritten VAE does not reproduce the projected one")

    # 4. transformer
    tdir = a.transformer or os.path.join(a.model, "transformer")
    tcfg = json.load(open(os.path.join(tdir, "config.json")))
    if tcfg["in_channels"] != 2 * C + 1 or tcfg["out_channels"] != C or tcfg.get("patch_size_t"):
        raise ValueError(f"{tdir}: expected an InP transformer with {2 * C + 1} in / {C} out channels and no temporal patch")
    tw = {k: v.float() for k, v in load_weights(tdir).items()}
    p = tcfg["patch_size"]
    pe = tw["patch_embed.proj.weight"]  # [D, 2C+1, p, p]: noisy latents, mask, masked-video latents
    Bs = B * (sf_old / sf_new)
    tw["patch_embed.proj.weight"] = torch.cat([contract_in(pe[:, :C], Bs), pe[:, C:C + 1], contract_in(pe[:, C + 1:], Bs)], 1).contiguous()
    As = A * (sf_new / sf_old)
    po, pb = tw["proj_out.weight"], tw["proj_out.bias"]  # [C·p·p, D], rows in (C, p, p) order
    D = po.shape[1]
    tw["proj_out.weight"] = torch.einsum("kc,cqd->kqd", As, po.reshape(C, p * p, D).double()).reshape(K * p * p, D).to(po.dtype).contiguous()
    tw["proj_out.bias"] = torch.einsum("kc,cq->kq", As, pb.reshape(C, p * p).double()).reshape(-1).to(pb.dtype).contiguous()

    # 5. write into a temporary folder beside --out, renamed when complete (no half-written model folder)
    out = a.out.rstrip("/") + ".partial"
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name in os.listdir(a.model):
        src = os.path.join(a.model, name)
        if name in ("vae", "transformer"):
            continue
        (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(out, name))
    os.makedirs(os.path.join(out, "vae"))
    new_vae.save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
    os.makedirs(os.path.join(out, "transformer"))
    json.dump(dict(tcfg, in_channels=2 * K + 1, out_channels=K), open(os.path.join(out, "transformer", "config.json"), "w"), indent=2)
    save_file(tw, os.path.join(out, "transformer", "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    os.rename(out, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
