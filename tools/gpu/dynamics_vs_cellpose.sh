#!/usr/bin/env bash
# On a GPU machine: cpipc's CUDA dynamics against Cellpose's own GPU dynamics
# on the same flows and the same GPU. Needs build-gpu/ (gpu_check.sh), the
# fixtures in .gpu-fixtures/ (make_fixtures.py --cases large) and Cellpose's
# wheels in .whl/ (cellpose, fastremap, fill_voids; pip download here).
# --json-out FILE also writes one JSON object per case (Cellpose's and cpipc's
# medians, identical masks) to FILE, for benchmarks/run_all.sh.
set -uo pipefail
json_out=""
[ "${1:-}" = "--json-out" ] && json_out=$(realpath -m "$2")
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ -n "$json_out" ] && : >"$json_out"
source tools/gpu/lib.sh
install_wheels .whl /tmp/site || exit 1
for flows in .gpu-fixtures/*_flows.npy; do
  name=$(basename "$flows" _flows.npy)
  for qc in 0.4 0; do
    tag=$([ "$qc" = 0 ] && echo noqc || echo qc)
    echo "== $name $tag"
    ref=$(python3 benchmarks/dynamics_cellpose.py "$flows" "$qc" 5 cuda)
    echo "$ref"
    ours=$(build-gpu/cpipc masks --flows "$flows" --flow-threshold "$qc" --device cuda --repeat 5 -o "/tmp/${name}_cpipc_${tag}.npy" --json)
    echo "$ours"
    same=$(python3 -c "import numpy as np, sys; a=np.load('/tmp/${name}_cpipc_${tag}.npy'); b=np.load('.gpu-fixtures/${name}_cellpose_${tag}_cuda.npy'); print(np.array_equal(a.astype(np.int64), b.astype(np.int64)), a.max(), b.max())")
    echo "identical to Cellpose (GPU): $same"
    if [ -n "$json_out" ]; then
      python3 -c "import json, sys; r, o = json.loads(sys.argv[3]), json.loads(sys.argv[4]); s = sys.argv[5].split(); print(json.dumps({'case': sys.argv[1], 'qc': sys.argv[2], 'cellpose_ms': r['median_s'] * 1000, 'cpipc_ms': o['dynamics_ms'], 'speedup': r['median_s'] * 1000 / o['dynamics_ms'], 'identical': s[0] == 'True', 'cpipc_objects': int(s[1]), 'cellpose_objects': int(s[2])}))" \
        "$name" "$tag" "$ref" "$ours" "$same" >>"$json_out"
    fi
  done
done
