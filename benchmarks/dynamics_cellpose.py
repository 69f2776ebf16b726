"""Times Cellpose's own dynamics on a fixture's flows: compute_masks followed
by fill_holes_and_remove_small_masks (what resize_and_compute_masks does),
torch on the CPU. Prints one JSON line: median seconds, object count, peak
RSS of this process.

    python dynamics_cellpose.py FLOWS.npy FLOW_THRESHOLD REPEATS [cpu|cuda]

On cuda, Cellpose's own GPU path (the flows go to the device inside
compute_masks, as cpipc's --device cuda timing includes its copies); the
first run is a warm-up there and not timed.
"""
import json, resource, sys, time
import numpy as np
import torch
from cellpose import dynamics, utils

flows = np.load(sys.argv[1]).astype(np.float32)
threshold, repeats = float(sys.argv[2]), int(sys.argv[3])
device = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")


def run():
    masks = dynamics.compute_masks(flows[:2], flows[2], niter=200, cellprob_threshold=0.0, flow_threshold=threshold,
                                   max_size_fraction=0.4, device=device)
    masks = utils.fill_holes_and_remove_small_masks(masks, min_size=15)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return masks


if device.type == "cuda":
    run()
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    masks = run()
    times.append(time.perf_counter() - t0)
print(json.dumps({"median_s": float(np.median(times)), "objects": int(masks.max()), "runs": repeats,
                  "device": str(device),
                  "torch_threads": torch.get_num_threads(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
suffix = ("qc" if threshold > 0 else "noqc") + ("_cuda" if device.type == "cuda" else "")
np.save(sys.argv[1].replace("_flows.npy", f"_cellpose_{suffix}.npy"), masks)
