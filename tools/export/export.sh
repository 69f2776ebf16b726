#!/usr/bin/env bash
# Run export.py in the venv the checkpoint needs: Cellpose 3 for CPnet, Cellpose 4 for
# Cellpose-SAM (export.py itself says so if the choice is wrong). Arguments go to export.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}"
venv="$cache/cellpose3-venv"
ckpt=""
prev=""
for arg in "$@"; do
  [ "$prev" = "--checkpoint" ] && ckpt="$arg"
  case "$arg" in --checkpoint=*) ckpt="${arg#--checkpoint=}" ;; esac
  prev="$arg"
done
# CP-SAM state dicts carry W2 (token -> pixel readout); CPnet's never do
if [ -n "$ckpt" ] && [ -f "$ckpt" ] && [ -x "$cache/cellpose-venv/bin/python" ] &&
   "$cache/cellpose-venv/bin/python" - "$ckpt" <<'PY' 2>/dev/null; then
import sys, torch
sys.exit(0 if "W2" in torch.load(sys.argv[1], map_location="cpu", weights_only=True, mmap=True) else 1)
PY
  venv="$cache/cellpose-venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "export.sh: error: $venv not found (tools/train/train.sh makes the Cellpose 3 venv)" >&2
  exit 1
fi
exec "$venv/bin/python" "$here/export.py" "$@"
