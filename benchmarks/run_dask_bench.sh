#!/usr/bin/env bash
# cpipc.dask against Cellpose's distributed_eval (benchmarks/dask_bench.py): makes the
# zarr image, runs the two sides alternately REPEATS times each, prints the table.
#   benchmarks/run_dask_bench.sh [OUT_DIR] [REPEATS] [SIZE]
# Needs the cellpose3 venv (scripts/setup.sh --reference); adds Cellpose's distributed
# extras (dask, dask_image, dask_jobqueue, zarr) to it when they are missing.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
out=${1:-$(mktemp -d)}
repeats=${2:-3}
size=${3:-4096}
py=$cache/python-venv/bin/python
cp3=$cache/cellpose3-venv/bin/python
export CPIPC_BIN=${CPIPC_BIN:-$repo/build/cpipc}
[ -x "$cp3" ] || { echo "run_dask_bench.sh: no cellpose3 venv: run scripts/setup.sh --reference" >&2; exit 2; }
# distributed_eval 3.1.1.2 calls zarr 2's API (zarr.open(path, 'w', ...)): zarr<3 there.
"$cp3" -c "import sys, dask_image, dask_jobqueue, distributed, zarr, yaml; sys.exit(zarr.__version__ >= '3')" 2>/dev/null ||
  "$cp3" -m pip install -q --disable-pip-version-check "dask[array,distributed]" dask_image dask_jobqueue "zarr<3" pyyaml
mkdir -p "$out"
[ -d "$out/image.zarr" ] || "$py" "$repo/benchmarks/dask_bench.py" make "$out/image.zarr" --size "$size"
results=()
for i in $(seq 1 "$repeats"); do
  "$cp3" "$repo/benchmarks/dask_bench.py" cellpose "$out/image.zarr" "$out/cellpose.zarr" "$out/cellpose-$i.json" >/dev/null
  "$py" "$repo/benchmarks/dask_bench.py" cpipc "$out/image.zarr" "$out/cpipc.zarr" "$out/cpipc-$i.json" >/dev/null
  results+=("$out/cellpose-$i.json" "$out/cpipc-$i.json")
done
"$py" "$repo/benchmarks/dask_bench.py" report "$out/image.zarr" "${results[@]}"
