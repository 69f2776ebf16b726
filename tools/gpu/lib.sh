# Sourced by the tools/gpu scripts. The GPU machine has no registry: the
# reference wheels travel in the repository (.whl/ for Cellpose 4 and its
# dependencies, .whl3/ for Cellpose 3.1.1.2; tools/gpu/pack_deps.sh packs
# them) and are unpacked into a private site directory once per run.

# install_wheels WHEEL_DIR TARGET: install every wheel in WHEEL_DIR into TARGET
# and put TARGET first on PYTHONPATH; returns non-zero with one line on stderr
# when the wheels are missing or do not install.
install_wheels() {
  local dir=$1 target=$2
  if ! compgen -G "$dir/*.whl" >/dev/null; then
    echo "${0##*/}: no wheels in $dir (run tools/gpu/pack_deps.sh --all here and carry it)" >&2
    return 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$target" "$dir"/*.whl \
    || { echo "${0##*/}: cannot install the wheels in $dir" >&2; return 1; }
  export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
}
