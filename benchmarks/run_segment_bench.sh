#!/usr/bin/env bash
# Benchmarks cpipc's segment and, in the same run, the seed's Python
# shared-memory pattern; writes benchmarks/results/segment-<time>/results.json
# and results.md (the table for benchmarks/README.md).
#
#   benchmarks/run_segment_bench.sh [--quick] [--rounds N]
#
# --quick: one short round, a smoke run of a few seconds. Otherwise 5 rounds.
# In each round every frames/s case runs on both sides back to back (which
# side goes first alternates), so that changes in the machine's load hit both
# alike. Builds bench_segment (Release, build-bench/) when needed and
# keeps a venv with numpy in ~/.cache/cpipc/bench-venv for the seed.
# Nothing outlives the run: each benchmark runs in a process group of its
# own that is killed on exit, and shm objects a killed run left are removed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${CPIPC_BENCH_BUILD_DIR:-$repo/build-bench}
venv=${CPIPC_BENCH_VENV:-$HOME/.cache/cpipc/bench-venv}
command_line="benchmarks/run_segment_bench.sh${*:+ $*}"
quick=()
rounds=
while (($#)); do
  case $1 in
    --quick) quick=(--quick) ;;
    --rounds) rounds=$2 && shift ;;
    -h | --help) sed -n '2,14p' "$0" && exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2 && exit 2 ;;
  esac
  shift
done
if [[ -z $rounds ]]; then
  if ((${#quick[@]})); then rounds=1; else rounds=5; fi
fi

if ! grep -qs '^CMAKE_BUILD_TYPE:STRING=Release$' "$build/CMakeCache.txt"; then
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCPIPC_BUILD_TESTS=OFF
fi
ninja -C "$build" bench_segment
if ! "$venv/bin/python" -c 'import numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet numpy
fi

uid=$(id -u)
started=()  # process group ids, one per benchmark process started
running=    # the group still running, if any
shopt -s nullglob
psm_before=(/dev/shm/psm_*)  # the seed's blocks are psm_*: note which were not ours

cleanup() {
  if [[ -n $running ]]; then
    # TERM first: the seed's Python unlinks its blocks in `finally`, and its
    # resource tracker (which ignores TERM) removes what is left once alone.
    kill -TERM -- "-$running" 2>/dev/null || true
    for _ in {1..20}; do
      kill -0 -- "-$running" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$running" 2>/dev/null || true
  fi
  local pgid name
  for pgid in "${started[@]}"; do
    for name in /dev/shm/"cpipc.$uid.bench-$pgid-"*; do
      echo "removing leftover $name" >&2
      rm -f "$name"
    done
  done
  for name in /dev/shm/psm_*; do
    [[ " ${psm_before[*]} " == *" $name "* ]] && continue
    echo "removing leftover $name" >&2
    rm -f "$name"
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs "$@" as the leader of a new process group (setsid does not fork here:
# a background job of a script is no group leader), so cleanup can end all of it.
run_in_group() {
  setsid "$@" &
  running=$!
  started+=("$running")
  local rc=0
  wait "$running" || rc=$?
  running=
  return "$rc"
}

out=$repo/benchmarks/results/segment-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
run_cpipc() {  # run_cpipc FILTER OUTPUT
  run_in_group "$build/benchmarks/bench_segment" "${quick[@]}" --benchmark_filter="$1" \
    --benchmark_out="$out/$2" --benchmark_out_format=json
}
run_seed() {  # run_seed SIDE CONSUMERS OUTPUT
  run_in_group "$venv/bin/python" "$repo/benchmarks/seed_baseline.py" "${quick[@]}" \
    --sides "$1" --consumers "$2" --out "$out/$3" >/dev/null
}
for ((round = 1; round <= rounds; round++)); do
  echo "== round $round of $rounds: latency" >&2
  run_cpipc '^(attach|checksum|check_producer|wake_latency)' "cpipc-$round-latency.json"
  for side in 512 2048; do
    for readers in 1 8; do
      echo "== round $round of $rounds: ${side}x$side to $readers readers, cpipc and the seed" >&2
      if ((round % 2)); then
        run_cpipc "^fps/[a-z]+/$side/$readers/" "cpipc-$round-$side-$readers.json"
        run_seed "$side" "$readers" "seed-$round-$side-$readers.json"
      else
        run_seed "$side" "$readers" "seed-$round-$side-$readers.json"
        run_cpipc "^fps/[a-z]+/$side/$readers/" "cpipc-$round-$side-$readers.json"
      fi
    done
  done
done
"$venv/bin/python" "$repo/benchmarks/report.py" "$out" --command "$command_line" --load-before "$load_before"
echo "wrote $out/results.json and $out/results.md" >&2
