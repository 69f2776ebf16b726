#!/usr/bin/env bash
# One training run: create the Cellpose 3 venv if missing, generate synthetic data (fixed
# seeds, temp dir), train, evaluate, export to --out (default
# ~/.cache/cpipc/train-runs/latest/cpnet.pt). Arguments go to train.py (e.g. --epochs 100).
# The default network's recipe is default_recipe.sh (five stages); promote.sh installs one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${CPIPC_CELLPOSE3_VENV:-$HOME/.cache/cpipc/cellpose3-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # scikit-image: only evaluate.py reads its bundled coins image (never for training)
  "$venv/bin/pip" install torch==2.11.0 cellpose==3.1.1.2 scikit-image==0.26.0
fi
exec "$venv/bin/python" "$here/train.py" "$@"
