#!/usr/bin/env bash
# Runs every test: sets up (idempotent), builds, runs the suite of the default
# build (CUDA and LibTorch when present; GPU tests skip without a GPU), then
# builds and tests the configuration without CUDA and LibTorch. The Python
# package's tests run after the default suite.
# Options: --quick (default build only).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/setup.sh
echo "[test] default build (CUDA: $(grep -q 'CPIPC_HAVE_CUDA=1' build/build.ninja && echo on || echo off))"
ctest --preset default

# The Python package: setup.sh installed it (pip install ./python) into this venv.
echo "[test] Python package (python/tests)"
"${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}/python-venv/bin/python" -m pytest "$repo/python/tests" -q

if [ $quick -eq 0 ]; then
  echo "[test] build without CUDA and LibTorch"
  [ -f build-nocuda/build.ninja ] || cmake --preset no-cuda >/dev/null
  cmake --build --preset no-cuda -- -j"$(nproc)" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
  ctest --preset no-cuda
fi
