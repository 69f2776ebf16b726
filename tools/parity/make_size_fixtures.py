#!/usr/bin/env python3
"""Fixtures for cpipc's diameter estimation, made by Cellpose 3.1.1.2's own Cellpose.eval.

Cellpose(...).eval(image, channels=[0, 0], diameter=0) runs with cpipc's embedded network
(handed over as make_parity.py does) and the size model from the model file's cpipc.json
(written back to a `_size.npy` exactly as train_size saved it), on synthetic images whose
cells have different sizes. Per case, tests/data/size/<case>/:

  image.npy  uint16 [H, W]   what was given to eval
  masks.npy  uint16 [H, W]   eval's masks, segmented at the estimated diameter
  case.json  diameter (SizeModel.eval's diam: the masks' median diameter at the style
             diameter), diameter_style (the regression's), rescale and niter of the final
             pass, n_masks, versions, description

    make_size_fixtures.py [--out DIR] [--model PT] [--threads 2]

Runs in ~/.cache/cpipc/cellpose3-venv. Deterministic: fixed seeds, fixed threads.
"""
import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

import cellpose
from cellpose import models

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_parity", os.path.join(HERE, "make_parity.py"))
parity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parity)

# name: (seed, shape, zoom, description); synth cells are 24-44 px before the zoom
CASES = {
    "small_cells": (21, (200, 232), 0.55, "cells of about 15-25 px (synth zoomed x0.55)"),
    "mid_cells": (22, (200, 232), 1.0, "cells of about 25-40 px (synth as generated)"),
    "large_cells": (23, (216, 240), 1.6, "cells of about 40-65 px (synth zoomed x1.6)"),
}


def write_size_npy(meta, path):
    """The size model as train.train_size saves it: A float64, smean and ymean float32."""
    sm = meta["size_model"]
    params = {"A": np.asarray(sm["A"], np.float64), "smean": np.asarray(sm["smean"], np.float32),
              "ymean": np.float32(sm["ymean"]), "diam_mean": float(sm["diam_mean"])}
    np.save(path, params)
    return path


def cellpose_with_size_model(model_path, size_npy):
    """A models.Cellpose whose CellposeModel is ours and whose SizeModel loads `size_npy`;
    __init__ would download cyto3, so its attributes are set as __init__ sets them."""
    c = models.Cellpose.__new__(models.Cellpose)
    c.cp = parity.cellpose_model(model_path)
    c.cp.pretrained_model = model_path  # SizeModel requires one
    c.device, c.gpu, c.nchan, c.backbone = c.cp.device, False, 2, "default"
    c.diam_mean = c.cp.diam_mean
    c.pretrained_size = size_npy
    c.sz = models.SizeModel(cp_model=c.cp, pretrained_size=size_npy)
    return c


def run_case(c, image):
    seen = {}
    size_estimation, run_net = c.sz._size_estimation, c.cp._run_net

    def spy_size_estimation(style):
        seen["diameter_style"] = float(np.asarray(size_estimation(style)).reshape(()))
        return size_estimation(style)

    def spy_run_net(x, **kw):  # the last call is the final pass
        seen["rescale"] = float(kw["rescale"])
        return run_net(x, **kw)

    c.sz._size_estimation, c.cp._run_net = spy_size_estimation, spy_run_net
    try:
        masks, flows, styles, diams = c.eval(image, channels=[0, 0], diameter=0)
    finally:
        del c.sz._size_estimation, c.cp._run_net
    return masks, float(np.asarray(diams).reshape(())), seen


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(parity.REPO, "tests", "data", "size"))
    p.add_argument("--model", default=os.path.join(parity.REPO, parity.MODEL))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    extra = {"cpipc.json": ""}
    torch.jit.load(a.model, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["cpipc.json"])
    if "size_model" not in meta:
        sys.exit(f"make_size_fixtures.py: {a.model} has no size model (tools/train/train_size.py)")
    synth = parity.load_synth()
    with tempfile.TemporaryDirectory() as tmp:
        c = cellpose_with_size_model(a.model, write_size_npy(meta, os.path.join(tmp, "m_size.npy")))
        for name, (seed, shape, zoom, desc) in CASES.items():
            t0 = time.time()
            image = parity.synth_image(synth, seed, shape, 1, 16, scale=zoom)
            masks, diameter, seen = run_case(c, image)
            d = os.path.join(a.out, name)
            os.makedirs(d, exist_ok=True)
            np.save(os.path.join(d, "image.npy"), image)
            np.save(os.path.join(d, "masks.npy"), masks)
            case = {"description": desc, "channels": [0, 0], "eval": "Cellpose.eval(diameter=0)",
                    "diameter": diameter, "diameter_style": seen["diameter_style"],
                    "rescale": seen["rescale"], "niter": int(np.uint32(1 / seen["rescale"] * 200)),
                    "n_masks": int(masks.max()), "image_shape": list(image.shape),
                    "cellpose_version": cellpose.version, "torch_version": torch.__version__,
                    "model": os.path.relpath(os.path.abspath(a.model), parity.REPO)}
            with open(os.path.join(d, "case.json"), "w") as f:
                json.dump(case, f, indent=2)
                f.write("\n")
            print(f"{name}: diameter {diameter:.3f} (style {seen['diameter_style']:.3f}), "
                  f"{case['n_masks']} masks, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
