"""3-D segmentation end to end: `cpipc segment --do-3d` (and `--stitch-threshold`) against
Cellpose 3.1.1.2's CellposeModel.eval(do_3D=True / stitch_threshold) on the CPU, the same
weights (the embedded network, handed to Cellpose as tools/parity/make_parity.py does) and
the same stack (tools/parity/volume_parity.py's ellipsoid cells). Runs alternate, N each;
medians. Timed: Cellpose's eval call (model already loaded); cpipc's `timings_s.total`
from --json (model loaded, image read and masks written outside it) and the whole process.
Checks the masks agree (AP@0.5) on every run. Prints markdown rows.

    ~/.cache/cpipc/cellpose3-venv/bin/python benchmarks/volume_bench.py \\
        [--cpipc build/cpipc] [--shape 32,192,192] [--repeats 3] [--modes do3d,stitch]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import tifffile
import torch
from cellpose import metrics

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(repo, "tools", "parity"))
import volume_parity as vp  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpipc", default=os.path.join(repo, "build", "cpipc"))
    ap.add_argument("--shape", default="32,192,192")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default="do3d,stitch")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    shape = tuple(int(v) for v in args.shape.split(","))
    stack, _ = vp.cells_stack(7, shape, max(8, shape[0] * shape[1] * shape[2] // 40000), 10.0)
    model = vp.make_parity_module().cellpose_model(vp.MODEL)
    model.net_ortho = None
    modes = {"do3d": (dict(do_3D=True), ["--do-3d"]), "stitch": (dict(stitch_threshold=0.5), ["--stitch-threshold", "0.5"])}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}; "
          f"stack {'x'.join(map(str, shape))} uint16")
    print("| mode | Cellpose eval (s) | cpipc segment total (s) | cpipc process (s) | ratio (eval / total) | objects | AP@0.5 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tif = os.path.join(tmp, "stack.tif")
        tifffile.imwrite(tif, stack, imagej=True, metadata={"axes": "ZYX"})
        for mode in args.modes.split(","):
            kwargs, flags = modes[mode]
            cp_s, ours_s, proc_s, aps = [], [], [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                ref, _, _ = model.eval(stack, channels=[0, 0], z_axis=0, bsize=224, **kwargs)
                cp_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                p = subprocess.run([args.cpipc, "segment", tif, "--device", "cpu", "-o", tmp, "--json", "--no-outlines"]
                                   + flags, capture_output=True, text=True, check=True)
                proc_s.append(time.perf_counter() - t0)
                line = json.loads(p.stdout.strip().splitlines()[-1])
                ours_s.append(line["timings_s"]["total"])
                masks = tifffile.imread(line["masks"])
                aps.append(float(metrics.average_precision([ref.astype(np.int32)], [masks.astype(np.int32)],
                                                           threshold=[0.5])[0][0, 0]))
            c, o = statistics.median(cp_s), statistics.median(ours_s)
            print(f"| {mode} | {c:.1f} | {o:.1f} | {statistics.median(proc_s):.1f} | {c / o:.1f}x | "
                  f"{int(ref.max())} / {line['objects']} | {min(aps):.3f} |", flush=True)


if __name__ == "__main__":
    main()
