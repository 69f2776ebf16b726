#!/usr/bin/env python3
"""Same-run baseline for `cpipc segment`: Cellpose 3.1.1.2's own eval pipeline on cpipc's
embedded network (models/cpipc_default_cpnet.pt through the shim in
tools/parity/make_parity.py), CPU (or --device cuda), on synthetic 16-bit gray images (tools/synth/synth.py,
fixed seed), diameter 30, defaults otherwise (flow threshold 0.4, tiles 224, batch 8;
--batch-size N changes Cellpose's batch_size: on a CPU 1 runs faster per tile than 8).

    ~/.cache/cpipc/cellpose3-venv/bin/python benchmarks/segment_cellpose.py \
        [--sizes 512,1024] [--repeat 3] [--threads 2] [--device cpu|cuda] [--batch-size 8] [--out-json FILE]
        [--write-images DIR] [--images-from DIR] [--save-masks DIR]

One warm-up eval per size, then --repeat timed evals (--repeat 0: the one eval only, no
medians; for timing a whole one-image process from outside). --write-images DIR also
writes each size's image as DIR/synth<size>.npy (what benchmarks/run_model_bench.sh gives
`cpipc segment`); --images-from DIR reads them from there instead of generating them;
--save-masks DIR writes the last eval's masks as DIR/synth<size>_cellpose_masks.npy. Prints one JSON line per size:
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
    p.add_argument("--device", default="cpu", help="cpu, or cuda: Cellpose's own GPU path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="Cellpose's batch_size (tiles per forward)")
    p.add_argument("--diameter", type=float, default=30.0)
    p.add_argument("--model", default=os.path.join(REPO, "models", "cpipc_default_cpnet.pt"))
    p.add_argument("--out-json", default=None, help="also write the lines to this file")
    p.add_argument("--write-images", default=None, metavar="DIR", help="also save the images as DIR/synth<size>.npy")
    p.add_argument("--images-from", default=None, metavar="DIR", help="read DIR/synth<size>.npy, do not generate")
    p.add_argument("--save-masks", default=None, metavar="DIR",
                   help="save the last masks as DIR/synth<size>_cellpose_masks.npy")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    parity = load("make_parity", "tools/parity/make_parity.py")
    synth = load("synth", "tools/synth/synth.py")
    model = parity.cellpose_model(a.model, a.device)
    net_t, dyn_t = [], []
    timed(model, "_run_net", net_t)
    timed(model, "_compute_masks", dyn_t)

    lines = []
    for size in (int(s) for s in a.sizes.split(",")):
        if a.images_from:
            img = np.load(os.path.join(a.images_from, f"synth{size}.npy"))
        else:
            img, _ = synth.make_image(np.random.default_rng(a.seed), size, 1, 16)
        if a.write_images:
            os.makedirs(a.write_images, exist_ok=True)
            np.save(os.path.join(a.write_images, f"synth{size}.npy"), img)
        masks = model.eval(img, channels=[0, 0], diameter=a.diameter, batch_size=a.batch_size)[0]  # warm-up
        net_t.clear(), dyn_t.clear()
        total = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            masks = model.eval(img, channels=[0, 0], diameter=a.diameter, batch_size=a.batch_size)[0]
            total.append(time.perf_counter() - t0)
        if a.save_masks:
            os.makedirs(a.save_masks, exist_ok=True)
            np.save(os.path.join(a.save_masks, f"synth{size}_cellpose_masks.npy"), masks)
        med = float(np.median(total)) if total else None
        line = {"size": size, "images_per_s": round(1.0 / med, 4) if med else None,
                "median_s": round(med, 4) if med else None,
                "net_s": round(float(np.median(net_t)), 4) if net_t else None,
                "dynamics_s": round(float(np.median(dyn_t)), 4) if dyn_t else None,
                "masks": int(masks.max()), "repeat": a.repeat, "threads": a.threads, "batch_size": a.batch_size,
                "torch_threads": torch.get_num_threads(),
                "diameter": a.diameter, "device": a.device, "cellpose_version": cellpose.version,
                "torch_version": torch.__version__, "machine": platform.machine(),
                "cpus": os.cpu_count()}
        print(json.dumps(line), flush=True)
        lines.append(line)
    if a.out_json:
        with open(a.out_json, "w") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    main()
