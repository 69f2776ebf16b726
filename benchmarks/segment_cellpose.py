#!/usr/bin/env python3
"""Same-run baseline for `cpipc segment`: Cellpose 3.1.1.2's own eval pipeline on cpipc's
embedded network (models/cpipc_default_cpnet.pt through the shim in
tools/parity/make_parity.py), CPU, on synthetic 16-bit gray images (tools/synth/synth.py,
fixed seed), diameter 30, defaults otherwise (flow threshold 0.4, tiles 224, batch 8).

    ~/.cache/cpipc/cellpose3-venv/bin/python benchmarks/segment_cellpose.py \
        [--sizes 512,1024] [--repeat 3] [--threads 2] [--out-json FILE]

One warm-up eval per size, then --repeat timed evals. Prints one JSON line per size:
median seconds per image for the whole eval, and inside it the network part
(CellposeModel._run_net: resize, pad, tiles, forward, blend, resize back) and the
dynamics part (_compute_masks: flows -> masks, flow QC, fill holes), timed by wrapping
those two methods; the rest (convert_image, normalize_img) is median_s - net_s - dynamics_s.
"""
import argparse
import importlib.util
import json
import os
import platform
import time

import numpy as np
import torch

import cellpose

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def timed(model, name, sink):
    """Replace model.<name> by a wrapper that appends its wall time to sink."""
    inner = getattr(model, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        sink.append(time.perf_counter() - t0)
        return out

    setattr(model, name, wrapper)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="512,1024")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--diameter", type=float, default=30.0)
    p.add_argument("--model", default=os.path.join(REPO, "models", "cpipc_default_cpnet.pt"))
    p.add_argument("--out-json", default=None, help="also write the lines to this file")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    parity = load("make_parity", "tools/parity/make_parity.py")
    synth = load("synth", "tools/synth/synth.py")
    model = parity.cellpose_model(a.model)
    net_t, dyn_t = [], []
    timed(model, "_run_net", net_t)
    timed(model, "_compute_masks", dyn_t)

    lines = []
    for size in (int(s) for s in a.sizes.split(",")):
        img, _ = synth.make_image(np.random.default_rng(a.seed), size, 1, 16)
        model.eval(img, channels=[0, 0], diameter=a.diameter)  # warm-up
        net_t.clear(), dyn_t.clear()
        total = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            masks = model.eval(img, channels=[0, 0], diameter=a.diameter)[0]
            total.append(time.perf_counter() - t0)
        med = float(np.median(total))
        line = {"size": size, "images_per_s": round(1.0 / med, 4), "median_s": round(med, 4),
                "net_s": round(float(np.median(net_t)), 4),
                "dynamics_s": round(float(np.median(dyn_t)), 4),
                "masks": int(masks.max()), "repeat": a.repeat, "threads": a.threads,
                "diameter": a.diameter, "cellpose_version": cellpose.version,
                "torch_version": torch.__version__, "machine": platform.machine(),
                "cpus": os.cpu_count()}
        print(json.dumps(line), flush=True)
        lines.append(line)
    if a.out_json:
        with open(a.out_json, "w") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    main()
