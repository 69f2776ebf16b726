#!/usr/bin/env bash
# Issue 17's next network on a lent GPU: tools/train/train.py with --device cuda
# (Cellpose 3.1.1.2's train_seg and train_size on the GPU; data from tools/synth,
# evaluation and tracing on the CPU), the weights back
# through the device tool's $OUT in parts of at most 15 MiB (its per-file limit).
#
#   device run (carry .whl3):  tools/gpu/train_on_gpu.sh [EPOCHS] [extra train.py args]
#   back here:                 cat FILES_AT/cpnet.pt.part-* > cpnet.pt
#                              (then tools/train/evaluate.py on the held-out families)
#
# Cellpose 3 comes from the wheels in .whl3/ (tools/gpu/pack_deps.sh --all), installed
# into /tmp/site3 as model_vs_cellpose.sh does. The recipe: Cellpose's standard widths,
# the four mixed families, 8- and 16-bit, gray and two-channel, many short epochs so
# that train_seg's learning-rate decay runs. EPOCHS (default 800, 51 200 tiles) sizes the run,
# and the device tool's per-call limit (600 s) bounds it: on 2 CPU cores the standard widths
# took 0.16 s per tile (models/README.md, run "std1"); no GPU rate has been measured here
# yet, so start short (e.g. 20 epochs) and read train.log's rate before a long run.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-/tmp/train-out}
epochs=${1:-800}
shift || true
mkdir -p "$out"
source "$repo/tools/gpu/lib.sh"
install_wheels "$repo/.whl3" /tmp/site3 || exit 1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
python3 "$repo/tools/train/train.py" --device cuda --threads "$(nproc)" --family mix --channels 0 --bits 0 \
  --n-train 400 --nimg-per-epoch 64 --epochs "$epochs" --bsize 224 --nbase 2,32,64,128,256 \
  --out "$out/cpnet.pt" "$@" 2>&1 | tee "$out/train.log"
status=${PIPESTATUS[0]}
echo "train_on_gpu.sh: train.py exit $status after $(($(date +%s) - start)) s" | tee -a "$out/train.log"
if [ -f "$out/cpnet.pt" ]; then
  split -b 15M -d "$out/cpnet.pt" "$out/cpnet.pt.part-" && rm "$out/cpnet.pt"
  sha256sum "$out"/cpnet.pt.part-* | tee "$out/parts.sha256"
fi
exit "$status"
