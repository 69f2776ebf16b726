#!/usr/bin/env bash
# Make a trained network the embedded default: copy it into models/ and regenerate every
# fixture set made from the default's outputs, in the order they depend on each other.
#
#     tools/train/promote.sh PATH/cpnet.pt
#
# PATH/cpnet.pt: a TorchScript file from train.py with its size model (train_size.py) in
# cpipc.json. Afterwards: rebuild (the binary embeds the file), run `ctest -L model`, and
# update models/README.md and tests/data/model/README.md (counts, rescale, niter).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}"
py="${CPIPC_CELLPOSE3_VENV:-$cache/cellpose3-venv}/bin/python"

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: promote.sh PATH/cpnet.pt (a network from tools/train/train.py)" >&2
  exit 2
fi
[ -x "$py" ] || { echo "promote.sh: $py not found: run tools/train/train.sh once to make the venv" >&2; exit 2; }

# Refuse a file without a size model (`--diameter 0` and a request without a diameter need
# it); otherwise write its metadata beside it. One load: the file is 27 MB.
json_tmp="$(mktemp)"
trap 'rm -f "$json_tmp"' EXIT
"$py" - "$1" "$json_tmp" <<'EOF'
import json, sys, torch
extra = {"cpipc.json": ""}
torch.jit.load(sys.argv[1], map_location="cpu", _extra_files=extra)
meta = json.loads(extra["cpipc.json"] or "{}")
if meta.get("architecture") != "CPnet":
    sys.exit(f"promote.sh: {sys.argv[1]} is not a CPnet from train.py (architecture {meta.get('architecture')!r})")
if "size_model" not in meta:
    sys.exit(f"promote.sh: {sys.argv[1]} has no size model: run tools/train/train_size.py --model {sys.argv[1]} first")
with open(sys.argv[2], "w") as f:
    json.dump(meta, f, indent=2)
    f.write("\n")
EOF

install -m 0644 "$1" "$repo/models/cpipc_default_cpnet.pt"
install -m 0644 "$json_tmp" "$repo/models/cpipc_default_cpnet.json"
echo "promote.sh: models/cpipc_default_cpnet.pt <- $1 ($(sha256sum "$1" | cut -c1-16)…)"

cd "$repo"
# make_flag_fixtures reads tests/data/model/gray16_up, so make_parity comes first
PYTHONWARNINGS=ignore "$py" tools/parity/make_parity.py
PYTHONWARNINGS=ignore "$py" tools/parity/make_flag_fixtures.py
PYTHONWARNINGS=ignore "$py" tools/parity/make_size_fixtures.py
# volume_parity's cached Cellpose outputs are keyed by the model's hash: the old ones are dead weight
rm -f "$cache"/volume-parity/*.npz
echo "promote.sh: fixtures regenerated; now rebuild, run ctest -L model, and update the READMEs"
