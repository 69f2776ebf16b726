#!/usr/bin/env bash
# Segmentation on one device, side by side in one run: `cpipc segment` (fp32,
# and on a GPU tf32, bf16, fp16) against Cellpose 3.1.1.2's own eval on the
# same TorchScript weights (benchmarks/segment_cellpose.py), on the same
# synthetic 16-bit images, diameter 30, defaults otherwise. Prints and
# writes one JSON line per size and side: median seconds per image over
# --repeat warm evals (after one warm-up), objects, AP@0.5 against Cellpose's
# masks, and the wall time of a whole one-image process (start-up and model
# load included); and a `cpipc serve` row: image to masks published, one
# request at a time.
#
#   tools/gpu/model_vs_cellpose.sh IMAGES_DIR OUT_JSONL [--device cuda] [--repeat 5]
#       [--sizes 512,1024] [--cpipc build-gpu/cpipc] [--python python3]
#
# IMAGES_DIR holds synth<size>.npy (tools/synth/synth.py, seed 0; what
# benchmarks/run_model_bench.sh makes). On a GPU machine Cellpose 3 comes from
# wheels carried in .whl3/ (cellpose 3.1.1.2, fastremap, fill_voids, natsort,
# roifile), installed into /tmp/site3; elsewhere pass --python a venv's python.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/tools/gpu/lib.sh"
images=$(realpath "$1") out=$(realpath -m "$2")
shift 2
device=cuda repeat=5 sizes=512,1024 cpipc="$repo/build-gpu/cpipc" py=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --cpipc) cpipc=$(realpath "$2"); shift 2 ;;
    --python) py=$2; shift 2 ;;
    *) echo "model_vs_cellpose.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$py" ]; then
  py=python3
  install_wheels "$repo/.whl3" /tmp/site3 || exit 1
fi
cd "$repo"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$out"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
precisions=(fp32)
[ "$device" != cpu ] && precisions=(fp32 tf32 bf16 fp16)

IFS=, read -r -a size_list <<<"$sizes"
for s in "${size_list[@]}"; do
  img="$images/synth$s.npy"
  "$py" benchmarks/segment_cellpose.py --sizes "$s" --repeat "$repeat" --device "$device" --threads "$(nproc)" \
    --images-from "$images" --save-masks "$tmp" --out-json "$tmp/cellpose.json" >/dev/null 2>"$tmp/cellpose.log" \
    || { echo "Cellpose failed on $s:"; tail -5 "$tmp/cellpose.log"; continue; }
  t0=$(now)
  "$py" benchmarks/segment_cellpose.py --sizes "$s" --repeat 0 --device "$device" --threads "$(nproc)" \
    --images-from "$images" >/dev/null 2>>"$tmp/cellpose.log"
  once_cp=$(since "$t0")
  "$py" -c "import json,sys; r=json.load(open(sys.argv[1])); r.update(side='cellpose', once_s=float(sys.argv[2])); print(json.dumps(r))" \
    "$tmp/cellpose.json" "$once_cp" | tee -a "$out"
  for prec in "${precisions[@]}"; do
    paths=()
    for _ in $(seq $((repeat + 1))); do paths+=("$img"); done
    "$cpipc" segment "${paths[@]}" --no-npy --json -o "$tmp/$prec" --diameter 30 --device "$device" --precision "$prec" \
      --no-outlines >"$tmp/cpipc.jsonl" 2>"$tmp/cpipc.log" \
      || { echo "cpipc ($prec) failed on $s:"; tail -5 "$tmp/cpipc.log"; continue; }
    t0=$(now)
    "$cpipc" segment "$img" --no-npy --json -o "$tmp/once" --diameter 30 --device "$device" --precision "$prec" >/dev/null 2>&1
    once=$(since "$t0")
    "$py" - "$tmp/cpipc.jsonl" "$tmp/$prec/synth${s}_cp_masks.png" "$tmp/synth${s}_cellpose_masks.npy" "$once" "$prec" "$s" <<'EOF' | tee -a "$out"
import json, sys
import cv2
import numpy as np
from cellpose import metrics
lines = [json.loads(l) for l in open(sys.argv[1])][1:]  # the first is the warm-up
med = lambda k: float(np.median([l["timings_s"][k] for l in lines]))
ours = cv2.imread(sys.argv[2], cv2.IMREAD_UNCHANGED).astype(np.int32)
theirs = np.load(sys.argv[3]).astype(np.int32)
ap = metrics.average_precision([theirs], [ours], threshold=[0.5])[0][0, 0]
print(json.dumps({"side": "cpipc", "precision": sys.argv[5], "size": int(sys.argv[6]), "device": lines[0]["device"],
                  "median_s": med("total"), "net_s": med("network"), "dynamics_s": med("dynamics"),
                  "preprocess_s": med("preprocess"), "masks": int(ours.max()), "cellpose_masks": int(theirs.max()),
                  "ap50_vs_cellpose": float(ap), "repeat": len(lines), "once_s": float(sys.argv[4])}))
EOF
  done
  # A folder's worth in one process (fp32, masks PNG and outlines written):
  # the steady per-image wall time, (wall of 41 images - wall of 1) / 40,
  # against the per-image segmentation alone; `cpipc segment` reads the
  # next image and writes the last one's outputs while it segments.
  paths=()
  for _ in $(seq 41); do paths+=("$img"); done
  t0=$(now)
  "$cpipc" segment "$img" --no-npy --json -o "$tmp/folder1" --diameter 30 --device "$device" >/dev/null 2>&1
  wall1=$(since "$t0")
  t0=$(now)
  "$cpipc" segment "${paths[@]}" --no-npy --json -o "$tmp/folder" --diameter 30 --device "$device" >"$tmp/folder.jsonl" \
    2>"$tmp/folder.log" || { echo "cpipc (folder) failed on $s:"; tail -5 "$tmp/folder.log"; }
  wall41=$(since "$t0")
  "$py" - "$tmp/folder.jsonl" "$wall1" "$wall41" "$s" <<'EOF' | tee -a "$out"
import json, sys
import numpy as np
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
seg = float(np.median([l["timings_s"]["total"] for l in lines[1:]])) if len(lines) > 1 else None
wall1, wall41 = float(sys.argv[2]), float(sys.argv[3])
print(json.dumps({"side": "cpipc segment, 41 images", "precision": "fp32", "size": int(sys.argv[4]),
                  "images": len(lines), "wall_1_s": wall1, "wall_41_s": wall41,
                  "per_image_wall_s": (wall41 - wall1) / 40, "per_image_segment_s": seg}))
EOF

  # Image to masks published: a `cpipc serve` on the device (fp32), one
  # request at a time from `cpipc submit` (the producer's own timing, from
  # the request's arrival to the result's publication).
  sock="$tmp/serve.sock"
  name="mvc-$$-$s"
  "$cpipc" serve --device "$device" --name "$name" --socket "$sock" >"$tmp/serve.out" 2>"$tmp/serve.err" &
  serve_pid=$!
  for _ in $(seq 600); do grep -q "serving on" "$tmp/serve.out" && break; sleep 0.1; done
  : >"$tmp/served.jsonl"
  for _ in $(seq $((repeat + 1))); do
    "$cpipc" submit --socket "$sock" --diameter 30 --json "$img" >>"$tmp/served.jsonl" 2>>"$tmp/serve.err"
  done
  kill -TERM "$serve_pid" && wait "$serve_pid"
  "$py" - "$tmp/served.jsonl" "$s" <<'EOF' | tee -a "$out"
import json, sys
import numpy as np
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][1:]  # the first is the warm-up
ok = [l for l in lines if l.get("type") == "result"]
med = lambda k: float(np.median([l["timings_s"][k] for l in ok])) if ok else None
print(json.dumps({"side": "cpipc serve", "precision": "fp32", "size": int(sys.argv[2]), "repeat": len(ok),
                  "request_s": med("request"), "segment_s": med("total"),
                  "masks": ok[-1]["objects"] if ok else None, "errors": len(lines) - len(ok)}))
EOF
done
