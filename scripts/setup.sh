#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for cpipc and builds it. Idempotent: a
# second run checks what is there and only rebuilds what changed.
#   - Debian packages: compilers, CMake, Ninja, libtiff, libpng, OpenCV, GoogleTest, Google
#     Benchmark, CLI11, spdlog/fmt, nlohmann-json, clang + libFuzzer.
#   - LibTorch from the PyPI torch wheel, in a venv under $CPIPC_CACHE_DIR
#     (default ~/.cache/cpipc), outside the repo, reused by every checkout.
#   - CUDA: the toolkit in /usr/local/cuda is used when present (not installed here).
#   - The Python package (python/) built into its own venv for its tests.
#   - With --reference: Cellpose itself (cellpose==4.2.1.1 and 3.1.1.2, each on the
#     same torch, with 3's GUI extras) in their own venvs, for the reference
#     fixtures, the parity tests and the side-by-side benchmarks.
# Options: --no-torch (skip LibTorch), --no-build (install only), --reference.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
torch_version=2.11.0
with_torch=1
build=1
reference=0
cellpose_version=4.2.1.1
# What made tests/data/images (tools/io/make_image_fixtures.py); the TIFF checks read with it.
tifffile_version=2026.3.3
imagecodecs_version=2026.3.6
# The roifile that the cellpose3 venv has (tools/gpu/pack_deps.sh packs it too): the ROI archive check reads with it.
roifile_version=2026.2.10
for arg in "$@"; do
  case $arg in
    --no-torch) with_torch=0 ;;
    --no-build) build=0 ;;
    --reference) reference=1 ;;
    *) echo "setup.sh: unknown option '$arg' (use --no-torch, --no-build, --reference)" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages (only when one is missing).
packages=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format
          libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libspdlog-dev libfmt-dev
          nlohmann-json3-dev libopencv-dev libpng-dev libtiff-dev libzip-dev uuid-dev python3 python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all there"
fi

# 2. LibTorch from the torch wheel, cached outside the repo.
torch_env="$cache/torch-$torch_version"
if [ $with_torch -eq 1 ]; then
  if "$torch_env/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
    say "LibTorch $torch_version: cached in $torch_env"
  else
    say "installing torch==$torch_version into $torch_env (about 5 GB with its CUDA libraries; once per machine)"
    rm -rf "$torch_env"
    mkdir -p "$cache"
    python3 -m venv "$torch_env"
    "$torch_env/bin/pip" install -q --disable-pip-version-check "torch==$torch_version"
  fi
fi

# 3. The Python tools' venv (numpy; tifffile with imagecodecs for its codecs;
# roifile): the FORMAT.md reader and its test, the TIFF checks
# (tests/tiff_roundtrip_check.py, tools/io/make_image_fixtures.py), the
# ImageJ ROI archive check (tests/cellpose_files_check.py), benchmarks' baselines.
tools_env="$cache/tools-venv"
tools_pkgs=(numpy "tifffile==$tifffile_version" "imagecodecs==$imagecodecs_version" "roifile==$roifile_version")
tools_check="import sys, numpy, tifffile, imagecodecs, roifile; sys.exit(tifffile.__version__ != '$tifffile_version' or roifile.__version__ != '$roifile_version')"
if "$tools_env/bin/python" -c "$tools_check" 2>/dev/null; then
  say "tools venv: cached in $tools_env"
elif "$tools_env/bin/python" -c "import numpy" 2>/dev/null; then
  say "adding tifffile $tifffile_version, imagecodecs $imagecodecs_version and roifile $roifile_version to the tools venv in $tools_env"
  "$tools_env/bin/pip" install -q --disable-pip-version-check "${tools_pkgs[@]}"
else
  say "creating the tools venv in $tools_env (numpy, tifffile, imagecodecs, roifile)"
  rm -rf "$tools_env"
  mkdir -p "$cache"
  python3 -m venv "$tools_env"
  "$tools_env/bin/pip" install -q --disable-pip-version-check "${tools_pkgs[@]}"
fi

# 3b. The Python package's venv (python/: pip install ./python, with pytest,
# ml_dtypes for bfloat16, and Pillow to read `cpipc segment`'s mask PNGs): what scripts/test.sh runs python/tests in.
# pip builds the package with nanobind and scikit-build-core from PyPI; its
# CMake build folder (python/build/) is kept, so a re-install rebuilds only
# what changed. A failed build fails setup.
# cpipc.dask's tests also need the [dask] extra (dask[distributed], zarr, scipy):
# they run a real LocalCluster.
py_env="$cache/python-venv"
py_pkgs=(pytest "ml_dtypes>=0.3" numpy pillow "dask[array,distributed]" zarr scipy)
if ! "$py_env/bin/python" -c "import numpy" 2>/dev/null; then
  say "creating the Python package's venv in $py_env"
  rm -rf "$py_env"
  mkdir -p "$cache"
  python3 -m venv "$py_env"
fi
if ! "$py_env/bin/python" -c "import pytest, ml_dtypes, numpy, PIL, dask.array, distributed, zarr, scipy" 2>/dev/null; then
  say "installing the Python package's test dependencies into $py_env: ${py_pkgs[*]}"
  "$py_env/bin/pip" install -q --disable-pip-version-check "${py_pkgs[@]}"
fi
# Re-installed only when its sources changed (a pip install costs ~30 s even then).
py_sources=$(cd "$repo" && find CMakeLists.txt cmake include/cpipc src/ipc src/service python/pyproject.toml python/CMakeLists.txt \
               python/src python/cpipc -type f ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum |
             sha256sum | cut -d' ' -f1)
if [ $build -eq 1 ] && [ "$(cat "$py_env/cpipc-sources.sha256" 2>/dev/null)" != "$py_sources" ]; then
  say "installing the cpipc Python package (pip install ./python) into $py_env"
  "$py_env/bin/pip" install -q --disable-pip-version-check "$repo/python"
  echo "$py_sources" > "$py_env/cpipc-sources.sha256"
elif [ $build -eq 1 ]; then
  say "cpipc Python package: up to date in $py_env"
fi

# 4. Cellpose itself, only for reference fixtures and benchmarks (never at run time).
cp3_env="$cache/cellpose3-venv"
if [ $reference -eq 1 ]; then
  # Cellpose 3.1.1.2: the classic CPnet's training and eval, what the parity tests compare with.
  if ! "$cp3_env/bin/python" -c "import sys; from importlib.metadata import version; sys.exit(version('cellpose') != '3.1.1.2')" 2>/dev/null; then
    say "installing cellpose==3.1.1.2 with torch==$torch_version into $cp3_env"
    rm -rf "$cp3_env"
    python3 -m venv "$cp3_env"
    "$cp3_env/bin/pip" install -q --disable-pip-version-check "torch==$torch_version" cellpose==3.1.1.2
  fi
  cp_env="$cache/cellpose-venv"
  if "$cp_env/bin/python" -c "import sys; from importlib.metadata import version; sys.exit(version('cellpose') != '$cellpose_version')" 2>/dev/null; then
    say "Cellpose $cellpose_version: cached in $cp_env"
  else
    say "installing cellpose==$cellpose_version with torch==$torch_version into $cp_env"
    rm -rf "$cp_env"
    python3 -m venv "$cp_env"
    "$cp_env/bin/pip" install -q --disable-pip-version-check "torch==$torch_version" "cellpose==$cellpose_version"
  fi
fi

# 4b. Cellpose 3's GUI extras in its venv (made by --reference, tools/train/train.sh
# or tools/export/export.sh), where that venv exists: the _seg.npy check loads
# cpipc's file with Cellpose's own GUI loader (offscreen Qt).
gui_pkgs=(PyQt6==6.11.0 pyqtgraph==0.14.0 qtpy==2.4.3 superqt==0.9.0)
if [ -x "$cp3_env/bin/python" ] && ! "$cp3_env/bin/python" -c "import qtpy, PyQt6, pyqtgraph, superqt" 2>/dev/null; then
  say "adding Cellpose's GUI extras (${gui_pkgs[*]}) to $cp3_env"
  "$cp3_env/bin/pip" install -q --disable-pip-version-check "${gui_pkgs[@]}" ||
    say "could not add Cellpose's GUI extras: the _seg.npy GUI load is skipped"
fi

# 5. Configure and build (the default preset: CUDA when nvcc is there).
if [ $build -eq 1 ]; then
  cd "$repo"
  torch_flag=()
  [ $with_torch -eq 1 ] || torch_flag=(-DCPIPC_WITH_TORCH=OFF)
  if [ ! -f build/build.ninja ]; then
    say "configuring build/"
    cmake --preset default -DCPIPC_CACHE_DIR="$cache" "${torch_flag[@]}" >/dev/null
  fi
  say "building with $(nproc) jobs"
  cmake --build --preset default -- -j"$(nproc)" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
  test -x build/cpipc || { echo "setup.sh: the build failed; see the output above" >&2; exit 1; }
  say "done: build/cpipc is ready (try: build/cpipc demo)"
fi
