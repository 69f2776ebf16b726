#!/usr/bin/env bash
# Dynamics: cpipc's CPU masks_from_flows against Cellpose's compute_masks on
# the same flows, in one run: 512² (~100 cells), 1024² (~400), 2048² (~1600),
# with and without the flow-error QC. Medians, ratios, peak memory, and
# whether the masks are identical, into benchmarks/results/dynamics-<time>/.
# Needs the Cellpose venv (scripts/setup.sh --reference).
#   benchmarks/run_dynamics_bench.sh [--repeats N] [--quick] [--out DIR]
# --quick: 512² only, 1 repeat (a smoke run, not numbers to quote). --out DIR:
# write there instead of benchmarks/results/dynamics-<time>/ (results.md and
# rows.jsonl, one JSON object per case: what benchmarks/run_all.sh reads).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CPIPC_CACHE_DIR:-$HOME/.cache/cpipc}
py="$cache/cellpose-venv/bin/python"
repeats=5 cases=large names="dense512 dense1024 dense2048" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    --quick) repeats=1 cases=dense512 names=dense512; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--repeats N] [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$py" ] || { echo "run_dynamics_bench.sh: no Cellpose venv at $cache/cellpose-venv; run scripts/setup.sh --reference" >&2; exit 2; }

cd "$repo"
[ -f build-release/build.ninja ] || cmake --preset release >/dev/null
cmake --build --preset release --target cpipc >/dev/null
out=${out:-benchmarks/results/dynamics-$(date -u +%Y%m%d-%H%M%S)}
fx="$out/fixtures"
mkdir -p "$fx"
"$py" tools/dynamics/make_fixtures.py "$fx" --cases "$cases" 2>/dev/null >/dev/null

rows="$out/rows.jsonl"
: >"$rows"
for name in $names; do
  for qc in 0.4 0; do
    tag=$([ "$qc" = 0 ] && echo noqc || echo qc)
    ref=$("$py" benchmarks/dynamics_cellpose.py "$fx/${name}_flows.npy" "$qc" "$repeats" 2>/dev/null)
    times=()
    for _ in $(seq "$repeats"); do
      j=$(/usr/bin/time -f "%M" -o "$out/rss" build-release/cpipc masks --flows "$fx/${name}_flows.npy" \
            --flow-threshold "$qc" -o "$fx/${name}_cpipc_${tag}.npy" --json)
      times+=("$(echo "$j" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["dynamics_ms"])')")
    done
    rss=$(cat "$out/rss")
    "$py" - "$name" "$tag" "$ref" "$rss" "$fx" "${times[@]}" >>"$rows" <<'PY'
import json, sys, numpy as np
name, tag, ref, rss, fx, *times = sys.argv[1:]
ref = json.loads(ref)
ours = np.load(f"{fx}/{name}_cpipc_{tag}.npy"); theirs = np.load(f"{fx}/{name}_cellpose_{tag}.npy")
ms = float(np.median([float(t) for t in times]))
print(json.dumps({"case": name, "qc": tag, "cpipc_ms": ms, "cellpose_ms": ref["median_s"] * 1000,
                  "speedup": ref["median_s"] * 1000 / ms, "cpipc_objects": int(ours.max()),
                  "cellpose_objects": ref["objects"], "identical": bool(np.array_equal(ours, theirs)),
                  "cpipc_peak_rss_mb": int(rss) / 1024, "cellpose_peak_rss_mb": ref["peak_rss_mb"],
                  "torch_threads": ref["torch_threads"]}))
PY
    tail -1 "$rows"
  done
done
"$py" - "$rows" "$repeats" >"$out/results.md" <<'PY'
import json, platform, subprocess, sys, datetime, os
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC with `benchmarks/run_dynamics_bench.sh --repeats {sys.argv[2]}`"
      f" on {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; medians of {sys.argv[2]} runs; Cellpose on torch CPU ({rows[0]['torch_threads']} threads), cpipc with OpenMP.\n")
print("| image | QC | Cellpose | cpipc | speed-up | objects (Cellpose / cpipc) | identical masks | peak RSS Cellpose / cpipc |")
print("|---|---|---:|---:|---:|---|---|---|")
for r in rows:
    print(f"| {r['case'].replace('dense', '')}² | {r['qc']} | {r['cellpose_ms']:.0f} ms | {r['cpipc_ms']:.1f} ms | {r['speedup']:.1f}x |"
          f" {r['cellpose_objects']} / {r['cpipc_objects']} | {'yes' if r['identical'] else 'no'} |"
          f" {r['cellpose_peak_rss_mb']:.0f} / {r['cpipc_peak_rss_mb']:.0f} MiB |")
PY
cat "$out/results.md"
