#!/usr/bin/env bash
# Retrain the embedded default network (models/cpipc_default_cpnet.pt) the way it was made:
# five training stages at Cellpose's standard widths, each starting from the last one's
# weights on new synthetic images, then the size model. About 3.7 hours on 2 CPU cores.
#
#     tools/train/default_recipe.sh [WORK_DIR]     (default ~/.cache/cpipc/train-runs/default)
#
# Then `tools/train/promote.sh WORK_DIR/final/cpnet.pt` makes it the default. CPU training is
# not bit-reproducible across machines, and the generator (tools/synth) gained families between
# the stages when the shipped file was made (models/README.md): a rerun gives a network of the
# same recipe, not the same bytes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}"
work="${1:-$cache/train-runs/default}"
venv="${CPIPC_CELLPOSE3_VENV:-$cache/cellpose3-venv}"
common=(--channels 0 --bits 0 --n-train 400 --nimg-per-epoch 24 --bsize 128
        --nbase 2,32,64,128,256 --no-size-model)

stage() {  # stage NAME SEED EPOCHS INIT|- [train.sh options...]
  local name=$1 seed=$2 epochs=$3 init=$4
  shift 4
  [ "$init" = - ] && init=
  if [ -f "$work/$name/cpnet.pt" ]; then
    echo "default_recipe.sh: $work/$name/cpnet.pt exists, kept (delete it to retrain)"
    return
  fi
  mkdir -p "$work/$name"
  "$here/train.sh" "${common[@]}" "$@" --train-seed "$seed" --epochs "$epochs" \
    ${init:+--init "$init"} --out "$work/$name/cpnet.pt" 2>&1 | tee "$work/$name/train.log"
}

# The first three are the sixth run of models/README.md, the next two its seventh (crowded
# nuclei and cytoplasm) and eighth (every family again).
stage stage1 0 800 - --family mix
stage stage2 30 550 "$work/stage1/cpnet.pt" --family mix
stage stage3 40 550 "$work/stage2/cpnet.pt" --family mix
stage stage4 50 550 "$work/stage3/cpnet.pt" --family nuclei:2,cyto:2,clumps:1,elongated:1 --seamless 0.6
stage stage5 60 550 "$work/stage4/cpnet.pt" --family mix --seamless 0.5
mkdir -p "$work/final"
# train_size on the first 48 training images (10 epochs at 512², as Cellpose's CLI): the whole
# 400 would cost hours on a CPU for little gain in a 256-weight linear model
"$venv/bin/python" "$here/train_size.py" --model "$work/stage5/cpnet.pt" --out "$work/final/cpnet.pt" --n 48
echo "default_recipe.sh: done; make it the default with tools/train/promote.sh $work/final/cpnet.pt"
