#!/usr/bin/env bash
# Service: `cpipc serve` (embedded model, CPU) against each client running
# Cellpose 3.1.1.2's pipeline itself, and against the seed's method (a Python
# Cellpose server returning masks through a new shared-memory block per call),
# for 256² and 512² images with 1, 4 and 8 concurrent clients: requests/s,
# latency p50/p99, and result -> a consumer's first byte. See
# benchmarks/service_bench.py for what each side does.
# Needs build/cpipc (with LibTorch) and the Cellpose 3 venv (~/.cache/cpipc/cellpose3-venv).
#
#   benchmarks/run_service_bench.sh [--rounds 3] [--sizes 256,512] [--clients 1,4,8]
#                                   [--requests 1:2,4:1,8:1] [--wait-quiet SECONDS] [--quick] [--out DIR]
#
# --requests C:R gives the requests per client for C clients. --wait-quiet
# polls every 60 s (up to SECONDS) for a 1-min load < 1.5 and no other
# benchmark before measuring. --quick: 1 round, 256², 1 and 4 clients, 1
# request each (a smoke run, not numbers to quote). Writes
# benchmarks/results/service-<time>/ (or --out): results.json, results.md.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
py="$cache/cellpose3-venv/bin/python"
rounds=3 sizes=256,512 clients=1,4,8 requests=1:2,4:1,8:1 wait=0 out=""
args="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --wait-quiet) wait=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) rounds=1 sizes=256 clients=1,4 requests=1:1,4:1; shift ;;
    *) echo "usage: $0 [--rounds N] [--sizes 256,512] [--clients 1,4,8] [--requests 1:2,4:1,8:1] [--wait-quiet S] [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$py" ] || { echo "run_service_bench.sh: no Cellpose 3 venv at $cache/cellpose3-venv" >&2; exit 2; }
[ -x "$repo/build/cpipc-torch" ] || { echo "run_service_bench.sh: no build/cpipc-torch (LibTorch build); run scripts/setup.sh" >&2; exit 2; }
cd "$repo"
cmake --build build --target bench_service >/dev/null
out=${out:-benchmarks/results/service-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
"$py" benchmarks/service_bench.py "$out" --rounds "$rounds" --sizes "$sizes" --clients "$clients" \
  --requests "$requests" --wait-quiet "$wait" --command "benchmarks/run_service_bench.sh${args:+ $args}"
