#!/usr/bin/env bash
# The GPU check: on a machine like the lent GPU ones (python3 with torch and
# its LibTorch, nvcc, cmake, ninja; no Debian packages, no network), builds
# the CUDA configuration with the folder tools/gpu/pack_deps.sh packed, runs
# the GPU-facing checks, the benchmarks against Cellpose on the same GPU, and
# the rest of the test suite in whatever time is left; writes one report.
#   tools/gpu/gpu_check.sh [REPORT_DIR] [--no-tests]
# GPU_CHECK_BUDGET (seconds, default 540) bounds the whole run: every step is
# cut at the deadline, most important first, so a lease never ends with
# nothing to show. GPU_CHECK_REST=REGEX runs only those other tests, verbosely
# and right after the GPU tests (a re-check of failures); GPU_CHECK_SKIP may
# name steps to leave out: bench, dynamics, model, cpsam, python, demo (cpsam,
# Cellpose-SAM against Cellpose 4 in bf16, takes ~5 min: for it alone,
# GPU_CHECK_SKIP="bench dynamics model python demo" and --no-tests, with
# GPU_CHECK_BUDGET=600); GPU_CHECK_MODEL_SIZES
# (default 512,1024) picks the image sizes of the model step.
# Prepare here with `tools/gpu/pack_deps.sh --all`; with the device tool:
# carry [".deps", ".gpu-fixtures", ".whl", ".whl3"], command
# "bash tools/gpu/gpu_check.sh $OUT" (the tree and the carried folders must
# stay under 64 MiB: see README, "GPU check").
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
report_dir=$(realpath -m "${1:-gpu-report}")
tests=ON
[ "${2:-}" = "--no-tests" ] && tests=OFF
mkdir -p "$report_dir"
report="$report_dir/gpu_report.txt"
: >"$report"
deadline=$((SECONDS + ${GPU_CHECK_BUDGET:-540}))
left() { echo $((deadline - SECONDS)); }
step() { echo "== [$(left) s left] $*" | tee -a "$report"; }
# run CAP CMD...: at most CAP seconds, and never past the deadline.
run() {
  local cap=$1
  shift
  local t=$(($(left) < cap ? $(left) : cap))
  if [ "$t" -le 5 ]; then
    echo "   skipped: out of time" | tee -a "$report"
    return 124
  fi
  timeout -k 5 "$t" "$@" 2>&1 | tee -a "$report"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "   cut at $t s" | tee -a "$report"
  return "$rc"
}
# runq LOG CAP CMD...: as run, the output into LOG only.
runq() {
  local log=$1 cap=$2
  shift 2
  local t=$(($(left) < cap ? $(left) : cap))
  [ "$t" -le 5 ] && { echo "   skipped: out of time" | tee -a "$report"; return 124; }
  timeout -k 5 "$t" "$@" >>"$log" 2>&1
  local rc=$?
  [ "$rc" = 124 ] && echo "   cut at $t s" | tee -a "$report"
  return "$rc"
}
status=0

step "machine $(date -u +%FT%TZ)"
run 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
run 10 bash -c 'nvcc --version | tail -1; uname -r; nproc; df -h /dev/shm | tail -1; ulimit -l'
run 30 python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no gpu')"
run 10 cmake --version

step "configure and build (CUDA, LibTorch from python3's torch); full log in build.log"
configure() {
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCPIPC_DEPS_DIR="$repo/.deps" \
    -DCPIPC_TORCH_PYTHON="$(command -v python3)" -DCPIPC_CACHE_DIR=/tmp/cpipc-cache -DCPIPC_BUILD_BENCHMARKS=OFF \
    -DCPIPC_BUILD_FUZZERS=OFF -DCPIPC_BUILD_TESTS=$tests "$@" >>"$report_dir/build.log" 2>&1
}
if ! configure; then
  step "configure FAILED (tail of build.log below); again without LibTorch"
  tail -30 "$report_dir/build.log" | tee -a "$report"
  rm -rf build-gpu
  configure -DCPIPC_WITH_TORCH=OFF || status=1
fi
grep -E "cpipc:" "$report_dir/build.log" | tee -a "$report"
runq "$report_dir/build.log" 330 cmake --build build-gpu -j"$(nproc)"
grep -E "error|FAILED" "$report_dir/build.log" | head -40 | tee -a "$report"
[ -x build-gpu/cpipc ] || { step "BUILD FAILED"; tail -40 "$report_dir/build.log" | tee -a "$report"; exit 1; }

step "cpipc devices --probe"
run 30 build-gpu/cpipc devices --probe || status=1
step "LibTorch check"
[ -x build-gpu/cpipc_torch_check ] && { run 60 build-gpu/cpipc_torch_check || status=1; }
if [ "$tests" = ON ] && [ -x build-gpu/tests/cpipc_device_view_tests ]; then
  step "device views across processes (DeviceStream -> DeviceReader, CUDA IPC)"
  run 90 build-gpu/tests/cpipc_device_view_tests || status=1
fi
if [ "$tests" = ON ] && [ -x build-gpu/tests/cpipc_model_tests ]; then
  step "model on CUDA: parity with Cellpose (fp32, tf32, bf16, fp16), dynamics on CUDA tensors, frame tensors"
  run 120 build-gpu/tests/cpipc_model_tests --gtest_filter='*Cuda*:TensorDynamics.*:FrameTensor*' || status=1
fi
if [ "$tests" = ON ]; then
  step "the other GPU tests (ctest -R 'Cuda|Gpu')"
  run 150 ctest --test-dir build-gpu -R 'Cuda|Gpu' -E 'DeviceViews|CellposeParity|TensorDynamics|FrameTensor' \
    -j8 --output-on-failure --timeout 120 || status=1
fi
skip() { [[ " ${GPU_CHECK_SKIP:-} " == *" $1 "* ]]; }
rest_tests() {  # the tests not run above; $1: how many at once
  runq "$report_dir/ctest_rest.log" 600 ctest --test-dir build-gpu -E 'Cuda|Gpu|DeviceViews|CellposeParity.OnCuda|TensorDynamics.Cuda' \
    ${GPU_CHECK_REST:+-R "$GPU_CHECK_REST"} -j"$1" --timeout 180 --output-on-failure
  local rc=$?
  grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\(SEGFAULT\)|\(Subprocess" "$report_dir/ctest_rest.log" | tee -a "$report"
  [ "$rc" = 0 ] || status=1
}
if [ "$tests" = ON ] && [ -n "${GPU_CHECK_REST:-}" ]; then
  step "ctest -R '$GPU_CHECK_REST' (log in ctest_rest.log)"
  rest_tests 4
fi
if [ -x build-gpu/bench_device ] && ! skip bench; then
  step "GPU benchmarks (bench_device; JSON lines also in gpu_bench.jsonl)"
  for args in "mirror 16 20" "mirror 64 20" "mirror 256 10" "view 2000"; do
    # shellcheck disable=SC2086
    run 40 build-gpu/bench_device $args | tee -a "$report_dir/gpu_bench.jsonl" || status=1
  done
fi
# the 1024² case when pack_deps.sh could carry it, else the largest committed 2-D case
dyn_cases=(.gpu-fixtures/*_flows.npy)
[ -f "${dyn_cases[0]}" ] || dyn_cases=(tests/data/dynamics/dense384_flows.npy)
if ! skip dynamics; then
  step "dynamics: cpipc masks --device cpu vs cuda (median of 5 after a warm-up)"
  for flows in "${dyn_cases[@]}"; do
    for qc in 0.4 0; do
      for dev in cpu cuda; do
        out="/tmp/$(basename "$flows" _flows.npy)_${dev}_${qc}.npy"
        run 60 build-gpu/cpipc masks --flows "$flows" --flow-threshold "$qc" --device "$dev" --repeat 5 -o "$out" --json || status=1
      done
      cmp -s "/tmp/$(basename "$flows" _flows.npy)_cpu_${qc}.npy" "/tmp/$(basename "$flows" _flows.npy)_cuda_${qc}.npy" \
        && echo "  cpu and cuda masks identical" | tee -a "$report" || echo "  cpu and cuda masks DIFFER" | tee -a "$report"
    done
  done
  if ls .whl/cellpose-*.whl .gpu-fixtures/*_flows.npy >/dev/null 2>&1; then
    step "dynamics: cpipc (CUDA) against Cellpose's own GPU dynamics"
    run 120 bash tools/gpu/dynamics_vs_cellpose.sh --json-out "$report_dir/dynamics_vs_cellpose.jsonl" || status=1
  fi
fi
if [ -d .gpu-fixtures/model ] && ls .whl3/cellpose-*.whl >/dev/null 2>&1 && ! skip model; then
  step "model: cpipc segment (fp32, tf32, bf16, fp16) against Cellpose 3.1.1.2's eval, both on the GPU"
  # About 75 s a size on an H200, most of it Cellpose's start-up and eval.
  run 200 bash tools/gpu/model_vs_cellpose.sh .gpu-fixtures/model "$report_dir/model_vs_cellpose.jsonl" \
    --sizes "${GPU_CHECK_MODEL_SIZES:-512,1024}" || status=1
fi
if ls .whl/nanobind-*.whl >/dev/null 2>&1 && ! skip python; then
  step "python: the package built with CUDA: device views (DLPack), and the client tests"
  # No network here: the build requirements come from .whl (pack_deps.sh), numpy
  # (and torch, for the DLPack test) from the system's Python.
  run 240 bash -c 'rm -rf /tmp/cpipc-pyv && python3 -m venv --system-site-packages /tmp/cpipc-pyv &&
    /tmp/cpipc-pyv/bin/pip install -q --no-index --find-links .whl \
      --config-settings=cmake.define.CPIPC_DEPS_DIR="$PWD/.deps" ./python &&
    CPIPC_DEVICE_PEER=build-gpu/tests/cpipc_device_peer CPIPC_BIN=build-gpu/cpipc CPIPC_SKIP_INSTALL_TEST=1 \
      /tmp/cpipc-pyv/bin/python -m pytest -q -rs python/tests/test_device_view.py python/tests/test_client.py' ||
    status=1
fi
if ! skip demo; then
  step "cpipc demo"
  run 60 build-gpu/cpipc demo -o /tmp/cpipc-demo || status=1
fi
if ls .whl/segment_anything-*.whl >/dev/null 2>&1 && ! skip cpsam; then
  step "Cellpose-SAM (bf16) against Cellpose 4's GPU path: parity, per image, memory (report in cpsam/)"
  run 420 bash tools/gpu/cpsam_vs_cellpose.sh "$report_dir/cpsam" || status=1
fi
if [ "$tests" = ON ] && [ -z "${GPU_CHECK_REST:-}" ]; then
  step "ctest: everything else, in the time left (log in ctest_rest.log)"
  rest_tests "$(nproc)"
fi
step "result: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
