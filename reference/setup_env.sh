#!/usr/bin/env bash
# Creates the Python environment used by the reference-fixture generators in this folder.
#
#   PYREF=/work/pyref reference/setup_env.sh
#
# Packages are installed with `pip install --target` (no venv) into
#   $PYREF/site     torch + everything else
#   $PYREF/site-tf  transformers only, installed with --no-deps
# and used with PYTHONPATH=$PYREF/site:$PYREF/site-tf (see README.md).
#
# The default index arguments point at THIS machine's local package store (no internet).
# Elsewhere, override them, e.g. to use public PyPI plus the PyTorch CPU wheel index:
#   PIP_INDEX_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu" reference/setup_env.sh
set -euo pipefail

PYREF="${PYREF:-/work/pyref}"
PYTHON="${PYTHON:-/usr/bin/python3}"
DEFAULT_INDEX_ARGS="--index-url file:///opt/pypi/simple --extra-index-url file:///opt/pypi-more/simple --find-links /opt/wheels"
# shellcheck disable=SC2206  # intentional word splitting
INDEX_ARGS=(${PIP_INDEX_ARGS-$DEFAULT_INDEX_ARGS})

mkdir -p "$PYREF/site" "$PYREF/site-tf"

"$PYTHON" -m pip install "${INDEX_ARGS[@]}" --target "$PYREF/site" \
  torch==2.13.0 safetensors sentencepiece numpy pillow huggingface-hub==1.33.0 regex requests \
  filelock importlib_metadata einops scipy tokenizers pyyaml packaging tqdm

# transformers 4.57.6 pins older huggingface_hub/tokenizers than the ones above; install it
# without dependencies and neutralise its import-time version check with reference/shim.py.
"$PYTHON" -m pip install "${INDEX_ARGS[@]}" --no-deps --target "$PYREF/site-tf" transformers==4.57.6

# smoke test: print the versions the generators will see
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$HERE:$PYREF/site:$PYREF/site-tf" "$PYTHON" -c '
import shim, torch, transformers, sentencepiece, safetensors, numpy
print("torch", torch.__version__, "| transformers", transformers.__version__, "| sentencepiece", sentencepiece.__version__,
      "| safetensors", safetensors.__version__, "| numpy", numpy.__version__)'
echo "done. Use: PYTHONPATH=$PYREF/site:$PYREF/site-tf $PYTHON reference/gen_t5.py"
