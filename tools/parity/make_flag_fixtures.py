#!/usr/bin/env python3
"""Fixtures for `cpipc segment`'s Cellpose options, made by Cellpose 3.1.1.2 itself.

  tests/data/flags/norm_5_95/input.npy  float32 [2, H, W]: the network input of
      CellposeModel.eval(normalize={"percentile": (5, 95)}) on
      tests/data/model/gray8_nodiam/image.npy (what `cellpose --norm_percentile 5 95`
      asks for), at the original size
  tests/data/flags/norm_5_95/masks.npy  that eval's masks
  tests/data/flags/norm_5_95/case.json  its arguments and versions
  tests/data/flags/no_resample/masks.npy, case.json  CellposeModel.eval(resample=False,
      diameter=20) on tests/data/model/gray16_up/image.npy (`cellpose --no_resample`)
  tests/data/flags/augment/masks.npy, case.json  CellposeModel.eval(augment=True,
      diameter=20) on the same image (`cellpose --augment`)
  tests/data/flags/edges_<name>.npy     utils.remove_edge_masks(<labels>) (what
      `cellpose --exclude_on_edges` does to eval's masks) for the labels in
      tests/data/flags/labels_<name>.npy; "gray16_up" takes
      tests/data/model/gray16_up/masks.npy

    make_flag_fixtures.py [--out DIR] [--compare DIR]

Runs in ~/.cache/cpipc/cellpose3-venv with cpipc's embedded network handed to
Cellpose as make_parity.py does; deterministic (fixed threads).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

import cellpose
from cellpose import utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity  # noqa: E402

REPO = make_parity.REPO
PERCENTILE = (5.0, 95.0)


def small_labels():
    """A 12 x 14 label image: masks on each border, one touching only the last
    column or the last row, one inside, a gap in the numbering (no 4)."""
    m = np.zeros((12, 14), np.uint16)
    m[0:3, 4:7] = 1      # top row
    m[4:7, 0:2] = 2      # first column
    m[4:8, 5:9] = 3      # inside
    m[9:12, 2:5] = 5     # last row
    m[3:6, 11:14] = 6    # last column
    m[8:10, 9:12] = 7    # inside, after a removed label
    return m


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "tests", "data", "flags"))
    p.add_argument("--compare", default=None, metavar="DIR", help="check against DIR (exit 1 on mismatch)")
    a = p.parse_args()
    torch.set_num_threads(2)
    os.makedirs(os.path.join(a.out, "norm_5_95"), exist_ok=True)

    # --exclude_on_edges: the CLI runs utils.remove_edge_masks on eval's masks.
    labels = {"gray16_up": np.load(os.path.join(REPO, "tests", "data", "model", "gray16_up", "masks.npy")),
              "small": small_labels()}
    np.save(os.path.join(a.out, "labels_small.npy"), labels["small"])
    for name, m in labels.items():
        kept = utils.remove_edge_masks(m.copy())
        np.save(os.path.join(a.out, f"edges_{name}.npy"), kept.astype(np.uint16))
        print(f"edges_{name}: {int(m.max())} masks -> {int(kept.max())}")

    # --norm_percentile 5 95: eval(normalize={"percentile": ...}), as the CLI calls it.
    image = np.load(os.path.join(REPO, "tests", "data", "model", "gray8_nodiam", "image.npy"))
    model = make_parity.cellpose_model(os.path.join(REPO, make_parity.MODEL))
    kwargs = {"channels": [0, 0], "diameter": None, "normalize": {"percentile": PERCENTILE}}
    res = make_parity.run_case(model, image, kwargs)
    d = os.path.join(a.out, "norm_5_95")
    np.save(os.path.join(d, "input.npy"), res["input"])
    np.save(os.path.join(d, "masks.npy"), res["masks"])
    case = {"image": "tests/data/model/gray8_nodiam/image.npy", "channels": [0, 0], "diameter": None,
            "norm_percentile": list(PERCENTILE), "rescale": res["rescale"], "niter": res["niter"],
            "n_masks": int(res["masks"].max()), "cellpose_version": cellpose.version,
            "torch_version": torch.__version__, "model": make_parity.MODEL}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(f"norm_5_95: {case['n_masks']} masks")

    # --no_resample: eval(resample=False): dynamics at the rescaled size, masks resized back.
    image = np.load(os.path.join(REPO, "tests", "data", "model", "gray16_up", "image.npy"))
    kwargs = {"channels": [0, 0], "diameter": 20.0, "resample": False}
    res = make_parity.run_case(model, image, kwargs)
    d = os.path.join(a.out, "no_resample")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "masks.npy"), res["masks"])
    case = {"image": "tests/data/model/gray16_up/image.npy", "channels": [0, 0], "diameter": 20.0,
            "resample": False, "rescale": res["rescale"], "niter": res["niter"],
            "flows_shape": list(res["flows"].shape), "n_masks": int(res["masks"].max()),
            "cellpose_version": cellpose.version, "torch_version": torch.__version__, "model": make_parity.MODEL}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(f"no_resample: {case['n_masks']} masks, niter {case['niter']}, flows {case['flows_shape']}")

    # --augment: eval(augment=True): flipped half-overlapping tiles, averaged.
    kwargs = {"channels": [0, 0], "diameter": 20.0, "augment": True}
    res = make_parity.run_case(model, image, kwargs)
    d = os.path.join(a.out, "augment")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "masks.npy"), res["masks"])
    case = {"image": "tests/data/model/gray16_up/image.npy", "channels": [0, 0], "diameter": 20.0,
            "augment": True, "rescale": res["rescale"], "niter": res["niter"],
            "n_masks": int(res["masks"].max()), "cellpose_version": cellpose.version,
            "torch_version": torch.__version__, "model": make_parity.MODEL}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    print(f"augment: {case['n_masks']} masks")

    if a.compare:
        bad = []
        for rel in ["edges_gray16_up.npy", "edges_small.npy", "labels_small.npy", "norm_5_95/input.npy"]:
            x, y = np.load(os.path.join(a.out, rel)), np.load(os.path.join(a.compare, rel))
            tol = 1e-5 if x.dtype == np.float32 else 0
            if x.shape != y.shape or np.abs(x.astype(np.float64) - y).max(initial=0) > tol:
                bad.append(rel)
        if bad:
            sys.exit("make_flag_fixtures.py: mismatch: " + ", ".join(bad))
        print(f"all match {a.compare}")


if __name__ == "__main__":
    main()
