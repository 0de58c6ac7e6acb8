# Import this module BEFORE importing transformers.
#
# The local package store provides huggingface_hub / tokenizers versions that are newer than
# the ranges pinned by transformers 4.57.6, which makes `import transformers` fail its runtime
# dependency check. The slow T5Tokenizer (SentencePiece) and T5EncoderModel used by the
# reference generators do not need either package's newer/older API, so we stub the check out.
import sys
import types

m = types.ModuleType("transformers.dependency_versions_check")
m.dep_version_check = lambda *a, **k: None
sys.modules["transformers.dependency_versions_check"] = m
