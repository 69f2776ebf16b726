"""Reference fixtures for cpipc's dynamics, made with the installed Cellpose.

Deterministic synthetic label images -> Cellpose's masks_to_flows (the flows
a perfect network would give, times 5, plus deterministic noise) -> Cellpose's
compute_masks + fill_holes_and_remove_small_masks, with and without the
flow-error QC. Writes per case:

  <case>_labels.npy      uint16 [H, W]     the synthetic ground truth
  <case>_flows.npy       float16 [3, H, W] dY, dX, cellprob logit (what cpipc reads)
  <case>_mu.npy          float16 [2, H, W] Cellpose's unit flows from <case>_labels
  <case>_masks_qc.npy    uint16/uint32     Cellpose's masks, flow_threshold 0.4
  <case>_masks_noqc.npy  uint16/uint32     Cellpose's masks, flow_threshold 0

3-D cases (names ending in "3d"): Cellpose's 3-D masks_to_flows of
synthetic ellipsoids, and compute_masks(do_3D=True) (no flow-error QC in
3-D) + fill_holes_and_remove_small_masks:

  <case>_labels.npy      uint8/uint16 [Z, Y, X]   the synthetic ground truth
  <case>_flows.npy       float16 [4, Z, Y, X]     dZ, dY, dX, cellprob logit
  <case>_masks.npy       uint16/uint32 [Z, Y, X]  Cellpose's masks

The large 3-D case (bench3d, 64 x 512 x 512, for benchmarks only) takes flows
that point at each ellipsoid's centre instead of the diffusion flows, which
would take Cellpose many minutes to make at that size.

Flows are stored as float16 and Cellpose runs on exactly those values
(upcast to float32), so both sides see the same input.

    python make_fixtures.py OUT_DIR [--cases all|committed|large]
"""
import argparse, json, os, sys, time
import numpy as np


def ellipse(lab, cy, cx, ry, rx, angle, value):
    h, w = lab.shape
    r = int(max(ry, rx)) + 2
    y0, y1, x0, x1 = max(0, int(cy) - r), min(h, int(cy) + r + 1), max(0, int(cx) - r), min(w, int(cx) + r + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    c, s = np.cos(angle), np.sin(angle)
    u = ((yy - cy) * c + (xx - cx) * s) / ry
    v = (-(yy - cy) * s + (xx - cx) * c) / rx
    lab[y0:y1, x0:x1][(u * u + v * v) <= 1.0] = value


def packed(h, w, n, rmin, rmax, rng, aspect=(1.0, 1.3), overlap=0.9):
    """Ellipses placed at random, allowed to touch (centres kept apart)."""
    lab = np.zeros((h, w), np.uint16)
    centres = []
    k = 0
    for _ in range(n * 40):
        if k >= n:
            break
        r = rng.uniform(rmin, rmax)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        if any((cy - y) ** 2 + (cx - x) ** 2 < (overlap * (r + rr)) ** 2 for y, x, rr in centres):
            continue
        a = rng.uniform(*aspect)
        k += 1
        ellipse(lab, cy, cx, r * a, r / a, rng.uniform(0, np.pi), k)
        centres.append((cy, cx, r))
    return lab


def ellipsoid(lab, c, r, angle, value):
    """Fills an ellipsoid, centre c = (z, y, x), radii r, turned by `angle` in the YX plane."""
    lo = [max(0, int(c[i] - max(r) - 2)) for i in range(3)]
    hi = [min(lab.shape[i], int(c[i] + max(r) + 3)) for i in range(3)]
    if any(lo[i] >= hi[i] for i in range(3)):
        return
    zz, yy, xx = np.mgrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    co, si = np.cos(angle), np.sin(angle)
    u = ((yy - c[1]) * co + (xx - c[2]) * si) / r[1]
    v = (-(yy - c[1]) * si + (xx - c[2]) * co) / r[2]
    w = (zz - c[0]) / r[0]
    lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][(u * u + v * v + w * w) <= 1.0] = value


def packed3d(shape, n, rmin, rmax, rng, zscale=1.0, overlap=0.85, dtype=np.uint8):
    """Ellipsoids placed at random, allowed to touch (also along Z)."""
    lab = np.zeros(shape, dtype)
    centres = []
    for _ in range(n * 60):
        if len(centres) >= n:
            break
        r = rng.uniform(rmin, rmax)
        c = [rng.uniform(0, s) for s in shape]
        d2 = lambda o: ((c[0] - o[0]) / zscale) ** 2 + (c[1] - o[1]) ** 2 + (c[2] - o[2]) ** 2
        if any(d2(o) < (overlap * (r + o[3])) ** 2 for o in centres):
            continue
        a = rng.uniform(1.0, 1.3)
        ellipsoid(lab, c, (r * zscale, r * a, r / a), rng.uniform(0, np.pi), len(centres) + 1)
        centres.append((*c, r))
    return lab


def case_labels(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "touching":
        return packed(192, 192, 30, 9, 15, rng, overlap=0.75)
    if name == "elongated":
        return packed(192, 192, 14, 7, 10, rng, aspect=(2.2, 3.2), overlap=1.2)
    if name == "border":
        lab = packed(160, 160, 10, 10, 16, rng)
        for i, (cy, cx) in enumerate([(0, 40), (80, 0), (159, 100), (60, 159), (0, 0), (159, 159)]):
            ellipse(lab, cy, cx, 14, 11, 0.3 * i, lab.max() + 1)
        return lab
    if name == "tiny":
        lab = packed(96, 96, 6, 8, 12, rng)
        for i in range(10):  # objects of 1-12 pixels, below min_size 15
            y, x = 5 + 9 * i, 5 + (37 * i) % 86
            lab[y:y + 1 + i % 3, x:x + 1 + i % 4] = lab.max() + 1
        return lab
    if name == "qc":
        return packed(192, 192, 26, 9, 15, rng, overlap=0.75)
    if name == "empty":
        return np.zeros((32, 32), np.uint16)
    if name == "touching3d":  # ellipsoids that touch, in Z too
        return packed3d((16, 56, 56), 14, 6, 9, rng, overlap=0.8)
    if name == "aniso3d":  # flattened in Z, as a stack with coarse Z steps
        return packed3d((10, 64, 64), 16, 7, 10, rng, zscale=0.35, overlap=0.85)
    if name == "border3d":  # cells cut by every face of the stack
        lab = packed3d((12, 48, 48), 5, 6, 8, rng)
        for i, c in enumerate([(0, 20, 24), (6, 0, 30), (11, 40, 10), (5, 24, 47), (6, 47, 47), (0, 0, 0)]):
            ellipsoid(lab, c, (5, 8, 7), 0.4 * i, lab.max() + 1)
        return lab
    if name == "hollow3d":  # a closed shell (its void is a 3-D hole) and a tube open at both ends (not one)
        lab = np.zeros((12, 36, 36), np.uint8)
        zz, yy, xx = np.mgrid[:12, :36, :36]
        r = ((zz - 5.5) / 5.0) ** 2 + ((yy - 10) / 8.5) ** 2 + ((xx - 10) / 8.5) ** 2
        lab[(r <= 1.0) & (((zz - 5.5) / 2.2) ** 2 + ((yy - 10) / 4.0) ** 2 + ((xx - 10) / 4.0) ** 2 > 1.0)] = 1
        d2 = (yy - 25) ** 2 + (xx - 25) ** 2
        lab[(zz >= 2) & (zz <= 9) & (d2 <= 8.5 ** 2) & (d2 > 3.5 ** 2)] = 2
        return lab
    if name == "empty3d":
        return np.zeros((4, 16, 16), np.uint8)
    if name == "bench3d":
        return packed3d((64, 512, 512), 700, 9, 14, rng, zscale=0.6, overlap=0.9, dtype=np.uint16)
    if name == "dense384":
        return packed(384, 384, 110, 10, 17, rng, overlap=0.8)
    if name == "dense512":
        return packed(512, 512, 105, 12, 20, rng, overlap=0.8)
    if name == "dense1024":
        return packed(1024, 1024, 420, 12, 20, rng, overlap=0.8)
    if name == "dense2048":
        return packed(2048, 2048, 1650, 12, 20, rng, overlap=0.8)
    raise ValueError(name)


COMMITTED = ["touching", "elongated", "border", "tiny", "empty", "qc", "dense384",
             "touching3d", "aniso3d", "border3d", "hollow3d", "empty3d"]
# for benchmarks/run_dynamics_bench.sh and dynamics3d_bench.py; not committed
LARGE = ["dense512", "dense1024", "dense2048", "bench3d"]


def flows_for(labels, name):
    """Cellpose's flows from the labels, as a trained network would give them."""
    import torch
    from cellpose import dynamics
    mu, _ = dynamics.masks_to_flows_gpu(labels.astype(np.int64), device=torch.device("cpu"))
    rng = np.random.default_rng(1000 + sum(map(ord, name)))
    fg = labels > 0
    dP = 5.0 * mu + rng.normal(0, 0.25, mu.shape) * fg
    if name == "qc":  # a few cells get one uniform flow direction: the flow-error QC must drop what they become
        for label, angle in ((3, 0.3), (8, 2.0), (13, 3.5), (21, 5.0)):
            inside = labels == label
            dP[0][inside] = 5.0 * np.sin(angle)
            dP[1][inside] = 5.0 * np.cos(angle)
    cellprob = np.where(fg, 4.0, -4.0) + rng.normal(0, 1.0, labels.shape)
    flows = np.concatenate([dP, cellprob[None]], 0).astype(np.float16)
    return flows, mu.astype(np.float16)


def flows_for_3d(labels, name):
    """Cellpose's 3-D flows from the labels (x5, plus noise) and a cellprob logit."""
    import torch
    from cellpose import dynamics
    if name == "bench3d":
        mu = centre_flows(labels)
    elif labels.max() == 0:  # Cellpose's masks_to_flows_gpu_3d fails on an empty stack
        mu = np.zeros((3, *labels.shape))
    else:
        mu = dynamics.masks_to_flows_gpu_3d(labels.astype(np.int64), device=torch.device("cpu"))
    rng = np.random.default_rng(1000 + sum(map(ord, name)))
    fg = labels > 0
    dP = 5.0 * mu + rng.normal(0, 0.25, mu.shape) * fg
    cellprob = np.where(fg, 4.0, -4.0) + rng.normal(0, 1.0, labels.shape)
    return np.concatenate([dP, cellprob[None]], 0).astype(np.float16)


def centre_flows(labels):
    """Unit vectors from each voxel towards its object's centroid (0 at the centroid and outside)."""
    from scipy import ndimage
    n = int(labels.max())
    idx = np.arange(1, n + 1)
    cz, cy, cx = (np.array(v) for v in zip(*ndimage.center_of_mass(np.ones(labels.shape), labels, idx)))
    z, y, x = np.nonzero(labels)
    l = labels[z, y, x].astype(np.int64) - 1
    d = np.stack([cz[l] - z, cy[l] - y, cx[l] - x])
    d /= 1e-6 + np.sqrt((d ** 2).sum(0))
    mu = np.zeros((3, *labels.shape), np.float32)
    mu[:, z, y, x] = d
    return mu


def cellpose_masks_3d(flows):
    import torch
    from cellpose import dynamics, utils
    f = flows.astype(np.float32)
    masks = dynamics.compute_masks(f[:3], f[3], niter=200, cellprob_threshold=0.0, flow_threshold=0.4, do_3D=True,
                                   max_size_fraction=0.4, device=torch.device("cpu"))
    return utils.fill_holes_and_remove_small_masks(masks, min_size=15)


def cellpose_masks(flows, flow_threshold):
    import torch
    from cellpose import dynamics, utils
    f = flows.astype(np.float32)
    masks = dynamics.compute_masks(f[:2], f[2], niter=200, cellprob_threshold=0.0, flow_threshold=flow_threshold,
                                   max_size_fraction=0.4, device=torch.device("cpu"))
    return utils.fill_holes_and_remove_small_masks(masks, min_size=15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cases", default="committed", help="committed, large, all, or names separated by commas")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    names = {"committed": COMMITTED, "large": LARGE, "all": COMMITTED + LARGE}.get(args.cases) or args.cases.split(",")
    import cellpose
    from importlib.metadata import version
    summary = {"cellpose": version("cellpose"), "cases": {}}
    for name in names:
        labels = case_labels(name)
        if labels.ndim == 3:
            flows = flows_for_3d(labels, name)
            t0 = time.perf_counter()
            masks = cellpose_masks_3d(flows)
            t1 = time.perf_counter()
            for suffix, arr in [("labels", labels), ("flows", flows), ("masks", masks)]:
                np.save(os.path.join(args.out, f"{name}_{suffix}.npy"), np.ascontiguousarray(arr))
            summary["cases"][name] = {"shape": list(labels.shape), "labels": int(labels.max()),
                                      "masks": int(masks.max()), "cellpose_s": round(t1 - t0, 3)}
            print(name, summary["cases"][name], flush=True)
            continue
        flows, mu = flows_for(labels, name)
        t0 = time.perf_counter()
        qc = cellpose_masks(flows, 0.4)
        t1 = time.perf_counter()
        noqc = cellpose_masks(flows, 0.0)
        t2 = time.perf_counter()
        for suffix, arr in [("labels", labels), ("flows", flows), ("mu", mu), ("masks_qc", qc), ("masks_noqc", noqc)]:
            np.save(os.path.join(args.out, f"{name}_{suffix}.npy"), np.ascontiguousarray(arr))
        summary["cases"][name] = {"shape": list(labels.shape), "labels": int(labels.max()), "masks_qc": int(qc.max()),
                                  "masks_noqc": int(noqc.max()), "cellpose_qc_s": round(t1 - t0, 3),
                                  "cellpose_noqc_s": round(t2 - t1, 3)}
        print(name, summary["cases"][name], flush=True)
    with open(os.path.join(args.out, f"summary_{args.cases}.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
