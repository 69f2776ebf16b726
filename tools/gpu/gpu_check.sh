#!/usr/bin/env bash
# The GPU check: on a machine like the lent GPU ones (python3 with torch and
# its LibTorch, nvcc, cmake, ninja; no Debian packages, no network), builds
# the CUDA configuration with the folder tools/gpu/pack_deps.sh packed, runs
# the GPU-facing checks and the test suite, and writes one report.
#   tools/gpu/gpu_check.sh [REPORT_DIR] [--no-tests]
# With the device tool: carry [".deps"] (and ".gpu-fixtures" holding at most
# the 1024² case: the tree, .deps and the fixtures must stay under 64 MiB),
# command "bash tools/gpu/gpu_check.sh $OUT".
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
# Dynamics timing, CPU (all cores) against CUDA, on fixtures made here with
# tools/dynamics/make_fixtures.py --cases large (carry them in .gpu-fixtures/).
if [ -d .gpu-fixtures ]; then
  step "dynamics: cpipc masks --device cpu vs cuda (median of 5 after a warm-up)"
  for flows in .gpu-fixtures/*_flows.npy; do
    for qc in 0.4 0; do
      for dev in cpu cuda; do
        out="/tmp/$(basename "$flows" _flows.npy)_${dev}_${qc}.npy"
        run build-gpu/cpipc masks --flows "$flows" --flow-threshold "$qc" --device "$dev" --repeat 5 -o "$out" --json || status=1
      done
      cmp -s "/tmp/$(basename "$flows" _flows.npy)_cpu_${qc}.npy" "/tmp/$(basename "$flows" _flows.npy)_cuda_${qc}.npy" \
        && echo "  cpu and cuda masks identical" | tee -a "$report" || echo "  cpu and cuda masks DIFFER" | tee -a "$report"
    done
  done
fi
if [ "$tests" = ON ] && [ -x build-gpu/tests/cpipc_model_tests ]; then
  step "model on CUDA: parity with Cellpose (fp32, bf16), dynamics on CUDA tensors"
  run build-gpu/tests/cpipc_model_tests --gtest_filter='*Cuda*:TensorDynamics.*' || status=1
fi
if [ -x build-gpu/bench_device ]; then
  step "GPU benchmarks (bench_device; JSON lines also in gpu_bench.jsonl)"
  for args in "mirror 16 20" "mirror 64 20" "mirror 256 10" "view 2000"; do
    # shellcheck disable=SC2086
    build-gpu/bench_device $args 2>&1 | tee -a "$report" "$report_dir/gpu_bench.jsonl" || status=1
  done
fi
if [ "$tests" = ON ] && [ -x build-gpu/tests/cpipc_device_view_tests ]; then
  step "device views across processes (DeviceStream -> DeviceReader, CUDA IPC)"
  run build-gpu/tests/cpipc_device_view_tests || status=1
fi
if [ "$tests" = ON ]; then
  step "ctest"
  run ctest --test-dir build-gpu --output-on-failure || status=1
fi
step "result: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
