#!/usr/bin/env python3
"""Reference-fixture generator for the T5 tokenizer and T5 text encoder.

Everything written here is produced by the ORIGINAL Hugging Face classes
(`transformers.T5Tokenizer`, `transformers.T5EncoderModel`) and the python
`sentencepiece` trainer, so the TypeScript port can be checked against them.

Outputs (paths relative to the repository root):
  test/fixtures/tiny-cogvideox-fun/tokenizer/      T5Tokenizer.save_pretrained() of a tiny SentencePiece model
  test/fixtures/tiny-cogvideox-fun/text_encoder/   T5EncoderModel.save_pretrained() (2 safetensors shards + index)
  test/fixtures/tiny-cogvideox-fun/model_index.json (merged: only tokenizer/text_encoder keys are written)
  test/fixtures/tokenizer/cases.json               tokenizer(text, padding="max_length", max_length=L, truncation=True)
  test/fixtures/t5/encoder_io.safetensors          per-layer activations, batch of 2 at length 226
  test/fixtures/t5/encoder_io_len16.safetensors    per-layer activations, batch of 1 at length 16

The script is deterministic (fixed seeds, single thread); running it twice must give
byte-identical outputs. Run it from anywhere:

  PYTHONPATH=/work/pyref/site:/work/pyref/site-tf /usr/bin/python3 reference/gen_t5.py
"""

import io
import json
import os
import random
import shutil
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shim  # noqa: E402,F401  (must precede `import transformers`)

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import T5Config, T5EncoderModel, T5Tokenizer  # noqa: E402

transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore")

REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(REPO, "test", "fixtures")
CKPT = os.path.join(FIXTURES, "tiny-cogvideox-fun")
TOK_DIR = os.path.join(CKPT, "tokenizer")
TE_DIR = os.path.join(CKPT, "text_encoder")
CASES_PATH = os.path.join(FIXTURES, "tokenizer", "cases.json")
T5_DIR = os.path.join(FIXTURES, "t5")

SP_VOCAB_SIZE = 1000
SEED = 20240607
MAX_LENGTHS = (226, 16)

NEGATIVE_PROMPT = (
    "The video is not of a high quality, it has a low resolution. Watermark present in each frame. "
    "The background is solid. Strange body and strange trajectory. Distortion. "
)
POSITIVE_PROMPT = (
    "A young woman with beautiful and clear eyes and blonde hair standing and white dress in a forest "
    "wearing a crown. She seems to be lost in thought, and the camera focuses on her face. The video is "
    "of high quality, and the view is very clear. High quality, masterpiece, best quality, highres, "
    "ultra-detailed, fantastic."
)

# --------------------------------------------------------------------------------------
# 1. Corpus + SentencePiece model
# --------------------------------------------------------------------------------------

SUBJECTS = [
    "a panda", "a golden retriever", "a young woman", "an old man", "a little girl", "a robot",
    "a red fox", "a white horse", "a black cat", "two astronauts", "a group of children", "a chef",
    "a hummingbird", "a sea turtle", "a vintage car", "a steam train", "a sailboat", "a dragon",
    "a knight in shining armor", "a street musician", "a dancer", "a polar bear", "a butterfly",
    "a jellyfish", "a tiger", "an eagle", "a lighthouse", "a hot air balloon", "a koala", "a samurai",
]
VERBS = [
    "walking", "running", "dancing", "flying", "swimming", "playing guitar", "reading a book",
    "drinking coffee", "riding a bicycle", "climbing", "jumping", "sleeping", "eating bamboo",
    "looking at the camera", "smiling", "turning its head", "shaking its head", "waving", "singing",
    "painting a picture", "cooking pasta", "floating", "drifting slowly", "spinning", "exploring",
]
PLACES = [
    "in a bamboo forest", "on a sandy beach", "through a field of sunflowers", "in a busy city street",
    "on the surface of the moon", "in a snowy mountain village", "under the sea", "in a cozy kitchen",
    "across a desert", "in a neon lit alley", "beside a quiet lake", "in an ancient temple",
    "on a rooftop in Tokyo", "in a medieval castle", "inside a spaceship", "in a rainy forest",
    "at a night market", "along a river", "in a library", "in a garden full of roses",
]
LIGHT = [
    "at sunset", "at sunrise", "during golden hour", "at night", "under soft moonlight", "in heavy rain",
    "in thick fog", "on a sunny afternoon", "under dramatic clouds", "with warm lighting",
    "with cinematic lighting", "with volumetric light rays", "in a snowstorm", "under a starry sky",
]
CAMERA = [
    "The camera slowly pans to the left.", "The camera zooms in.", "The camera pulls back.",
    "Aerial drone shot.", "Close-up shot.", "Wide angle shot.", "Tracking shot.", "Slow motion.",
    "Time-lapse.", "Handheld camera.", "The camera orbits around the subject.", "Static shot.",
    "Low angle shot.", "Bird's eye view.", "Shallow depth of field.", "The camera tilts up.",
]
STYLE = [
    "cinematic", "photorealistic", "4k", "8k", "ultra-detailed", "high quality", "masterpiece",
    "best quality", "highres", "fantastic", "anime style", "watercolor painting", "oil painting",
    "3D render", "film grain", "vivid colors", "pastel colors", "black and white", "documentary style",
    "sharp focus", "bokeh", "HDR", "vibrant", "dreamy", "moody", "surreal",
]
ADJ = [
    "beautiful", "clear", "small", "tiny", "huge", "bright", "dark", "quiet", "noisy", "gentle",
    "colorful", "ancient", "modern", "mysterious", "peaceful", "strange", "elegant", "fluffy",
    "shiny", "wet", "frozen", "glowing", "misty", "calm", "wild",
]
ACCENTED = [
    "café", "naïve", "résumé", "façade", "jalapeño", "piñata", "crème brûlée", "fiancée", "déjà vu",
    "Zürich", "São Paulo", "Kraków", "Dvořák", "Øresund", "Ångström", "Málaga", "Señor", "Björk",
    "München", "Québec", "Ærøskøbing", "Łódź", "Crêpe", "Über", "Göteborg", "Bogotá", "Reykjavík",
]
CJK_SENTENCES = [
    "猫が東京の街を歩いている。", "一只熊猫在竹林里吃竹子。", "日本の山と川。", "中国的长城。",
    "你好，世界！", "こんにちは世界。", "美しい夕日と海。", "小狗在公园里跑。", "東京の夜景。",
    "熊猫在吃竹子。", "山の上の雪。", "你好。",
]
EMOJI = ["🙂", "🎬", "🌅", "🐼", "❤️", "✨", "🔥", "🐶"]
MISC = [
    "Привет мир.", "Добрый день.", "Straße und Fluss.", "naïve café in São Paulo.",
    "The quick brown fox jumps over the lazy dog.", "Pack my box with five dozen liquor jugs.",
    "Numbers like 1, 2, 3, 10, 24, 30, 49, 60, 100, 226, 480, 720, 1080, 1920, 2024 appear in prompts.",
    "Use https://example.com or email info@example.com for questions.",
    "Hello! How are you? I'm fine; thanks. (Really.) [Yes] {No} #tag @user 50% $5 & more...",
    "“Quoted” text — with ‘dashes’ – and ellipsis…",
]


WORD_BANK = """
about above across action actor actually afternoon again against agent air airplane album alley almost
along already also always amazing amber among ancient angle animal answer apple april arch area arm army
around arrive art artist ash autumn avenue awake baby back badge bakery balance balcony ball band bank
bare barn basket beach beam bean bear beard beautiful because become bed bee before begin behind bell
below bench berry beside between beyond bicycle big bird birthday bitter blade blanket blossom blue board
boat body bone book boot border bottle bottom boulder bowl box boy branch brave bread breeze brick bridge
bright bring broad broken brother brown brush bubble bucket building bunny burning butter button cabin
cable cactus cake calm camel camera camp candle canyon captain card careful carpet carry castle cave
ceiling center century chain chair chalk champion change chapter charcoal cheese cherry chicken child
chimney chocolate choose circle citizen city class clean cliff clock cloth cloud coast coat coffee coin
cold collect color column comet common company compass copper coral corner costume cottage cotton count
country courage cousin cover crab craft crane crash cream creek crew cricket crimson crowd crown crystal
culture cup curious current curtain cushion custom daisy damp danger dawn deep deer desert design desk
detail diamond dinner dirt distance diver doctor door double dove down dozen drawer dream dress drift
drink drive drop drum dry duck dust eager early earth east easy echo edge egg elbow elephant ember empty
energy engine enormous evening event every exact excited eye fabric face factory fair fall family famous
farm fast father feather fence festival fiber field figure film final finger fire fish flag flame flash
fleet flight floor flour flower flute foam follow food foot forest fork fountain frame fresh friend frog
front frost fruit funny future galaxy game garden gate gather gentle giant gift ginger glacier glass
globe glove goat gold grain grape grass gravel gray great green grid ground group grow guard guest guide
hair half hall hammer hand happy harbor hard harvest hat hawk head heart heavy hedge helmet hero hidden
hill history hollow honey hood hope horizon horn hospital hour house human hunger hurry ice idea island
ivory jacket jade jar jazz jewel journey juice jungle kettle key kid kind king kitchen kite knee knife
ladder lake lamp land lantern large laugh lawn leaf lean leather lemon letter level light lily line lion
liquid little lizard long loud lucky lunar machine magic magnet main maple marble market marsh mask
meadow melody metal middle midnight mild mill mirror mist moment money monkey month moon morning moss
mother motion motor mountain mouse mouth mud museum music narrow nature near needle nest net network
night noble noon north nose notebook number ocean office olive onion open orange orbit orchard owl
paddle page paint palace palm paper parade park parrot party path pattern peach pearl pebble pencil
people pepper piano picnic picture pier pillow pilot pine pink pipe planet plant plate plaza pocket
poem pond pony pool porch portrait potato powder power prairie prince puddle pumpkin puppet purple
puzzle quick quilt rabbit race radio rail rainbow ranch raven ready reef ribbon rice ridge ring ripple
rise road rock rocket roof room root rope rose round royal ruby rug ruin rush rust saddle sail salt sand
satellite scarf school science scooter sea season seed shadow shark sheep shell shelter shore silent
silk silver simple singer sister sky sled slope smoke snail snake soft soldier song soup south space
spark spice spider spiral spring square stable stage stair star station statue steam steel stone storm
story stream street string stripe student summer sun sunlight swamp swan sweet table tail tea teacher
temple tent thunder ticket tide timber tiny toast tomato tower town toy track trail tree triangle truck
trumpet tulip tunnel turtle twilight umbrella uncle valley velvet village violet violin voice volcano
wagon wall wander warm water wave wax weather whale wheat wheel whisper wind window wing winter wire
wise wolf wonder wood wool world yard yellow young zebra zone
""".split()


def build_corpus():
    rng = random.Random(SEED)
    lines = []
    for _ in range(3000):
        parts = [
            f"{rng.choice(ADJ).capitalize()} {rng.choice(SUBJECTS).split(' ', 1)[-1]}"
            if rng.random() < 0.3 else rng.choice(SUBJECTS).capitalize(),
            rng.choice(VERBS), rng.choice(PLACES), rng.choice(LIGHT)
        ]
        s = " ".join(parts) + ". " + rng.choice(CAMERA)
        if rng.random() < 0.7:
            s += " " + ", ".join(rng.sample(STYLE, rng.randint(1, 4))) + "."
        if rng.random() < 0.15:
            s += " " + rng.choice(ACCENTED) + " " + rng.choice(ACCENTED) + "."
        if rng.random() < 0.08:
            s += " " + rng.choice(CJK_SENTENCES)
        if rng.random() < 0.05:
            s += " " + rng.choice(EMOJI)
        if rng.random() < 0.05:
            s += " " + rng.choice(MISC)
        lines.append(s)
    for _ in range(3000):
        n = rng.randint(6, 16)
        ws = [rng.choice(WORD_BANK) for _ in range(n)]
        lines.append(" ".join(ws).capitalize() + rng.choice([".", ".", ".", "!", "?", ";", ","]))
    lines.extend(ACCENTED * 4)
    lines.extend(CJK_SENTENCES * 6)
    lines.extend(MISC * 4)
    lines.extend([NEGATIVE_PROMPT.strip(), POSITIVE_PROMPT] * 20)
    # A few characters that occur exactly once: with character_coverage < 1 some of them
    # are dropped from the vocabulary (=> <unk>), others never occur at all (also <unk>).
    lines.extend(["稀", "罕", "齉", "Ω", "ψ"])
    return lines


def train_spm(corpus):
    spm.set_random_generator_seed(SEED)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buf,
        model_type="unigram",
        vocab_size=SP_VOCAB_SIZE,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        normalization_rule_name="nmt_nfkc",
        character_coverage=0.9995,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# 2. Tokenizer cases
# --------------------------------------------------------------------------------------


def single_piece_words(tok):
    """Alphabetic vocabulary words that encode to exactly one piece (used to build texts
    with an exact token count)."""
    words = []
    for i in range(tok.sp_model.get_piece_size()):
        p = tok.sp_model.id_to_piece(i)
        if p.startswith("▁") and len(p) >= 4 and p[1:].isascii() and p[1:].isalpha():
            w = p[1:]
            if tok.tokenize(w) == [p]:
                words.append(w)
    assert len(words) >= 20, words
    return words


def text_with_n_tokens(tok, words, n, offset=0):
    text = " ".join(words[(offset + i) % len(words)] for i in range(n))
    assert len(tok.tokenize(text)) == n, (n, text)
    return text


def build_texts(tok):
    words = single_piece_words(tok)
    long_text = " ".join([POSITIVE_PROMPT, NEGATIVE_PROMPT.strip()] * 4)
    assert len(tok.tokenize(long_text)) > 300
    texts = [
        # plain English prompts
        "A panda, dressed in a small, red jacket and a tiny hat, sits on a wooden stool in a serene bamboo forest.",
        "A golden retriever running through a field of sunflowers at sunset, cinematic lighting, 4k.",
        "Aerial drone shot of a coastal city at night; neon lights reflect on the wet streets.",
        "close-up of a hummingbird hovering near a red flower, slow motion",
        "Time-lapse: clouds rolling over snowy mountains (1080p, 24fps)!!!",
        "The dog is shaking head. The video is of high quality, and the view is very clear.",
        POSITIVE_PROMPT,
        NEGATIVE_PROMPT,
        NEGATIVE_PROMPT.strip(),
        "ALL CAPS SHOUTING AND MiXeD CaSe wOrDs",
        "a",
        ".",
        "xylophone quasar zephyr",
        # empty / whitespace handling
        "",
        " ",
        "\n",
        "   leading spaces",
        "trailing spaces   ",
        "multiple    spaces   between   words",
        "line one\nline two\n\nline four",
        "tabs\tbetween\twords\t",
        "\r\nwindows newline\r\n",
        "\u3000ideographic\u3000space\u3000",
        "non\u00a0breaking\u00a0space",
        "zero\u200bwidth\u200bspace and soft\u00adhyphen",
        "▁literal▁lower▁eighth▁block ▁",
        "control\u0007char\u001bend\u007f",
        # accents, precomposed and combining
        "café naïve résumé façade jalapeño",
        "cafe\u0301 nai\u0308ve re\u0301sume\u0301",
        "Zürich, São Paulo, Kraków, Dvořák, Øresund, Ångström, Łódź",
        "crème brûlée on a porcelain plate in München",
        "ß Straße STRASSE ı İ ǅ",
        # scripts: CJK (partly in vocab), other scripts (mostly unk)
        "猫が東京の街を歩いている。",
        "一只熊猫在竹林里吃竹子",
        "龘靐齉 rare characters",
        "稀罕 once-seen characters",
        "한국어 텍스트",
        "\u1112\u1161\u11ab decomposed hangul",
        "Greek: Καλημέρα κόσμε; Cyrillic: Привет мир",
        "Arabic مرحبا Hebrew שלום",
        "Devanagari नमस्ते Thai สวัสดี",
        # emoji
        "emoji 🙂🎬🌅 in text",
        "👨\u200d👩\u200d👧 family, 👍🏽 thumbs, 🇯🇵 flag, ❤️ heart",
        "🐼🐼🐼",
        # NFKC-changed characters
        "ﬁne ﬂowers and ﬀ ligatures",
        "ＡＢＣ ａｂｃ １２３ fullwidth",
        "① ② ③ Ⅻ ½ x² ㎏ ™ …",
        "“Smart quotes” and ‘single’ – en dash — em dash…",
        "ｶﾀｶﾅ halfwidth katakana",
        # numbers, punctuation, URLs
        "numbers 0123456789 and 3.14159, 1,000,000 and -42",
        "!!! ??? ... --- ((())) [brackets] {braces} @#$%^&*",
        "URL https://example.com/path?q=1&r=2 and email a.b@example.org",
        # special tokens written inside the text
        "Hello</s>world",
        "Hello </s> world",
        "A cat on a mat.</s>",
        "A cat on a mat. </s>",
        "A cat on a mat. </s> ",
        "</s>",
        "</s></s>",
        "</s> at start",
        "tab\t</s>\tnewline\n</s>\n",
        "<pad> padding token <pad>",
        "<pad>",
        "<unk> unknown <unk>",
        "<extra_id_0>",
        "fill <extra_id_0> the <extra_id_1> blanks",
        "fill<extra_id_0>the<extra_id_1>blanks",
        "<extra_id_99> last sentinel",
        "text with <extra_id_5> spaces around",
        "text with<extra_id_5>no spaces",
        "  <extra_id_5>  double spaces  ",
        "end sentinel <extra_id_5>",
        "<extra_id_100> is not a sentinel",
        "<EXTRA_ID_0> uppercase",
        "＜extra_id_0＞ fullwidth brackets",
        "< / s > spaced eos and <s> bos",
        "</s<extra_id_0>> nested",
        # long / truncation boundary
        long_text,
        text_with_n_tokens(tok, words, 224),
        text_with_n_tokens(tok, words, 225),
        text_with_n_tokens(tok, words, 226),
        text_with_n_tokens(tok, words, 227),
        text_with_n_tokens(tok, words, 224, offset=3) + " </s>",
        text_with_n_tokens(tok, words, 225, offset=3) + " </s>",
        text_with_n_tokens(tok, words, 14, offset=7),
        text_with_n_tokens(tok, words, 15, offset=7),
        text_with_n_tokens(tok, words, 16, offset=7),
        text_with_n_tokens(tok, words, 14, offset=11) + "</s>",
        text_with_n_tokens(tok, words, 15, offset=11) + "</s>",
        text_with_n_tokens(tok, words, 14, offset=13) + " <extra_id_3>",
        text_with_n_tokens(tok, words, 15, offset=13) + " <extra_id_3>",
    ]
    assert len(set(texts)) == len(texts), "texts must be distinct"
    return texts


def added_tokens_info(tok):
    out = []
    for idx in sorted(tok.added_tokens_decoder):
        t = tok.added_tokens_decoder[idx]
        out.append({
            "id": idx, "content": t.content, "lstrip": t.lstrip, "rstrip": t.rstrip,
            "normalized": t.normalized, "single_word": t.single_word, "special": t.special,
        })
    return out


def write_cases(tok):
    texts = build_texts(tok)
    cases = []
    for text in texts:
        for L in MAX_LENGTHS:
            enc = tok(text, padding="max_length", max_length=L, truncation=True, add_special_tokens=True)
            ids, mask = list(enc["input_ids"]), list(enc["attention_mask"])
            assert len(ids) == L and len(mask) == L
            cases.append({"text": text, "max_length": L, "input_ids": ids, "attention_mask": mask})
    doc = {
        "transformers": transformers.__version__,
        "sentencepiece": spm.__version__,
        "call": 'tok(text, padding="max_length", max_length=L, truncation=True, add_special_tokens=True)',
        "legacy": tok.legacy,
        "vocab_size": len(tok),
        "sp_vocab_size": tok.sp_model.get_piece_size(),
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "unk_token_id": tok.unk_token_id,
        "added_tokens": added_tokens_info(tok),
        "cases": cases,
    }
    os.makedirs(os.path.dirname(CASES_PATH), exist_ok=True)
    # one case per line keeps the file diffable
    with open(CASES_PATH, "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n")
        keys = [k for k in doc if k not in ("cases", "added_tokens")]
        for k in keys:
            f.write(f"  {json.dumps(k)}: {json.dumps(doc[k])},\n")
        f.write('  "added_tokens": [\n')
        f.write(",\n".join("    " + json.dumps(a) for a in doc["added_tokens"]))
        f.write("\n  ],\n")
        f.write('  "cases": [\n')
        f.write(",\n".join("    " + json.dumps(c) for c in cases))
        f.write("\n  ]\n}\n")
    json.loads(open(CASES_PATH, encoding="utf-8").read())  # validate
    return texts, cases


# --------------------------------------------------------------------------------------
# 3. Tiny T5 encoder checkpoint
# --------------------------------------------------------------------------------------


def make_config(vocab_size):
    return T5Config(
        vocab_size=vocab_size,
        d_model=48,
        d_kv=16,
        num_heads=4,  # inner dim 64 != d_model on purpose
        d_ff=96,
        num_layers=3,
        num_decoder_layers=3,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        layer_norm_epsilon=1e-6,
        dropout_rate=0.0,
        is_encoder_decoder=False,
        use_cache=False,
        tie_word_embeddings=False,
    )


def init_weights(model, cfg):
    g = torch.Generator().manual_seed(SEED)
    d_model, d_kv, d_ff, inner = cfg.d_model, cfg.d_kv, cfg.d_ff, cfg.num_heads * cfg.d_kv
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            z = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("layer_norm.weight"):
                v = 1.0 + 0.2 * z
            elif name.endswith("relative_attention_bias.weight"):
                v = 0.5 * z
            elif name == "shared.weight":
                v = z  # T5 initialises embeddings with std 1
            elif name.endswith("SelfAttention.q.weight"):
                # T5 folds the 1/sqrt(d_kv) attention scale into q (no scaling in attention)
                v = z * (d_model * d_kv) ** -0.5 * 1.5
            elif name.endswith(("SelfAttention.k.weight", "SelfAttention.v.weight")):
                v = z * d_model ** -0.5
            elif name.endswith("SelfAttention.o.weight"):
                v = z * inner ** -0.5
            elif name.endswith(("wi_0.weight", "wi_1.weight")):
                v = z * d_model ** -0.5
            elif name.endswith("wo.weight"):
                v = z * d_ff ** -0.5
            else:
                raise RuntimeError(f"unexpected parameter {name}")
            p.copy_(v)


def write_text_encoder(vocab_size):
    cfg = make_config(vocab_size)
    torch.manual_seed(SEED)
    model = T5EncoderModel(cfg).eval()
    init_weights(model, cfg)
    if os.path.isdir(TE_DIR):
        shutil.rmtree(TE_DIR)
    model.save_pretrained(TE_DIR, safe_serialization=True, max_shard_size="300KB")
    shards = sorted(f for f in os.listdir(TE_DIR) if f.endswith(".safetensors"))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], shards
    return model


def merge_model_index():
    path = os.path.join(CKPT, "model_index.json")
    idx = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            idx = json.load(f)
    idx.setdefault("_class_name", "CogVideoXFunInpaintPipeline")
    idx.setdefault("_diffusers_version", "0.32.2")
    idx["text_encoder"] = ["transformers", "T5EncoderModel"]
    idx["tokenizer"] = ["transformers", "T5Tokenizer"]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(idx, f, indent=2, sort_keys=True)
        f.write("\n")


# --------------------------------------------------------------------------------------
# 4. Encoder activations
# --------------------------------------------------------------------------------------


@torch.no_grad()
def run_with_hooks(model, input_ids, attention_mask=None):
    acts = {}
    hooks = [model.encoder.embed_tokens.register_forward_hook(
        lambda m, i, o: acts.__setitem__("embeddings", o.detach().clone()))]
    for l, blk in enumerate(model.encoder.block):
        hooks.append(blk.register_forward_hook(
            lambda m, i, o, l=l: acts.__setitem__(f"block.{l}.output", o[0].detach().clone())))
    try:
        out = model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for h in hooks:
            h.remove()
    acts["final"] = out.last_hidden_state.detach().clone()
    return acts


def encode_batch(tok, texts, L):
    enc = tok(texts, padding="max_length", max_length=L, truncation=True,
              add_special_tokens=True, return_tensors="pt")
    return enc["input_ids"].to(torch.int64), enc["attention_mask"].to(torch.int64)


def stats(t):
    t = t.float()
    return f"mean={t.mean().item():+.4f} std={t.std().item():.4f} maxabs={t.abs().max().item():.3f}"


def write_activations(tok, model):
    os.makedirs(T5_DIR, exist_ok=True)
    L = MAX_LENGTHS[0]
    prompts = [
        "A panda playing guitar in a bamboo forest.",
        " ".join([POSITIVE_PROMPT, NEGATIVE_PROMPT.strip()] * 3),
    ]
    ids, mask = encode_batch(tok, prompts, L)
    assert int(mask[0].sum()) < 30 and int(mask[1].sum()) == L
    t = {"input_ids": ids.contiguous(), "attention_mask": mask.contiguous()}
    t["position_bias"] = model.encoder.block[0].layer[0].SelfAttention.compute_bias(L, L).detach().clone()
    a = run_with_hooks(model, ids)
    t.update(a)
    m = run_with_hooks(model, ids, mask)
    assert torch.equal(m["embeddings"], a["embeddings"])
    for k, v in m.items():
        if k != "embeddings":
            t[f"masked.{k}"] = v
    t = {k: v.contiguous() for k, v in t.items()}
    save_file(t, os.path.join(T5_DIR, "encoder_io.safetensors"))
    print("encoder_io.safetensors")
    for k in sorted(t):
        if t[k].dtype == torch.float32:
            print(f"  {k:24s} {tuple(t[k].shape)} {stats(t[k])}")
    # degeneracy checks: masking must matter for the padded row only; positions must differ
    assert not torch.allclose(t["final"][0], t["masked.final"][0], atol=1e-3)
    assert torch.allclose(t["final"][1], t["masked.final"][1], atol=1e-5)
    assert t["final"][0].std(dim=0).mean() > 0.1

    L16 = MAX_LENGTHS[1]
    ids16, mask16 = encode_batch(tok, ["A golden retriever running through a field of sunflowers at sunset."], L16)
    t16 = {"input_ids": ids16.contiguous(), "attention_mask": mask16.contiguous()}
    t16["position_bias"] = model.encoder.block[0].layer[0].SelfAttention.compute_bias(L16, L16).detach().clone()
    t16.update(run_with_hooks(model, ids16))
    t16 = {k: v.contiguous() for k, v in t16.items()}
    save_file(t16, os.path.join(T5_DIR, "encoder_io_len16.safetensors"))
    print("encoder_io_len16.safetensors")
    for k in sorted(t16):
        if t16[k].dtype == torch.float32:
            print(f"  {k:24s} {tuple(t16[k].shape)} {stats(t16[k])}")


# --------------------------------------------------------------------------------------


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    print(f"torch {torch.__version__}  transformers {transformers.__version__}  "
          f"sentencepiece {spm.__version__}  safetensors {safetensors.__version__}  numpy {np.__version__}")

    # 1. SentencePiece model -> T5Tokenizer checkpoint folder
    model_bytes = train_spm(build_corpus())
    with tempfile.TemporaryDirectory() as td:
        sp_path = os.path.join(td, "spiece.model")
        with open(sp_path, "wb") as f:
            f.write(model_bytes)
        tok0 = T5Tokenizer(vocab_file=sp_path, extra_ids=100, legacy=True, model_max_length=226)
        if os.path.isdir(TOK_DIR):
            shutil.rmtree(TOK_DIR)
        tok0.save_pretrained(TOK_DIR)
    tok = T5Tokenizer.from_pretrained(TOK_DIR, legacy=True)
    assert tok.sp_model.get_piece_size() == SP_VOCAB_SIZE and len(tok) == SP_VOCAB_SIZE + 100
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)

    # 2. Tokenizer cases
    texts, cases = write_cases(tok)
    print(f"tokenizer: len(tok)={len(tok)}  {len(texts)} texts -> {len(cases)} cases")

    # 3. Tiny T5 encoder checkpoint (vocab rounded up to a multiple of 8, like 32100 -> 32128)
    vocab_size = (len(tok) + 7) // 8 * 8
    model = write_text_encoder(vocab_size)
    merge_model_index()
    reloaded, info = T5EncoderModel.from_pretrained(TE_DIR, output_loading_info=True)
    assert not any(info.values()), info
    reloaded = reloaded.eval().float()
    sd0, sd1 = model.state_dict(), reloaded.state_dict()
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)

    # 4. Activations from the reloaded model
    write_activations(tok, reloaded)


if __name__ == "__main__":
    main()
