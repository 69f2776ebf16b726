#!/usr/bin/env bash
# Packs what a GPU machine without Debian's packages needs for
# tools/gpu/gpu_check.sh, into git-ignored folders to name in the device
# tool's `carry`. Run here, after scripts/setup.sh.
#   tools/gpu/pack_deps.sh          .deps/: CLI11 and nlohmann-json headers, GoogleTest sources,
#                                   libpng (headers, libpng16.so.16)
#                                   libtiff's headers and libtiff.so.6, libzip's and libzip.so.4, each
#                                   with the libraries it needs; uuid/uuid.h and libuuid.so.1
#                                   (.deps/lib; CMake adds it to the RPATH)
#   tools/gpu/pack_deps.sh --all    also .gpu-fixtures/ (the 1024² dynamics case, the 512² and
#                                   1024² model images) and the Cellpose wheels: .whl/ (4.2.1.1,
#                                   dynamics; and the Python package's build wheels) and .whl3/
#                                   (3.1.1.2, segmentation)
# Everything carried must stay under the device tool's 64 MiB with the tree.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
dest=$repo/.deps
rm -rf "$dest"
mkdir -p "$dest/include"
cp -r /usr/include/CLI "$dest/include/"
cp -r /usr/include/nlohmann "$dest/include/"
cp -r /usr/src/googletest "$dest/googletest"
# libpng: its three headers and the shared library cpipc_io links.
mkdir -p "$dest/lib"
cp -L /usr/include/libpng16/png.h /usr/include/libpng16/pngconf.h /usr/include/libpng16/pnglibconf.h "$dest/include/"
cp -L /usr/lib/x86_64-linux-gnu/libpng16.so.16 "$dest/lib/"
ln -s libpng16.so.16 "$dest/lib/libpng.so"
# libtiff (libtiff-dev): the headers, and the library with every non-glibc
# library it loads, under their sonames; libtiff.so for the linker.
multiarch=$(gcc -print-multiarch)
for h in tiff.h tiffconf.h tiffio.h tiffvers.h; do
  cp "/usr/include/$multiarch/$h" "$dest/include/" 2>/dev/null || cp "/usr/include/$h" "$dest/include/"
done
# A library under its soname with every non-glibc library it loads, and
# NAME.so for the linker.
pack_lib() {  # SONAME LINKNAME
  local lib
  lib=$(readlink -f "/usr/lib/$multiarch/$1")
  cp "$lib" "$dest/lib/$1"
  ln -sf "$1" "$dest/lib/$2"
  ldd "$lib" | awk '$3 ~ /^\// {print $1, $3}' | while read -r soname dep; do
    case $soname in
      libc.so.* | libm.so.* | libstdc++.so.* | libgcc_s.so.* | ld-linux*) ;;  # on every machine
      *) cp "$(readlink -f "$dep")" "$dest/lib/$soname" ;;
    esac
  done
}
pack_lib libtiff.so.6 libtiff.so
# libzip (libzip-dev): the ROI archives; libuuid (uuid-dev): their names.
cp /usr/include/zip.h "$dest/include/"
cp "/usr/include/$multiarch/zipconf.h" "$dest/include/" 2>/dev/null || cp /usr/include/zipconf.h "$dest/include/"
pack_lib libzip.so.4 libzip.so
mkdir -p "$dest/include/uuid"
cp /usr/include/uuid/uuid.h "$dest/include/uuid/"
pack_lib libuuid.so.1 libuuid.so
echo "packed $(du -sh "$dest" | cut -f1) into $dest"
[ "${1:-}" = "--all" ] || exit 0

cd "$repo"
for d in .deps .gpu-fixtures .whl .whl3; do
  grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >>.git/info/exclude
done
fixtures=.gpu-fixtures
mkdir -p "$fixtures/model"
if [ ! -f "$fixtures/dense1024_flows.npy" ]; then
  "$cache/cellpose-venv/bin/python" tools/dynamics/make_fixtures.py "$fixtures" --cases dense1024
  rm -f "$fixtures"/dense1024_labels.npy "$fixtures"/dense1024_mu.npy "$fixtures"/summary_*.json
fi
"$cache/cellpose3-venv/bin/python" - "$fixtures/model" <<'PY'
import importlib.util, os, sys
import numpy as np
spec = importlib.util.spec_from_file_location("synth", os.path.join("tools", "synth", "synth.py"))
synth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synth)
for size in (512, 1024):  # what benchmarks/run_model_bench.sh segments (seed 0)
    img, _ = synth.make_image(np.random.default_rng(0), size, 1, 16)
    np.save(os.path.join(sys.argv[1], f"synth{size}.npy"), img)
PY
wheels() {  # DIR PACKAGE==VERSION...
  local dir=$1
  shift
  mkdir -p "$dir"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dir" "$@"
}
wheels .whl cellpose==4.2.1.1 fastremap==1.21.0 fill_voids==2.1.2
# Cellpose-SAM (cpsam_vs_cellpose.sh): its ViT comes from segment_anything;
# CellposeModel imports cellpose.io, which needs natsort and roifile.
wheels .whl segment_anything==1.0 natsort==8.4.0 roifile==2026.2.10
# The Python package's build and test requirements (pure Python wheels), for
# gpu_check's device-view step: pip install --no-index --find-links .whl ./python.
wheels .whl nanobind==3.1.0 scikit_build_core==1.1.2 pathspec==1.1.1 packaging==26.4 pytest==9.2.0 pluggy==1.7.0 \
  iniconfig==2.3.1
wheels .whl3 cellpose==3.1.1.2 fastremap==1.21.0 fill_voids==2.1.2 natsort==8.4.0 roifile==2026.2.10
# The device tool sends at most 64 MiB: the tree (tracked and untracked files git does not
# ignore, shared/) and the carried folders. Since the default network went to Cellpose's
# widths (27 MB) the 1024² dynamics case (10.5 MB) no longer fits beside the rest: leave it
# out (gpu_check then compares CPU and CUDA dynamics on tests/data/dynamics' dense384) rather
# than fail the call.
bytes() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
travels() {
  local tree
  tree=$({ git ls-files -z; git ls-files -z --others --exclude-standard; } | du -cb --files0-from=- | tail -1 | cut -f1)
  echo $((tree + $(bytes shared .deps "$fixtures" .whl .whl3)))
}
limit=$((64 * 1024 * 1024))
travelling=$(travels)  # du over the whole tree: once, and again only if something was left out
if [ "$travelling" -gt "$limit" ] && [ -f "$fixtures/dense1024_flows.npy" ]; then
  rm -f "$fixtures"/dense1024_*
  echo "pack_deps.sh: left out the 1024² dynamics case: with it the call would exceed the device tool's 64 MiB" >&2
  travelling=$(travels)
fi
du -sh "$fixtures" .whl .whl3
echo "pack_deps.sh: $((travelling / 1048576)) MiB would travel with carry [.deps, .gpu-fixtures, .whl, .whl3] (limit 64)"
[ "$travelling" -le "$limit" ] || echo "pack_deps.sh: over the limit: carry fewer folders per call" >&2
