"""Turns the rounds of one run_model_bench.sh run into results.json and results.md.

    ~/.cache/cpipc/cellpose3-venv/bin/python benchmarks/model_report.py RUN_DIR

Reads, per round r and size s: cellpose-r-s.json (segment_cellpose.py's line),
cpipc-r-s.jsonl (`cpipc segment --json`, one line per image, the first a
warm-up), *.time (/usr/bin/time: wall, peak RSS), once-*-r-s.time (a whole
one-image process) and load-r-*.txt. cpipc's per-image times are the median
over its timed images (warm-up excluded), as Cellpose's are. Every number
reported is the median over the rounds; a ratio (Cellpose / cpipc: > 1 means
cpipc is faster) is the median over the rounds of the ratio within the round
(the two sides ran back to back), with its range. AP@0.5 compares cpipc's
masks with Cellpose's (cellpose.metrics.average_precision, Cellpose's masks as
the reference) on the last round's images. With run_model_bench.sh --other MODE,
cpipcother-r-s.* (cpipc with CPIPC_CPU_INFERENCE=MODE; other_mode.txt names it;
runs of --plain-too before 2026-12-07 wrote cpipcplain-r-s.*) get a table of their
own: Cellpose / MODE / default.
"""

import datetime
import glob
import json
import os
import platform
import re
import statistics
import sys

import cv2

# cpipc's CPU inference when CPIPC_CPU_INFERENCE is not set (src/model/model.cpp).
DEFAULT_MODE = "fused"
import numpy as np
from cellpose import metrics


def read_json(path):
    with open(path) as f:
        return json.load(f)


def cpipc_round(path):
    lines = [json.loads(line) for line in open(path) if line.strip()]
    errors = [line for line in lines if "error" in line]
    if errors:
        raise SystemExit(f"{path}: {errors[0]}")
    timed = lines[1:] if len(lines) > 1 else lines
    med = {k: statistics.median(line["timings_s"][k] for line in timed)
           for k in ("total", "network", "dynamics", "preprocess")}
    return {"median_s": med["total"], "net_s": med["network"], "dynamics_s": med["dynamics"],
            "preprocess_s": med["preprocess"], "images_timed": len(timed), "objects": lines[-1]["objects"],
            "tiles": lines[-1]["tiles"], "per_image": [line["timings_s"] for line in lines]}


def ap50(run, size):
    theirs = np.load(os.path.join(run, "masks", f"synth{size}_cellpose_masks.npy"))
    ours = cv2.imread(os.path.join(run, "masks", f"synth{size}_cp_masks.png"), cv2.IMREAD_UNCHANGED)
    ap = metrics.average_precision([theirs.astype(np.int32)], [ours.astype(np.int32)], threshold=[0.5])[0]
    return float(ap[0, 0]), int(theirs.max()), int(ours.max())


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def med_range(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    run = sys.argv[1]
    rounds = sorted({int(m.group(1)) for p in glob.glob(os.path.join(run, "cellpose-*-*.json"))
                     if (m := re.match(r"cellpose-(\d+)-\d+\.json", os.path.basename(p)))})
    sizes = sorted({int(m.group(1)) for p in glob.glob(os.path.join(run, "cellpose-*-*.json"))
                    if (m := re.match(r"cellpose-\d+-(\d+)\.json", os.path.basename(p)))})
    if not rounds:
        raise SystemExit(f"no rounds in {run}")
    raw = {}
    rows = []
    for s in sizes:
        per_round = []
        for r in rounds:
            cp = read_json(os.path.join(run, f"cellpose-{r}-{s}.json"))
            ours = cpipc_round(os.path.join(run, f"cpipc-{r}-{s}.jsonl"))
            # The third side ("plain" here for history: CPIPC_CPU_INFERENCE=other_mode).
            prefix = "cpipcother" if os.path.exists(os.path.join(run, f"cpipcother-{r}-{s}.jsonl")) else "cpipcplain"
            plain_path = os.path.join(run, f"{prefix}-{r}-{s}.jsonl")
            if os.path.exists(plain_path):
                plain = cpipc_round(plain_path)
                plain_once = read_json(os.path.join(run, f"once-{prefix}-{r}-{s}.time"))
            else:
                plain = plain_once = None
            per_round.append({
                "round": r, "cellpose": cp, "cpipc": ours, "plain": plain, "once_plain": plain_once,
                "cellpose_time": read_json(os.path.join(run, f"cellpose-{r}-{s}.time")),
                "cpipc_time": read_json(os.path.join(run, f"cpipc-{r}-{s}.time")),
                "once_cellpose": read_json(os.path.join(run, f"once-cellpose-{r}-{s}.time")),
                "once_cpipc": read_json(os.path.join(run, f"once-cpipc-{r}-{s}.time")),
            })
        raw[s] = per_round

        def m(side, key):
            return statistics.median(p[side][key] for p in per_round)

        def ratio(key_cp, key_ours=None, side_cp="cellpose", side_ours="cpipc"):
            return med_range([p[side_cp][key_cp] / p[side_ours][key_ours or key_cp] for p in per_round])

        ap, n_cp, n_ours = ap50(run, s)
        rows.append({
            "size": s,
            "cellpose_s": m("cellpose", "median_s"), "cpipc_s": m("cpipc", "median_s"),
            "ratio_total": ratio("median_s"),
            "cellpose_images_per_s": 1.0 / m("cellpose", "median_s"), "cpipc_images_per_s": 1.0 / m("cpipc", "median_s"),
            "cellpose_net_s": m("cellpose", "net_s"), "cpipc_net_s": m("cpipc", "net_s"), "ratio_net": ratio("net_s"),
            "cellpose_dynamics_s": m("cellpose", "dynamics_s"), "cpipc_dynamics_s": m("cpipc", "dynamics_s"),
            "ratio_dynamics": ratio("dynamics_s"),
            "cpipc_preprocess_s": m("cpipc", "preprocess_s"),
            "cellpose_once_wall_s": m("once_cellpose", "wall_s"), "cpipc_once_wall_s": m("once_cpipc", "wall_s"),
            "ratio_once_wall": ratio("wall_s", side_cp="once_cellpose", side_ours="once_cpipc"),
            "cellpose_peak_rss_mib": m("cellpose_time", "max_rss_kb") / 1024,
            "cpipc_peak_rss_mib": m("cpipc_time", "max_rss_kb") / 1024,
            "cellpose_once_peak_rss_mib": m("once_cellpose", "max_rss_kb") / 1024,
            "cpipc_once_peak_rss_mib": m("once_cpipc", "max_rss_kb") / 1024,
            "ap50": ap, "cellpose_objects": n_cp, "cpipc_objects": n_ours, "tiles": per_round[-1]["cpipc"]["tiles"],
            "repeat": per_round[0]["cellpose"]["repeat"], "threads": per_round[0]["cellpose"]["threads"],
            "cellpose_torch_threads": per_round[0]["cellpose"].get("torch_threads"),
            "cellpose_batch_size": per_round[0]["cellpose"].get("batch_size", 8),
        })
        if all(p["plain"] for p in per_round):
            rows[-1].update({
                "plain_s": m("plain", "median_s"), "plain_net_s": m("plain", "net_s"),
                "ratio_plain_total": ratio("median_s", side_ours="plain"),
                "ratio_plain_net": ratio("net_s", side_ours="plain"),
                "speedup_total": ratio("median_s", side_cp="plain"),
                "speedup_net": ratio("net_s", side_cp="plain"),
                "plain_once_wall_s": m("once_plain", "wall_s"),
            })
    load = [[open(os.path.join(run, f"load-{r}-{w}.txt")).read().strip() for w in ("before", "after")] for r in rounds]
    first = raw[sizes[0]][0]["cellpose"]
    meta = {
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(), "nproc": os.cpu_count(), "kernel": platform.release(),
        "rounds": len(rounds), "load_average_before_after": load,
        "cellpose_version": first["cellpose_version"], "torch_version": first["torch_version"],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    with open(os.path.join(run, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "rounds": raw}, f, indent=1)

    mode_file = os.path.join(run, "other_mode.txt")
    other = open(mode_file).read().strip() if os.path.exists(mode_file) else "plain"

    def rr(x):
        return f"{x['median']:.2f}x ({x['min']:.2f}–{x['max']:.2f})"

    out = [
        f"Measured {meta['measured']} with `benchmarks/run_model_bench.sh --rounds {len(rounds)} --repeat {rows[0]['repeat']}"
        f"{f' --other {other}' if 'plain_s' in rows[0] else ''}"
        f"{' --cellpose-batch ' + str(rows[0]['cellpose_batch_size']) if rows[0]['cellpose_batch_size'] != 8 else ''}` "
        f"on {meta['cpu']}, {meta['nproc']} cores, Linux {meta['kernel']}; OMP_NUM_THREADS={meta['omp_num_threads']}, "
        f"Cellpose {meta['cellpose_version']} on torch {meta['torch_version']} "
        f"({rows[0]['cellpose_torch_threads']} threads, batch_size {rows[0]['cellpose_batch_size']}). {len(rounds)} rounds, each size's two sides back to back; "
        f"every number is the median over the rounds (per round: the median of {rows[0]['repeat']} images after a warm-up); "
        f"a ratio is Cellpose / cpipc (> 1: cpipc faster), median of the rounds' ratios (range). "
        "Load average (1, 5, 15 min) per round, before → after: "
        + "; ".join(f"{b} → {a}" for b, a in load) + ".",
        "",
        "| image | Cellpose s/image | cpipc s/image | ratio | images/s Cellpose / cpipc | network Cellpose / cpipc (ratio) "
        "| dynamics Cellpose / cpipc (ratio) | one-image process wall, Cellpose / cpipc (ratio) | peak RSS Cellpose / cpipc "
        "| objects Cellpose / cpipc | AP@0.5 |",
        "|---|---:|---:|---|---|---|---|---|---|---|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['size']}² ({r['tiles']} tiles) | {r['cellpose_s']:.2f} | {r['cpipc_s']:.2f} | {rr(r['ratio_total'])} "
            f"| {r['cellpose_images_per_s']:.3f} / {r['cpipc_images_per_s']:.3f} "
            f"| {r['cellpose_net_s']:.2f} / {r['cpipc_net_s']:.2f} s ({rr(r['ratio_net'])}) "
            f"| {r['cellpose_dynamics_s'] * 1000:.0f} / {r['cpipc_dynamics_s'] * 1000:.0f} ms ({rr(r['ratio_dynamics'])}) "
            f"| {r['cellpose_once_wall_s']:.1f} / {r['cpipc_once_wall_s']:.1f} s ({rr(r['ratio_once_wall'])}) "
            f"| {r['cellpose_peak_rss_mib']:.0f} / {r['cpipc_peak_rss_mib']:.0f} MiB "
            f"| {r['cellpose_objects']} / {r['cpipc_objects']} | {r['ap50']:.3f} |")
    if all("plain_s" in r for r in rows):
        o = other
        out += ["", f"cpipc with CPIPC_CPU_INFERENCE={o} and with the default ({DEFAULT_MODE}), "
                "each round's three processes back to back:", "",
                f"| image | s/image Cellpose / {o} / {DEFAULT_MODE} | Cellpose / {o} | Cellpose / {DEFAULT_MODE} "
                f"| {o} / {DEFAULT_MODE} | network s Cellpose / {o} / {DEFAULT_MODE} | network Cellpose / {DEFAULT_MODE} "
                f"| network {o} / {DEFAULT_MODE} | one-image process wall Cellpose / {o} / {DEFAULT_MODE} |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            out.append(
                f"| {r['size']}² | {r['cellpose_s']:.2f} / {r['plain_s']:.2f} / {r['cpipc_s']:.2f} "
                f"| {rr(r['ratio_plain_total'])} | {rr(r['ratio_total'])} | {rr(r['speedup_total'])} "
                f"| {r['cellpose_net_s']:.2f} / {r['plain_net_s']:.2f} / {r['cpipc_net_s']:.2f} "
                f"| {rr(r['ratio_net'])} | {rr(r['speedup_net'])} "
                f"| {r['cellpose_once_wall_s']:.1f} / {r['plain_once_wall_s']:.1f} / {r['cpipc_once_wall_s']:.1f} s |")
    out.append("")
    out.append("Rest of the time per image (convert, normalise; cpipc: `preprocess`): "
               + ", ".join(f"{r['size']}²: Cellpose {(r['cellpose_s'] - r['cellpose_net_s'] - r['cellpose_dynamics_s']) * 1000:.0f} ms, "
                           f"cpipc {r['cpipc_preprocess_s'] * 1000:.0f} ms" for r in rows)
               + ". Peak RSS of the one-image processes: "
               + ", ".join(f"{r['size']}²: {r['cellpose_once_peak_rss_mib']:.0f} / {r['cpipc_once_peak_rss_mib']:.0f} MiB"
                           for r in rows) + ".")
    out += ["", "Every round (the machine's load moves a lot between rounds; read these too):", "",
            "| image | round | load before | Cellpose total / network / dynamics | cpipc total / network / dynamics "
            "| ratio total / network |", "|---|---:|---|---|---|---|"]
    for s in sizes:
        for i, p in enumerate(raw[s]):
            cp, ours = p["cellpose"], p["cpipc"]
            out.append(f"| {s}² | {p['round']} | {load[i][0]} | {cp['median_s']:.2f} / {cp['net_s']:.2f} / {cp['dynamics_s']:.3f} s "
                       f"| {ours['median_s']:.2f} / {ours['net_s']:.2f} / {ours['dynamics_s']:.3f} s "
                       f"| {cp['median_s'] / ours['median_s']:.2f}x / {cp['net_s'] / ours['net_s']:.2f}x |")
    with open(os.path.join(run, "results.md"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
