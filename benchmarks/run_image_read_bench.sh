#!/usr/bin/env bash
# The image reader: cpipc::io::read_image_file (bench_image_read) against
# tifffile.imread on the same 2048 x 2048 uint16 TIFFs, written by tifffile:
# Deflate, Deflate with the horizontal predictor, uncompressed. Issue 14's
# goal: the Deflate file is read no slower than tifffile reads it. Each round
# runs, per file, cpipc, then tifffile (its default thread pool), then tifffile
# with one thread, each REPEATS reads in a fresh process, so that a change in
# the machine's load hits all of them. Medians over every read of every round
# and the ratio into benchmarks/results/image-read-<time>/ (results.md,
# rows.jsonl, runs.jsonl, files.jsonl, the files themselves under files/).
# Needs tifffile: the tools venv (scripts/setup.sh), or CPIPC_TIFFFILE_PYTHON.
# Until read_image_file is in the build, bench_image_read does not link.
#   benchmarks/run_image_read_bench.sh [--rounds R] [--repeats N] [--quick] [--out DIR]
# --quick: 1 round of 3 reads (a smoke run, not numbers to quote).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
py=${CPIPC_TIFFFILE_PYTHON:-$cache/tools-venv/bin/python}
rounds=5 repeats=20 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --quick) rounds=1 repeats=3; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds R] [--repeats N] [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
done
"$py" -c 'import numpy, tifffile' 2>/dev/null ||
  { echo "run_image_read_bench.sh: $py has no tifffile; run scripts/setup.sh (the tools venv) or set CPIPC_TIFFFILE_PYTHON" >&2; exit 2; }

cd "$repo"
# CPIPC_BENCH_IMAGE_READ: another bench_image_read (another build); else the release preset's, built here.
bench=${CPIPC_BENCH_IMAGE_READ:-}
if [ -z "$bench" ]; then
  [ -f build-release/build.ninja ] || cmake --preset release >/dev/null
  cmake --build --preset release --target bench_image_read >/dev/null
  bench=build-release/benchmarks/bench_image_read
fi
out=${out:-benchmarks/results/image-read-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out/files"
"$py" benchmarks/image_read_tifffile.py make "$out/files" >"$out/files.jsonl"
cat "$out/files.jsonl" >&2
files=$("$py" -c 'import json,sys; print(" ".join(json.loads(l)["file"] for l in open(sys.argv[1])))' "$out/files.jsonl")

: >"$out/runs.jsonl"
# One timed batch: its JSON object, tagged with the file and round, appended to runs.jsonl.
record() {
  local file=$1 round=$2
  shift 2
  "$@" | "$py" -c 'import json,sys; r=json.loads(sys.stdin.read()); r["file"]=sys.argv[1]; r["round"]=int(sys.argv[2]); print(json.dumps(r))' \
    "$file" "$round" >>"$out/runs.jsonl"
  tail -1 "$out/runs.jsonl" | "$py" -c 'import json,sys; r=json.loads(sys.stdin.read()); print("round %(round)d %(file)-18s %(reader)-12s median %(median_ms)8.2f ms" % r, file=sys.stderr)'
}
for round in $(seq "$rounds"); do
  for f in $files; do
    path="$out/files/$f.tif"
    record "$f" "$round" "$bench" "$path" "$repeats"
    record "$f" "$round" "$py" benchmarks/image_read_tifffile.py time "$path" "$repeats"
    record "$f" "$round" "$py" benchmarks/image_read_tifffile.py time "$path" "$repeats" --maxworkers 1
  done
done
"$py" benchmarks/image_read_tifffile.py report "$out"
echo "wrote $out/results.md and $out/rows.jsonl" >&2
