#!/usr/bin/env python3
"""Score a cpipc network on the held-out synthetic families and on bundled real images.

The network runs through the cpipc binary (`cpipc segment IMG --diameter D --save-tif`),
so a TorchScript file in cpipc's format (--model, see models/README.md) and the binary's
embedded default are evaluated by the same code path cpipc users get.

  held-out: tools/eval/heldout.py, --n images per family, seeds --seed.. (never used
            for training); AP at IoU 0.5/0.75/0.9, mean over images.
  real:     skimage.data.coins() (24 coins; no masks, so the object count against 24),
            only when scikit-image is installed (train.sh installs 0.26.0 into a new
            venv; an older venv: pip install scikit-image==0.26.0). Evaluation only.
            skimage's human_mitosis / cells3d are fetched with pooch, not bundled in the
            wheel, so they are not used here (no downloads).

AP is our own implementation of Cellpose's definition (metrics.average_precision:
one-to-one matching by linear_sum_assignment on IoU, AP = TP / (TP + FP + FN)); when
cellpose is importable it is checked against cellpose.metrics on the same masks.

    python evaluate.py [--cpipc build/cpipc] [--model M.pt] [--n 8] [--diameter true|0|D]
                       [--json out.json] [--markdown out.md]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tifffile
from scipy.optimize import linear_sum_assignment

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "eval"))
import heldout  # noqa: E402

THRESHOLDS = (0.5, 0.75, 0.9)
COINS = 24


def overlap_matrix(true, pred):
    """Pixels shared by every true (rows) and predicted (cols) label, background row and column 0."""
    nt, npd = int(true.max()), int(pred.max())
    return np.bincount(true.ravel().astype(np.int64) * (npd + 1) + pred.ravel().astype(np.int64),
                       minlength=(nt + 1) * (npd + 1)).reshape(nt + 1, npd + 1)


def iou_matrix(true, pred, overlap=None):
    """IoU between every true (rows) and predicted (cols) label, background dropped."""
    overlap = overlap_matrix(true, pred) if overlap is None else overlap
    area_t, area_p = overlap.sum(1, keepdims=True), overlap.sum(0, keepdims=True)
    iou = overlap / np.maximum(area_t + area_p - overlap, 1)
    return iou[1:, 1:]


def matches(iou, th):
    """(true, predicted) index pairs of an optimal one-to-one matching with IoU >= th."""
    nt, npd = iou.shape
    if not (nt and npd):
        return np.zeros(0, int), np.zeros(0, int)
    # Cellpose's cost: prefer more matches above th, then higher IoU
    cost = -(iou >= th).astype(float) - iou / (2 * min(nt, npd))
    r, c = linear_sum_assignment(cost)
    keep = iou[r, c] >= th
    return r[keep], c[keep]


def average_precision(true, pred, thresholds=THRESHOLDS):
    """AP = TP / (TP + FP + FN) per threshold, with an optimal one-to-one matching."""
    iou = iou_matrix(true, pred)
    nt, npd = iou.shape
    out = []
    for th in thresholds:
        tp = len(matches(iou, th)[0])
        denom = tp + (npd - tp) + (nt - tp)
        out.append(tp / denom if denom else 1.0)
    return out


FAILURES = ("found", "merged", "split", "missed", "other")


def failures(true, pred):
    """Why each true object was or was not found at IoU 0.5, and the false positives.

    found:  matched at IoU >= 0.5 (the one-to-one matching of average_precision)
    missed: predictions cover less than half of it
    merged: its best prediction is mostly (> 40 %) other objects or background, and
            covers most of it: two cells drawn as one
    split:  two or more predictions each cover over 15 % of it
    other:  covered but poorly outlined
    false_positives: predictions left unmatched."""
    nt, npd = int(true.max()), int(pred.max())
    counts = dict.fromkeys(FAILURES, 0)
    overlap = overlap_matrix(true, pred)
    area_t, area_p = overlap.sum(1), overlap.sum(0)
    matched_true, matched_pred = matches(iou_matrix(true, pred, overlap), 0.5)
    found = set(matched_true.tolist())
    for t in range(1, nt + 1):
        if not area_t[t]:
            continue
        row = overlap[t, 1:]
        best = int(row.argmax()) if npd else 0
        covered = row.sum() / area_t[t]
        if t - 1 in found:
            counts["found"] += 1
        elif covered < 0.5:
            counts["missed"] += 1
        elif row[best] / area_t[t] > 0.5 and row[best] / area_p[best + 1] < 0.6:
            counts["merged"] += 1
        elif (row / area_t[t] > 0.15).sum() >= 2:
            counts["split"] += 1
        else:
            counts["other"] += 1
    counts["false_positives"] = npd - len(matched_pred)
    return counts


def median_diameter(labels):
    """Cellpose's diameter of a mask set: median of 2 sqrt(area / pi)."""
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    return float(np.median(2 * np.sqrt(areas / np.pi))) if areas.size else 0.0


def segment(cpipc, model, image_path, diameter, out_dir):
    cmd = [cpipc, "segment", image_path, "--json", "--diameter", f"{diameter:.3f}",
           "-o", out_dir, "--save-tif", "--no-npy", "--no-outlines", "--device", "cpu"]
    if model:
        cmd += ["--model", model]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"evaluate.py: {' '.join(cmd)} failed:\n{run.stdout}{run.stderr}")
    stem = os.path.splitext(os.path.basename(image_path))[0]
    return tifffile.imread(os.path.join(out_dir, stem + "_cp_masks.tif"))


def cellpose_check(trues, preds, ours):
    """Largest |ours - cellpose.metrics| over the images, or None without cellpose."""
    try:
        from cellpose import metrics
    except ImportError:
        return None
    ap = metrics.average_precision(list(trues), list(preds), threshold=list(THRESHOLDS))[0]
    return float(np.abs(np.asarray(ap) - np.asarray(ours)).max())


def evaluate_family(a, family, work):
    trues, preds, aps, counts = [], [], [], {}
    for i in range(a.n):
        img, labels = heldout.make(family, a.seed + i, a.size)
        path = os.path.join(work, f"{family}_{i:03d}.tif")
        tifffile.imwrite(path, img, photometric="minisblack")
        d = median_diameter(labels) if a.diameter == "true" else float(a.diameter)
        pred = segment(a.cpipc, a.model, path, d, work)
        trues.append(labels)
        preds.append(pred.astype(np.int32))
        aps.append(average_precision(labels, pred))
        for k, v in failures(labels, pred).items():
            counts[k] = counts.get(k, 0) + v
    aps = np.asarray(aps)
    print(f"{family}: AP@0.5 {aps[:, 0].mean():.3f}", file=sys.stderr, flush=True)
    return {"family": family, "n_images": a.n, "seeds": [a.seed, a.seed + a.n - 1],
            **{f"ap{int(t * 100)}": round(float(aps[:, k].mean()), 3)
               for k, t in enumerate(THRESHOLDS)},
            "objects_true": int(sum(t.max() for t in trues)),
            "objects_found": int(sum(p.max() for p in preds)),
            "failures": counts,
            "cellpose_metrics_max_diff": cellpose_check(trues, preds, aps)}


def evaluate_coins(a, work):
    try:
        from skimage import data
    except ImportError:
        return {"image": "skimage.data.coins", "skipped": "scikit-image is not installed"}
    path = os.path.join(work, "coins.tif")
    tifffile.imwrite(path, data.coins(), photometric="minisblack")
    pred = segment(a.cpipc, a.model, path, a.coins_diameter, work)
    found = int(len(np.unique(pred)) - 1)
    return {"image": "skimage.data.coins", "diameter": a.coins_diameter, "expected": COINS,
            "found": found, "within_2": abs(found - COINS) <= 2}


def markdown(rows, coins, a):
    d = {"true": "each image's true median diameter", "0": "estimated (size model)"}
    lines = [f"Model: {a.model or 'embedded default'}; diameter: "
             f"{d.get(a.diameter, a.diameter + ' px')}; {a.n} images per family, "
             f"{a.size}x{a.size}, seeds {a.seed}..{a.seed + a.n - 1}", "",
             "| family | AP@0.5 | AP@0.75 | AP@0.9 | objects found / true |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['ap50']:.3f} | {r['ap75']:.3f} | {r['ap90']:.3f}"
                     f" | {r['objects_found']} / {r['objects_true']} |")
    lines += ["", "Each true object at IoU 0.5 (`failures()`): found, or why not; and the "
              "predictions matching nothing.", "",
              "| family | " + " | ".join(FAILURES) + " | false positives |",
              "|---|" + "---:|" * (len(FAILURES) + 1)]
    for r in rows:
        f = r["failures"]
        total = max(sum(f[k] for k in FAILURES), 1)
        lines.append(f"| {r['family']} | " + " | ".join(f"{f[k]} ({f[k] / total:.0%})" for k in FAILURES)
                     + f" | {f['false_positives']} |")
    if "skipped" in coins:
        lines.append(f"\ncoins: skipped ({coins['skipped']})")
    else:
        lines.append(f"\ncoins (diameter {coins['diameter']:g}): {coins['found']} objects found,"
                     f" {COINS} expected; within ±2: {'yes' if coins['within_2'] else 'no'}")
    return "\n".join(lines) + "\n"


def default_cpipc():
    for p in (os.path.join(REPO, "build", "cpipc"), "/work/main/build/cpipc"):
        if os.access(p, os.X_OK):
            return p
    return "cpipc"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpipc", default=default_cpipc(), help="the cpipc binary")
    p.add_argument("--model", help="TorchScript model (cpipc format); default: embedded")
    p.add_argument("--families", default=",".join(heldout.FAMILIES),
                   help="comma separated held-out families; '' for the real images only")
    p.add_argument("--n", type=int, default=8, help="images per family")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--diameter", default="true",
                   help="'true' (each image's median label diameter), 0 (estimate), or px")
    p.add_argument("--coins-diameter", type=float, default=0.0,
                   help="diameter for coins (0: estimated by the size model)")
    p.add_argument("--no-real", action="store_true", help="skip the skimage images")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--markdown", help="write the table here")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        rows = [evaluate_family(a, f, work) for f in a.families.split(",") if f]
        coins = {"image": "skimage.data.coins", "skipped": "--no-real"} if a.no_real \
            else evaluate_coins(a, work)
    table = markdown(rows, coins, a)
    print(table)
    result = {"model": a.model or "embedded", "cpipc": a.cpipc, "diameter": a.diameter,
              "ap": "own (Cellpose's definition), mean over images", "heldout": rows,
              "real": {"coins": coins, "human_mitosis": "skipped: fetched by pooch, not bundled"}}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
