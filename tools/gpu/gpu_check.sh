#!/usr/bin/env bash
# The GPU check: on a machine like the lent GPU ones (python3 with torch and
# its LibTorch, nvcc, cmake, ninja; no Debian packages, no network), builds
# the CUDA configuration with the folder tools/gpu/pack_deps.sh packed, runs
# the GPU-facing checks and the test suite, and writes one report.
#   tools/gpu/gpu_check.sh [REPORT_DIR] [--no-tests]
# With the device tool: carry [".deps"], command "bash tools/gpu/gpu_check.sh $OUT".
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
report_dir=${1:-gpu-report}
tests=ON
[ "${2:-}" = "--no-tests" ] && tests=OFF
mkdir -p "$report_dir"
report="$report_dir/gpu_report.txt"
: >"$report"
step() { echo "== $*" | tee -a "$report"; }
run() { "$@" 2>&1 | tee -a "$report"; return "${PIPESTATUS[0]}"; }
status=0

step "machine $(date -u +%FT%TZ)"
run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
run nvcc --version | tail -1
run python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no gpu')"
run cmake --version | head -1

step "configure and build (CUDA, LibTorch from python3's torch)"
run cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCPIPC_DEPS_DIR="$repo/.deps" \
  -DCPIPC_TORCH_PYTHON="$(command -v python3)" -DCPIPC_CACHE_DIR=/tmp/cpipc-cache -DCPIPC_BUILD_BENCHMARKS=OFF \
  -DCPIPC_BUILD_FUZZERS=OFF -DCPIPC_BUILD_TESTS=$tests | grep -E "cpipc|Error|error" || true
run cmake --build build-gpu -j"$(nproc)" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
[ -x build-gpu/cpipc ] || { step "BUILD FAILED"; exit 1; }

step "cpipc devices --probe"
run build-gpu/cpipc devices --probe || status=1
step "LibTorch check"
run build-gpu/cpipc_torch_check || status=1
step "cpipc demo"
run build-gpu/cpipc demo -o /tmp/cpipc-demo || status=1
if [ "$tests" = ON ]; then
  step "ctest"
  run ctest --test-dir build-gpu --output-on-failure || status=1
fi
step "result: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
