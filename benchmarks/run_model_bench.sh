#!/usr/bin/env bash
# Segmentation (network + dynamics) on the CPU: `cpipc segment` with its
# embedded network against Cellpose 3.1.1.2's own eval on the same TorchScript
# weights (benchmarks/segment_cellpose.py), on the same synthetic 16-bit images
# (512² and 1024², tools/synth/synth.py, seed 0), diameter 30, 2 threads.
# Needs the Cellpose 3 venv (~/.cache/cpipc/cellpose3-venv) and build/cpipc.
#
#   benchmarks/run_model_bench.sh [--rounds 3] [--repeat 3] [--sizes 512,1024] [--threads 2] [--other MODE]
#                                 [--cellpose-batch N]
#
# Rounds alternate the two sides (Cellpose, cpipc, Cellpose, cpipc, ...) so
# that a change in the machine's load hits both. Per round and size:
#   - Cellpose: one process, 1 warm-up eval + --repeat timed evals (medians of
#     total, network = _run_net, dynamics = _compute_masks);
#   - cpipc: one `cpipc segment --json` process with the image given
#     1 + --repeat times; medians of the per-image timings_s, the first
#     (warm-up) excluded;
#   - peak RSS of both processes (/usr/bin/time);
#   - wall time of a whole one-image process on each side (start-up, model
#     load, reading the .npy, one segmentation; cpipc also writes its masks
#     PNG and outlines; --no-npy: not the _seg.npy it writes by default).
# --other MODE: each round also runs cpipc with CPIPC_CPU_INFERENCE=MODE
# (plain: NCHW in Cellpose's batches of 8, as Cellpose runs it), reported as a
# third side beside the default (channels-last, one tile per forward).
# --plain-too is --other plain. --cellpose-batch N: Cellpose's batch_size
# (default 8, Cellpose's own; 1 is faster per tile on a CPU, as cpipc runs).
# benchmarks/model_report.py then writes results.json and results.md (medians
# over the rounds, ratios, AP@0.5 of cpipc's masks against Cellpose's) into
# benchmarks/results/model-<time>/ (git-ignored), with every raw file.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
py="$cache/cellpose3-venv/bin/python"
cpipc="$repo/build/cpipc"
rounds=3 repeat=3 sizes=512,1024 threads=2 other= cp_batch=8
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --other) other=$2; shift 2 ;;
    --plain-too) other=plain; shift ;;
    --cellpose-batch) cp_batch=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--repeat N] [--sizes 512,1024] [--threads N] [--other plain|channels-last] [--cellpose-batch N]" >&2; exit 2 ;;
  esac
done
[ -x "$py" ] || { echo "run_model_bench.sh: no Cellpose 3 venv at $cache/cellpose3-venv" >&2; exit 2; }
[ -x "$cpipc" ] || { echo "run_model_bench.sh: no $cpipc; build it first" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "run_model_bench.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

cd "$repo"
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
out="benchmarks/results/model-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out/masks"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
img="$tmp/images"
timefmt='{"wall_s": %e, "max_rss_kb": %M, "user_s": %U, "sys_s": %S}'
{
  echo "command: benchmarks/run_model_bench.sh --rounds $rounds --repeat $repeat --sizes $sizes --threads $threads${other:+ --other $other} --cellpose-batch $cp_batch"
  echo "OMP_NUM_THREADS=$OMP_NUM_THREADS"
  lscpu
} >"$out/machine.txt"
[ -n "$other" ] && echo "$other" >"$out/other_mode.txt"

# timed_cpipc TIMEFILE OUTDIR IMAGE...: one `cpipc segment` process under /usr/bin/time;
# stdout (JSON lines) to the caller, stderr appended to $log.
timed_cpipc() {
  local timefile=$1 outdir=$2
  shift 2
  /usr/bin/time -f "$timefmt" -o "$timefile" \
    "$cpipc" segment "$@" --json -o "$outdir" --diameter 30 --device cpu --no-npy 2>>"$log"
}

IFS=, read -r -a size_list <<<"$sizes"
for r in $(seq "$rounds"); do
  echo "round $r/$rounds: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  cut -d' ' -f1-3 /proc/loadavg >"$out/load-$r-before.txt"
  for s in "${size_list[@]}"; do
    # Cellpose: warm-up + timed evals; round 1 also writes the images for cpipc.
    write=()
    [ "$r" = 1 ] && write=(--write-images "$img")
    /usr/bin/time -f "$timefmt" -o "$out/cellpose-$r-$s.time" \
      "$py" benchmarks/segment_cellpose.py --sizes "$s" --repeat "$repeat" --threads "$threads" \
      --batch-size "$cp_batch" "${write[@]}" --save-masks "$out/masks" --out-json "$out/cellpose-$r-$s.json" >/dev/null 2>"$out/cellpose-$r-$s.log"
    # cpipc: the same image 1 + repeat times in one process.
    paths=()
    for _ in $(seq $((repeat + 1))); do paths+=("$img/synth$s.npy"); done
    log="$out/cpipc-$r-$s.log" timed_cpipc "$out/cpipc-$r-$s.time" "$out/masks" "${paths[@]}" \
      >"$out/cpipc-$r-$s.jsonl"
    echo "  $s: cellpose $(cut -c1-120 "$out/cellpose-$r-$s.json")" >&2
    echo "  $s: cpipc    $(tail -1 "$out/cpipc-$r-$s.jsonl" | grep -o '"timings_s":{[^}]*}')" >&2
    if [ -n "$other" ]; then
      CPIPC_CPU_INFERENCE=$other log="$out/cpipcother-$r-$s.log" \
        timed_cpipc "$out/cpipcother-$r-$s.time" "$tmp/other" "${paths[@]}" >"$out/cpipcother-$r-$s.jsonl"
      echo "  $s: $other $(tail -1 "$out/cpipcother-$r-$s.jsonl" | grep -o '"timings_s":{[^}]*}')" >&2
    fi
  done
  for s in "${size_list[@]}"; do
    # Whole one-image processes, model load included.
    /usr/bin/time -f "$timefmt" -o "$out/once-cellpose-$r-$s.time" \
      "$py" benchmarks/segment_cellpose.py --sizes "$s" --repeat 0 --threads "$threads" \
      --batch-size "$cp_batch" --images-from "$img" >/dev/null 2>>"$out/cellpose-$r-$s.log"
    log="$out/cpipc-$r-$s.log" timed_cpipc "$out/once-cpipc-$r-$s.time" "$tmp/once" "$img/synth$s.npy" >/dev/null
    if [ -n "$other" ]; then
      CPIPC_CPU_INFERENCE=$other log="$out/cpipcother-$r-$s.log" \
        timed_cpipc "$out/once-cpipcother-$r-$s.time" "$tmp/once" "$img/synth$s.npy" >/dev/null
    fi
    echo "  $s: one-image process wall: cellpose $(cut -c1-30 "$out/once-cellpose-$r-$s.time"), cpipc $(cut -c1-30 "$out/once-cpipc-$r-$s.time")" >&2
  done
  cut -d' ' -f1-3 /proc/loadavg >"$out/load-$r-after.txt"
done
"$py" benchmarks/model_report.py "$out"
cat "$out/results.md"
