#!/usr/bin/env bash
# Python consumers of 512² and 2048² uint32 frames, 1 and 4 consumer processes:
# the cpipc package (Publisher + attach: wait_next copies, lease in place)
# against the seed's Python method (a new multiprocessing.shared_memory block
# per frame, its name through a multiprocessing.Pipe). Every round runs each
# case's methods back to back, so a change in the machine's load hits all of
# them. Then a per-step profile of both, in one process. Writes
# benchmarks/results/python-consumer-<time>/: runs.jsonl (every run, every
# consumer), results.json, results.md (medians, ratios), profile.json, log.txt.
# Needs the cpipc package: the venv ~/.cache/cpipc/python-venv
# (pip install ./python), or CPIPC_PYTHON.
#   benchmarks/run_python_consumer_bench.sh [--rounds R] [--wait-quiet S] [--quick] [--out DIR]
# --quick: 1 round with a 0.3 s window (a smoke run, not numbers to quote).
# --wait-quiet S: before each case, wait up to S s for the CPUs to be >= 70% idle.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
py=${CPIPC_PYTHON:-$cache/python-venv/bin/python}
rounds=5 quiet=0 out="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --wait-quiet) quiet=$2; shift 2 ;;
    --quick) rounds=1 extra=(--window 0.3 --warmup 0.1); shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds R] [--wait-quiet S] [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
done
"$py" -c 'import numpy, cpipc' 2>/dev/null ||
  { echo "run_python_consumer_bench.sh: $py cannot import cpipc; run: $cache/python-venv/bin/pip install ./python (or set CPIPC_PYTHON)" >&2; exit 2; }
cd "$repo"
out=${out:-benchmarks/results/python-consumer-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
# Segments and SharedMemory blocks a killed run would leave behind.
before=$(ls /dev/shm | sort)
cleanup() {
  comm -13 <(echo "$before") <(ls /dev/shm | sort) | grep -E '^(psm_|cpipc\..*pybench-)' | while read -r f; do
    echo "removing leftover /dev/shm/$f" >&2; rm -f "/dev/shm/$f"
  done
}
trap cleanup EXIT
{
  echo "# $(date -u +%FT%TZ) $0 $*"
  echo "# nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$py" benchmarks/python_consumer_bench.py run --rounds "$rounds" --wait-quiet "$quiet" --out "$out" "${extra[@]}" >/dev/null
  "$py" benchmarks/python_consumer_bench.py profile --out "$out" >/dev/null
} 2>&1 | tee "$out/log.txt" >&2
# The resource tracker (or anything else) must have said nothing beyond the progress lines.
if grep -vE '^(round |#|[0-9]+² uint32:|  +[0-9.]+ µs )' "$out/log.txt" >&2; then
  echo "run_python_consumer_bench.sh: unexpected output above (resource tracker?)" >&2
fi
leftover=$(comm -13 <(echo "$before") <(ls /dev/shm | sort) | grep -cE '^(psm_|cpipc\..*pybench-)' || true)
echo "leftover shm objects after the run: $leftover" | tee -a "$out/log.txt" >&2
cat "$out/results.md"
