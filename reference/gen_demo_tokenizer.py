#!/usr/bin/env python3
"""The demo model's tokenizer and (frozen, random) T5 v1.1 text encoder, made with the ORIGINAL classes.

1. A SentencePiece unigram model (T5's ids: pad 0, eos 1, unk 2, no bos; nmt_nfkc) trained on the demo world's
   vocabulary (every colour, shape, direction, background word and paraphrase of src/data/captions.ts, repeated so
   each is one piece) plus gen_t5.py's general prompt corpus (so other prompts split into pieces, not <unk>), wrapped
   as `T5Tokenizer(vocab_file, extra_ids=100, legacy=True, model_max_length=226)`, saved with `save_pretrained` and
   reloaded with `T5Tokenizer.from_pretrained` (checked).
2. A `T5EncoderModel` (T5 v1.1: gated-gelu, no tied embeddings, RMS layer norms) with gen_t5.py's seeded init at
   the sizes below, saved with `save_pretrained(safe_serialization=True)`. It stays frozen and random: the DiT learns
   to read its outputs; a random encoder keeps token identity (its projections are generic), which is all the world's
   captions need.

Deterministic (fixed seeds, one thread). Writes OUT/tokenizer and OUT/text_encoder:
  PYTHONPATH=reference:/work/pyref/site:/work/pyref/site-tf /usr/bin/python3 reference/gen_demo_tokenizer.py OUT
"""
import io
import os
import random
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shim  # noqa: E402,F401  (must precede `import transformers`)
import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import T5Config, T5EncoderModel, T5Tokenizer  # noqa: E402

import gen_t5  # noqa: E402  (its corpus and init; main() runs only as a script)

transformers.logging.set_verbosity_error()

SEED = 20261202
SP_VOCAB_SIZE = 1000
# The text encoder's sizes (d_model is the transformer's text_embed_dim).
T5_SIZES = dict(d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2)

# Words of src/data/world.ts and src/data/captions.ts (kept in step by hand; a missing word only costs pieces).
WORLD_WORDS = """
red green blue yellow cyan magenta circle square triangle left right up down black white gray grey
ball disc round dot box block tile triangular shape pyramid wedge moving rolling to the sliding travelling
drifting leftward rightward rising upward upwards floating falling downward downwards sinking on a background
against over dark plain flat backdrop single video of
""".split()


def world_captions(rng):
    colors = "red green blue yellow cyan magenta".split()
    shapes = ["circle", "square", "triangle", "ball", "disc", "round dot", "box", "block", "square tile",
              "triangular shape", "pyramid shape", "wedge"]
    motions = ["moving left", "moving right", "moving up", "moving down", "rolling to the left", "rolling to the right",
               "sliding left", "sliding right", "sliding upward", "sliding downward", "travelling to the left",
               "travelling to the right", "travelling upwards", "travelling downwards", "drifting leftward",
               "drifting rightward", "rising", "falling", "floating up", "sinking down"]
    bgs = ["on a black background", "on a white background", "on a gray background", "against black",
           "against white", "against gray", "over a dark black backdrop", "over a plain white backdrop",
           "over a flat gray backdrop", "on black", "on white", "on grey"]
    return [f"a {rng.choice(colors)} {rng.choice(shapes)} {rng.choice(motions)} {rng.choice(bgs)}" for _ in range(6000)]


def train_spm(corpus):
    spm.set_random_generator_seed(SEED)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, model_type="unigram", vocab_size=SP_VOCAB_SIZE,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        normalization_rule_name="nmt_nfkc", character_coverage=0.9995, input_sentence_size=0,
        shuffle_input_sentence=False, num_threads=1, minloglevel=2,
    )
    return buf.getvalue()


def write_tokenizer(out):
    rng = random.Random(SEED)
    corpus = world_captions(rng) + gen_t5.build_corpus()
    model_bytes = train_spm(corpus)
    tok_dir = os.path.join(out, "tokenizer")
    with tempfile.TemporaryDirectory() as td:
        sp_path = os.path.join(td, "spiece.model")
        with open(sp_path, "wb") as f:
            f.write(model_bytes)
        tok0 = T5Tokenizer(vocab_file=sp_path, extra_ids=100, legacy=True, model_max_length=226)
        if os.path.isdir(tok_dir):
            shutil.rmtree(tok_dir)
        tok0.save_pretrained(tok_dir)
    tok = T5Tokenizer.from_pretrained(tok_dir, legacy=True)
    assert len(tok) == SP_VOCAB_SIZE + 100 and (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    for w in WORLD_WORDS:
        pieces = tok.tokenize(w)
        assert tok.unk_token not in pieces, (w, pieces)
    return tok


def write_text_encoder(out, vocab_size):
    cfg = T5Config(vocab_size=vocab_size, num_decoder_layers=T5_SIZES["num_layers"],
                   relative_attention_num_buckets=32, relative_attention_max_distance=128,
                   feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
                   is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False, **T5_SIZES)
    torch.manual_seed(SEED)
    model = T5EncoderModel(cfg).eval()
    gen_t5.SEED = SEED  # gen_t5.init_weights draws from its module seed
    gen_t5.init_weights(model, cfg)
    te_dir = os.path.join(out, "text_encoder")
    if os.path.isdir(te_dir):
        shutil.rmtree(te_dir)
    model.save_pretrained(te_dir, safe_serialization=True)
    reloaded = T5EncoderModel.from_pretrained(te_dir).eval()
    sd0, sd1 = model.state_dict(), reloaded.state_dict()
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    return reloaded


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_demo_tokenizer.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok = write_tokenizer(out)
    vocab_size = (len(tok) + 7) // 8 * 8
    model = write_text_encoder(out, vocab_size)
    n = sum(p.numel() for p in model.parameters())
    ex = "a red circle moving right on a black background"
    print(f"tokenizer: {len(tok)} tokens; '{ex}' -> {tok.tokenize(ex)}")
    print(f"text_encoder: {n} parameters ({T5_SIZES}, vocab {vocab_size})")


if __name__ == "__main__":
    main()
