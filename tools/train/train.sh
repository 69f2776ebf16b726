#!/usr/bin/env bash
# Reproduce models/cpipc_default_cpnet.pt: create the Cellpose 3 venv if missing,
# generate synthetic data (fixed seeds, temp dir), train, evaluate, export.
# Extra arguments go to train.py (e.g. --epochs 100 --out /tmp/m.pt).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${CPIPC_CELLPOSE3_VENV:-$HOME/.cache/cpipc/cellpose3-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # scikit-image: only evaluate.py reads its bundled coins image (never for training)
  "$venv/bin/pip" install torch==2.11.0 cellpose==3.1.1.2 scikit-image==0.26.0
fi
exec "$venv/bin/python" "$here/train.py" "$@"
