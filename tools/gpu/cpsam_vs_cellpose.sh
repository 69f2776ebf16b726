#!/usr/bin/env bash
# On a GPU machine: Cellpose-SAM in cpipc against Cellpose 4.2.1.1's own GPU
# path, both in bfloat16 (Cellpose 4's default on a GPU), on the seeded random
# CP-SAM of tools/parity/cpsam_parity.py (made and exported here first, about
# a minute on the CPU, into $CPIPC_CACHE_DIR/cpsam-seed0):
#   1. parity: masks AP@0.5 >= 0.98 on cpsam_parity.py's four images (the
#      flows' difference is printed; bf16 is not held to 1e-3);
#   2. per image at 512² and 1024² (benchmarks/cpsam_speed.py, with cpipc's
#      network / dynamics split) and a whole one-image process;
#   3. memory: one `cpipc serve` + 4 `cpipc submit` against 4 Cellpose 4
#      processes, GPU memory from nvidia-smi and peak RSS
#      (benchmarks/cpsam_bench.py).
# Needs build-gpu/ (gpu_check.sh) and the wheels in .whl/ (pack_deps.sh).
#   tools/gpu/cpsam_vs_cellpose.sh [OUT_DIR]
set -uo pipefail
out=$(realpath -m "${1:-cpsam-gpu}")
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mkdir -p "$out"
source tools/gpu/lib.sh
install_wheels .whl /tmp/site || exit 1
export CPIPC_CACHE_DIR=${CPIPC_CACHE_DIR:-/tmp/cpipc-cache}
threads=$(nproc)
status=0
echo "== parity (bf16, CUDA)"
python3 tools/parity/cpsam_parity.py --cpipc build-gpu/cpipc --device cuda --threads "$threads" || status=1
echo "== per image, 512² and 1024² (bf16, CUDA)"
python3 benchmarks/cpsam_speed.py "$out/speed" --device cuda --threads "$threads" --cpipc build-gpu/cpipc || status=1
echo "== memory: one serve + 4 clients against 4 Cellpose 4 processes (bf16, CUDA)"
python3 benchmarks/cpsam_bench.py "$out/memory" --device cuda --threads "$threads" --cpipc build-gpu/cpipc || status=1
exit $status
