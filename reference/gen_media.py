#!/usr/bin/env python3
"""Reference fixtures for src/media, produced by the ORIGINAL libraries (Pillow 12.3, OpenCV, CogVideoX-Fun 6c39567).

What is recorded (all under test/fixtures/media/, cases in cases.json, arrays in media.safetensors, u8 HWC):
  - Pillow `Image.resize((w, h), filter)` of small RGB and L images, every filter, up/down/odd ratios/one axis/1x1.
  - Pillow decoding: `Image.open(f).convert("RGB")` and `.convert("L")` of PNG (every colour type and bit depth
    Pillow maps to 8 bits, palette + tRNS, Adam7), JPEG (4:2:0, 4:4:4, progressive, grey), WebP (lossy,
    lossless + alpha) and GIF (first frame). 16-bit RGB, 2-bit grey and Adam7 PNGs are written by hand below
    (Pillow cannot write them); everything else is written by Pillow.
  - OpenCV: `cv2.resize(src, (w, h))` (INTER_LINEAR, the V2V default) on 8-bit 3-channel images, incl. the exact-2x
    shrink that OpenCV routes to INTER_AREA and the same-size copy.
  - Videos: clip.mp4 (H.264 High profile with B-frames, 24 fps, written by PyAV/libx264) and clip.gif (Pillow,
    8 fps, frame-difference crops). For each: what `cv2.VideoCapture` returns (CAP_PROP_FPS, frame count, the
    frames `get_video_to_video_latent` keeps, unresized), and the output of CogVideoX-Fun's own
    `get_video_to_video_latent(path, video_length, sample_size, fps=8)` (cv2 read, `int(fps // 8)` frame skip,
    INTER_LINEAR resize, BGR->RGB), stored as round(x * 255) u8.

cv2 and PyAV are not in the main reference environment; install them into their own folder (no deps):

  /usr/bin/python3 -m pip install --no-deps --target /work/pyref/site-cv2 opencv-python-headless==4.14.0.94 av==18.1.0

and run from the repository root (deterministic: two runs give byte-identical files):

  PYTHONPATH=reference:/work/pyref/site-cv2:/work/pyref/site:/work/pyref/src/CogVideoX-Fun /usr/bin/python3 reference/gen_media.py
"""

import io
import json
import os
import struct
import sys
import types
import zlib

import numpy as np
from PIL import Image, features
from safetensors.numpy import save_file

import cv2  # noqa: E402
import av  # noqa: E402
import PIL

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "fixtures", "media")
IMG = os.path.join(OUT, "images")

# CogVideoX-Fun's utils imports imageio and torchvision at module level; the V2V helper uses neither.
_STUBS = ("imageio", "torchvision")
for _m in _STUBS:
    assert _m not in sys.modules
    sys.modules[_m] = types.ModuleType(_m)
from cogvideox.utils.utils import get_video_to_video_latent  # noqa: E402

for _m in _STUBS:
    del sys.modules[_m]

tensors: dict[str, np.ndarray] = {}
cases: dict = {
    "versions": {
        "pillow": PIL.__version__,
        "opencv": cv2.__version__,
        "pyav": av.__version__,
        "libjpeg": features.version("jpg"),
        "libwebp": features.version("webp"),
    }
}


def put(name: str, arr: np.ndarray) -> str:
    arr = np.ascontiguousarray(arr)
    assert arr.dtype == np.uint8, (name, arr.dtype)
    assert name not in tensors, name
    tensors[name] = arr
    return name


def test_image(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    """Smooth gradients + sharp edges + noise: exercises negative lobes and clipping of the filters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [
        127 + 120 * np.sin(x / max(w, 1) * 5 + c) * np.cos(y / max(h, 1) * 3 - c) for c in range(channels)
    ]
    img = np.stack(planes, -1)
    img[(x.astype(int) // 4 + y.astype(int) // 5) % 3 == 0] = 255  # hard edges
    img[h // 2 : h // 2 + 2, :] = 0
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --- Pillow resize ------------------------------------------------------------------------------------------------
FILTERS = {
    "nearest": Image.NEAREST,
    "box": Image.BOX,
    "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}
RESIZE_SOURCES = {
    # name: (array, list of (w, h) targets)
    "rgb": (test_image(23, 31, 1), [(16, 12), (41, 29), (7, 33), (31, 9), (13, 23), (1, 1), (23, 31), (31, 23)]),
    "l": (test_image(29, 19, 2, 1)[..., 0], [(10, 14), (27, 40), (5, 17), (19, 7), (11, 29), (1, 1), (29, 19)]),
    "lbig": (test_image(90, 120, 3, 1)[..., 0], [(13, 9), (48, 32), (7, 70)]),  # large factors: wide support
}
resize_cases = []
for src_name, (arr, targets) in RESIZE_SOURCES.items():
    im = Image.fromarray(arr)
    put(f"resize.{src_name}.input", arr)
    for w, h in targets:
        for fname, f in FILTERS.items():
            if src_name == "rgb" and fname in ("box", "hamming"):
                continue  # same code path as the other filters; covered by the L sources
            out = np.array(im.resize((w, h), f))
            key = put(f"resize.{src_name}.{fname}.{w}x{h}", out)
            resize_cases.append({"source": f"resize.{src_name}.input", "mode": im.mode, "filter": fname,
                                 "width": w, "height": h, "key": key})
cases["resize"] = resize_cases


# --- image decoding -----------------------------------------------------------------------------------------------
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_raw(path: str, w: int, h: int, depth: int, color_type: int, rows: list[bytes], interlace: int = 0,
                  passes: list[list[bytes]] | None = None) -> None:
    """Minimal PNG writer (filter type 0) for layouts Pillow cannot write; `passes` for Adam7."""
    raw = b""
    for p in (passes if interlace else [rows]):
        raw += b"".join(b"\x00" + r for r in p)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace))
    data += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    with open(path, "wb") as fh:
        fh.write(data)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_images() -> list[dict]:
    os.makedirs(IMG, exist_ok=True)
    h, w = 11, 13
    rgb = test_image(h, w, 10)
    alpha = np.linspace(0, 255, h * w).reshape(h, w).astype(np.uint8)
    gray = test_image(h, w, 11, 1)[..., 0]
    files = {}

    def save(name: str, im: Image.Image, **kw) -> None:
        im.save(os.path.join(IMG, name), **kw)
        files[name] = None

    save("rgb.png", Image.fromarray(rgb))
    save("rgba.png", Image.fromarray(np.dstack([rgb, alpha])))
    save("l.png", Image.fromarray(gray))
    save("la.png", Image.fromarray(np.dstack([gray, alpha]), "LA"))
    pal = Image.fromarray(rgb).quantize(200, dither=Image.Dither.NONE)
    save("p.png", pal)
    pal16 = Image.fromarray(rgb).quantize(16, dither=Image.Dither.NONE)
    save("p4.png", pal16)  # Pillow writes 16 colours as a 4-bit palette
    pt = pal.copy()
    save("p_trns.png", pt, transparency=3)
    save("bits1.png", Image.fromarray(gray > 128))
    save("l16.png", Image.fromarray((gray.astype(np.uint16) * 3 + 7).astype(np.uint16)))  # I;16 with values > 255
    # 16-bit RGBA (Pillow keeps the high byte) and 2-bit grey (Pillow scales by 85), written by hand.
    rgba16 = np.dstack([rgb, alpha]).astype(np.uint16) * 257 + np.arange(h * w * 4).reshape(h, w, 4).astype(np.uint16) % 200
    write_png_raw(os.path.join(IMG, "rgba16.png"), w, h, 16, 6, [r.astype(">u2").tobytes() for r in rgba16])
    files["rgba16.png"] = None
    g2 = (gray // 64).astype(np.uint8)
    rows2 = []
    for r in g2:
        bits = 0
        out = bytearray()
        for i, v in enumerate(r):
            bits = (bits << 2) | int(v)
            if i % 4 == 3:
                out.append(bits)
                bits = 0
        if w % 4:
            out.append(bits << (2 * (4 - w % 4)))
        rows2.append(bytes(out))
    write_png_raw(os.path.join(IMG, "l2.png"), w, h, 2, 0, rows2)
    files["l2.png"] = None
    passes = []
    for x0, y0, dx, dy in ADAM7:
        sub = rgb[y0::dy, x0::dx]
        passes.append([r.tobytes() for r in sub] if sub.shape[0] and sub.shape[1] else [])
    write_png_raw(os.path.join(IMG, "rgb_adam7.png"), w, h, 8, 2, [], interlace=1, passes=passes)
    files["rgb_adam7.png"] = None

    big = test_image(37, 53, 12)  # JPEG/WebP need some size for their block structure to matter
    save("rgb420.jpg", Image.fromarray(big), quality=85)
    save("rgb444.jpg", Image.fromarray(big), quality=92, subsampling=0)
    save("progressive.jpg", Image.fromarray(big), quality=80, progressive=True)
    save("gray.jpg", Image.fromarray(big[..., 1]), quality=85)
    save("lossy.webp", Image.fromarray(big), quality=80)
    save("lossless_alpha.webp", Image.fromarray(np.dstack([rgb, alpha])), lossless=True)
    save("frame0.gif", pal)

    out = []
    for name in files:
        im = Image.open(os.path.join(IMG, name))
        mode = im.mode
        rgb_key = put(f"decode.{name}.rgb", np.array(im.convert("RGB")))
        l_key = put(f"decode.{name}.l", np.array(Image.open(os.path.join(IMG, name)).convert("L")))
        out.append({"file": f"images/{name}", "pil_mode": mode, "rgb": rgb_key, "l": l_key})
    return out


cases["decode"] = write_images()

def formula_image(h: int, w: int) -> np.ndarray:
    """Large input defined by integer arithmetic so the test can rebuild it instead of storing 1 MB."""
    y, x, c = np.mgrid[0:h, 0:w, 0:3]
    return ((x * 7 + y * 13 + c * 50 + (x * y) % 31) % 256).astype(np.uint8)


# --- cv2.resize INTER_LINEAR ----------------------------------------------------------------------------------------
cv_cases = []
for sname, (sh, sw), targets in [
    ("a", (17, 23), [(11, 8), (46, 34), (40, 13), (7, 5), (13, 30), (23, 17), (48, 32), (22, 16)]),
    ("b", (18, 24), [(12, 9), (16, 12), (30, 20), (5, 3)]),  # (12, 9): exact 2x shrink -> INTER_AREA path
    ("c", (480, 720), [(48, 32), (80, 53)]),  # a real frame size; input rebuilt by the test (formula)
]:
    src = formula_image(sh, sw) if sname == "c" else test_image(sh, sw, 20 + ord(sname))
    if sname != "c":
        put(f"cv2.{sname}.input", src)
    for w, h in targets:
        key = put(f"cv2.{sname}.{w}x{h}", cv2.resize(src, (w, h)))
        source = "formula" if sname == "c" else f"cv2.{sname}.input"
        cv_cases.append({"source": source, "src_height": sh, "src_width": sw, "width": w, "height": h, "key": key})
cases["cv2_resize"] = cv_cases


# --- videos -------------------------------------------------------------------------------------------------------
def video_frames(n: int, h: int, w: int) -> list[np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for i in range(n):
        r = 128 + 100 * np.sin(x / w * 4 + i * 0.3)
        g = 128 + 100 * np.cos(y / h * 3 - i * 0.2)
        b = 60 + 150 * ((x + 2 * y + 5 * i) % 40 > 20)
        f = np.stack([r, g, b], -1)
        f[2:8, 2 + 2 * i : 8 + 2 * i] = [255, 255, 0]  # moving marker: which frame is this
        frames.append(np.clip(np.rint(f), 0, 255).astype(np.uint8))
    return frames


def write_mp4(path: str, frames: list[np.ndarray], fps: int, x264_params: str = "") -> None:
    c = av.open(path, "w", format="mp4")
    s = c.add_stream("libx264", rate=fps)
    s.width, s.height = frames[0].shape[1], frames[0].shape[0]
    s.pix_fmt = "yuv420p"
    s.options = {"crf": "16", "preset": "medium", "bf": "2", "threads": "1", **({"x264-params": x264_params} if x264_params else {})}
    c.metadata["comment"] = "cogvideox-fun-tfjs test clip"
    for f in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()


def cv2_read_all(path: str) -> tuple[float, list[np.ndarray]]:
    cap = cv2.VideoCapture(path)
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(fr, cv2.COLOR_BGR2RGB))
    cap.release()
    return fps, frames


def fun_v2v(path: str, video_length: int, sample_size: tuple[int, int]) -> np.ndarray:
    video, _, _ = get_video_to_video_latent(path, video_length=video_length, sample_size=sample_size, fps=8)
    arr = np.rint(video[0].permute(1, 2, 3, 0).numpy().astype(np.float64) * 255)  # [F, H, W, 3]
    assert arr.min() >= 0 and arr.max() <= 255
    return arr.astype(np.uint8)


video_cases = []
mp4 = os.path.join(OUT, "clip.mp4")
write_mp4(mp4, video_frames(17, 32, 48), 24)
pil_gif = [Image.fromarray(f).quantize(64, dither=Image.Dither.NONE) for f in video_frames(6, 20, 28)]
gif = os.path.join(OUT, "clip.gif")
pil_gif[0].save(gif, save_all=True, append_images=pil_gif[1:], duration=125, loop=0, optimize=False)
for name, path, v2v in [("mp4", mp4, [(5, (20, 30)), (4, (16, 24))]), ("gif", gif, [(6, (12, 18))])]:
    fps, frames = cv2_read_all(path)
    skip = int(fps // 8)
    kept = [f for i, f in enumerate(frames) if i % skip == 0]
    case = {"name": name, "file": os.path.basename(path), "cv2_fps": fps, "cv2_frame_count": len(frames),
            "frame_skip": skip, "kept": put(f"video.{name}.kept", np.stack(kept)), "v2v": []}
    for length, size in v2v:
        key = put(f"video.{name}.v2v.{length}.{size[0]}x{size[1]}", fun_v2v(path, length, size))
        case["v2v"].append({"video_length": length, "sample_size": list(size), "key": key})
    video_cases.append(case)
cases["video"] = video_cases

# Colour tags: cv2 4.14 converts with the stream's matrix (BT.709 here) and range (full here), not always BT.601.
tagged = []
for name, params in [("clip_bt709.mp4", "colorprim=bt709:transfer=bt709:colormatrix=bt709"),
                     ("clip_fullrange.mp4", "fullrange=on:colormatrix=bt470bg")]:
    path = os.path.join(OUT, name)
    write_mp4(path, video_frames(3, 24, 32), 12, params)
    fps, frames = cv2_read_all(path)
    tagged.append({"file": name, "x264_params": params, "cv2_fps": fps,
                   "frames": put(f"tagged.{name}", np.stack(frames))})
cases["tagged_video"] = tagged

save_file(tensors, os.path.join(OUT, "media.safetensors"))
with open(os.path.join(OUT, "cases.json"), "w") as fh:
    # one case per line: readable diffs without the size of a fully indented file
    fh.write("{\n" + ",\n".join(
        f"{json.dumps(k)}: " + (json.dumps(v) if not isinstance(v, list) else
                                "[\n  " + ",\n  ".join(json.dumps(c) for c in v) + "\n]")
        for k, v in cases.items()) + "\n}\n")
total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
print(f"wrote {len(tensors)} arrays; test/fixtures/media is {total / 1024:.1f} KiB")
