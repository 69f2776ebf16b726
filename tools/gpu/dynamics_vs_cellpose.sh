#!/usr/bin/env bash
# On a GPU machine: cpipc's CUDA dynamics against Cellpose's own GPU dynamics
# on the same flows and the same GPU. Needs build-gpu/ (gpu_check.sh), the
# fixtures in .gpu-fixtures/ (make_fixtures.py --cases large) and Cellpose's
# wheels in .whl/ (cellpose, fastremap, fill_voids; pip download here).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
for flows in .gpu-fixtures/*_flows.npy; do
  name=$(basename "$flows" _flows.npy)
  for qc in 0.4 0; do
    tag=$([ "$qc" = 0 ] && echo noqc || echo qc)
    echo "== $name $tag"
    python3 benchmarks/dynamics_cellpose.py "$flows" "$qc" 5 cuda
    build-gpu/cpipc masks --flows "$flows" --flow-threshold "$qc" --device cuda --repeat 5 -o "/tmp/${name}_cpipc_${tag}.npy" --json
    python3 -c "import numpy as np, sys; a=np.load('/tmp/${name}_cpipc_${tag}.npy'); b=np.load('.gpu-fixtures/${name}_cellpose_${tag}_cuda.npy'); print('identical to Cellpose (GPU):', np.array_equal(a.astype(np.int64), b.astype(np.int64)), 'objects', a.max(), b.max())"
  done
done
