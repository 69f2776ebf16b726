"""Times Cellpose's own dynamics on a fixture's flows: compute_masks followed
by fill_holes_and_remove_small_masks (what resize_and_compute_masks does),
torch on the CPU. Prints one JSON line: median seconds, object count, peak
RSS of this process.

    python dynamics_cellpose.py FLOWS.npy FLOW_THRESHOLD REPEATS
"""
import json, resource, sys, time
import numpy as np
import torch
from cellpose import dynamics, utils

flows = np.load(sys.argv[1]).astype(np.float32)
threshold, repeats = float(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    masks = dynamics.compute_masks(flows[:2], flows[2], niter=200, cellprob_threshold=0.0, flow_threshold=threshold,
                                   max_size_fraction=0.4, device=torch.device("cpu"))
    masks = utils.fill_holes_and_remove_small_masks(masks, min_size=15)
    times.append(time.perf_counter() - t0)
print(json.dumps({"median_s": float(np.median(times)), "objects": int(masks.max()), "runs": repeats,
                  "torch_threads": torch.get_num_threads(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
np.save(sys.argv[1].replace("_flows.npy", f"_cellpose_{'qc' if threshold > 0 else 'noqc'}.npy"), masks)
