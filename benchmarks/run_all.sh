#!/usr/bin/env bash
# Every benchmark the project has, each beside its baseline, in one run and
# one report:
#   segment   run_segment_bench.sh   cpipc's segment vs the seed's new shared block per frame
#   dynamics  run_dynamics_bench.sh  cpipc masks_from_flows vs Cellpose's compute_masks (CPU)
#   model     run_model_bench.sh     cpipc segment vs Cellpose 3.1.1.2's eval, same weights (CPU)
#   service   run_service_bench.sh   cpipc serve vs a Cellpose process per client and vs the seed's server
#   gpu       tools/gpu/dynamics_vs_cellpose.sh, only where `cpipc devices --json` lists a GPU
#             (needs build-gpu/, .gpu-fixtures/ and .whl/ as tools/gpu/gpu_check.sh prepares them)
#
#   benchmarks/run_all.sh [--quick] [--only segment,dynamics,model,service,gpu] [--wait-quiet SECONDS]
#
# --quick runs a small subset of every benchmark (a smoke test of the whole
# chain, not numbers to quote). --wait-quiet is passed to the service
# benchmark (it polls until the 1-min load is < 1.5). Writes
# benchmarks/results/<date>/: report.json (the machine and every benchmark's
# rows), report.md (one table per benchmark: case, ours, baseline, ratio,
# goal, met?), report.png (latency against image size), log.txt, and each
# benchmark's own results folder below it. A benchmark that fails is reported
# as failed; the others still run.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
quick=0 only=segment,dynamics,model,service,gpu wait=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --only) only=$2; shift 2 ;;
    --wait-quiet) wait=$2; shift 2 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--quick] [--only segment,dynamics,model,service,gpu] [--wait-quiet S]" >&2; exit 2 ;;
  esac
done
cd "$repo"
out="benchmarks/results/$(date -u +%Y-%m-%d-%H%M%S)"
mkdir -p "$out"
log="$out/log.txt"
status="$out/status.txt"  # one line per benchmark: name, exit status, its results folder
: >"$status"
say() { echo "[run_all $(date -u +%H:%M:%S)] $*" | tee -a "$log" >&2; }
want() { [[ ",$only," == *",$1,"* ]]; }

# The newest folder benchmarks/results/PREFIX-* made after the marker.
newest() { find benchmarks/results -maxdepth 1 -type d -name "$1-*" -newer "$out/.start" -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-; }
touch "$out/.start"

run() {  # run NAME RESULTS_DIR_OR_PREFIX COMMAND...
  local name=$1 where=$2
  shift 2
  say "$name: $*"
  local t0=$SECONDS
  "$@" >>"$log" 2>&1
  local rc=$?
  local dir=$where
  [ -d "$dir" ] || dir=$(newest "$where")
  say "$name: exit $rc after $((SECONDS - t0)) s, results in ${dir:-none}"
  echo "$name $rc ${dir:-none} $((SECONDS - t0))" >>"$status"
}

q() { [ "$quick" = 1 ] && echo "$1" || echo "$2"; }

if want segment; then
  # shellcheck disable=SC2046
  run segment segment benchmarks/run_segment_bench.sh $(q --quick "")
fi
if want dynamics; then
  # shellcheck disable=SC2046
  run dynamics "$out/dynamics" benchmarks/run_dynamics_bench.sh --out "$out/dynamics" $(q --quick "--repeats 3")
fi
if want model; then
  # shellcheck disable=SC2046
  run model model benchmarks/run_model_bench.sh $(q "--rounds 1 --repeat 1 --sizes 512" "--rounds 3 --repeat 3")
fi
if want service; then
  # shellcheck disable=SC2046
  run service "$out/service" benchmarks/run_service_bench.sh --out "$out/service" --wait-quiet "$wait" $(q --quick "")
fi
if want gpu; then
  gpus=$(build/cpipc devices --json 2>/dev/null | "$cache/bench-venv/bin/python" -c 'import json,sys; print(len(json.load(sys.stdin).get("devices", [])))' 2>/dev/null || echo 0)
  if [ "${gpus:-0}" -gt 0 ] && [ -x build-gpu/cpipc ] && [ -d .gpu-fixtures ]; then
    mkdir -p "$out/gpu"
    run gpu "$out/gpu" tools/gpu/dynamics_vs_cellpose.sh --json-out "$out/gpu/rows.jsonl"
  else
    why=$(build/cpipc devices --json 2>/dev/null | "$cache/bench-venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin).get("why_none",""))' 2>/dev/null)
    [ "${gpus:-0}" -gt 0 ] && why="a GPU is there, but build-gpu/cpipc or .gpu-fixtures/ is missing (tools/gpu/gpu_check.sh makes them)"
    say "gpu: skipped: ${why:-no GPU}"
    echo "gpu skipped none 0 ${why:-no GPU}" >>"$status"
  fi
fi

py="$cache/bench-venv/bin/python"
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
  say "installing matplotlib into $cache/bench-venv"
  "$py" -m pip install --quiet matplotlib >>"$log" 2>&1
fi
"$py" benchmarks/report_all.py "$out" --command "benchmarks/run_all.sh$(q " --quick" "")" 2>&1 | tee -a "$log"
