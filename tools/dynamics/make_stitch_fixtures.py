"""Reference fixtures for cpipc's stitch_planes and fill_holes_and_remove_
small_masks_3d, made with the installed Cellpose (tests/stitch_test.cpp).

Per-plane label stacks [Z, Y, X] made from synthetic 3-D objects sliced plane
by plane, each plane's labels renumbered at random (so ids differ per plane),
boundaries jittered by a pixel per plane; then Cellpose's utils.stitch3D at
stitch_threshold 0.25, 0.5 and 0.75, and after it, as models.eval does,
utils.fill_holes_and_remove_small_masks(masks, min_size=15) on the volume.
Writes per case:

  stitch_<case>_planes.npy           per-plane labels (uint8/uint16/uint32)
  stitch_<case>_t<T>_stitched.npy    stitch3D's ids (T = 25, 50, 75)
  stitch_<case>_t<T>_masks.npy       then fill_holes_and_remove_small_masks(15)
  stitch_<case>_t25_masks_nomin.npy  ... with min_size -1 (first case only)

Cases: ellipsoids (objects appearing and disappearing, a hollow one with an
object inside, small fragments), merge (two objects merging across planes,
one splitting into two halves of equal IoU), gaps (per-plane labels with
gaps and large values), empty (empty planes at the start, in the middle and
between non-empty ones before any stitch: Cellpose then keeps the labels).

Made with cellpose==3.1.1.2 (tools venv: ~/.cache/cpipc/cellpose3-venv);
Cellpose 4.2.1.1 gives the same files for these cases (the ctest
stitch_against_live_cellpose remakes them with it).

With --random N, also N small random volumes (1-6 planes of 3-13 x 3-13,
random blobs per plane, some planes empty, some with gapped, permuted label
values; random thresholds 0-0.9 and min_size -1..15), packed in four files
(not committed; the live ctest makes 300 with the installed Cellpose):

  stitch_random_index.npy     int64 [N, 4]: depth, height, width, min_size
  stitch_random_threshold.npy float64 [N]
  stitch_random_{planes,stitched,masks}.npy  uint32, the volumes one after another

Cellpose 3.1.1.2 removes small masks by position among the labels present,
Cellpose 4 (and cpipc) by value: their masks differ for some random cases
with gapped labels, so check these against Cellpose 4.

    python make_stitch_fixtures.py [OUT_DIR] [--random N]
"""
import os
import sys

import numpy as np
from scipy import ndimage as ndi

from cellpose import utils

Z, H, W = 8, 32, 32
THRESHOLDS = (0.25, 0.5, 0.75)
MIN_SIZE = 15


def ellipsoid(vol, c, r, value):
    zz, yy, xx = np.mgrid[0:vol.shape[0], 0:vol.shape[1], 0:vol.shape[2]]
    inside = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1.0
    vol[inside] = value
    return inside


def per_plane(vol, rng, jitter=True):
    """Each plane of a 3-D label volume as its own 2-D segmentation: each
    object's boundary moved by a pixel at random (dilated, eroded or kept),
    then the plane's labels renumbered 1..n in a random order."""
    out = np.zeros(vol.shape, np.uint32)
    for z in range(vol.shape[0]):
        plane = np.zeros(vol.shape[1:], np.uint32)
        for v in np.unique(vol[z]):
            if v == 0:
                continue
            m = vol[z] == v
            if jitter:
                op = rng.integers(0, 3)
                if op == 1:
                    m = ndi.binary_dilation(m) & (vol[z] == 0) | m
                elif op == 2 and ndi.binary_erosion(m).sum() > 0:
                    m = ndi.binary_erosion(m)
            plane[m & (plane == 0)] = v
        ids = [v for v in np.unique(plane) if v]
        perm = rng.permutation(len(ids)) + 1
        relabelled = np.zeros_like(plane)
        for v, p in zip(ids, perm):
            relabelled[plane == v] = p
        out[z] = relabelled
    return out


def case_ellipsoids(rng):
    vol = np.zeros((Z, H, W), np.uint32)
    k = 1
    for _ in range(6):
        c = (rng.uniform(0, Z), rng.uniform(4, H - 4), rng.uniform(4, W - 4))
        r = (rng.uniform(1.5, 3.5), rng.uniform(3, 6), rng.uniform(3, 6))
        ellipsoid(vol, c, r, k)
        k += 1
    # A hollow ellipsoid with an object in its cavity (filled over in 3-D),
    # open at no plane: each plane's ring has its hole, the cavity is closed.
    shell = ellipsoid(np.zeros_like(vol), (4, 22, 10), (3.6, 7, 7), 1).astype(bool)
    cavity = ellipsoid(np.zeros_like(vol), (4, 22, 10), (1.6, 4, 4), 1).astype(bool)
    vol[shell] = k
    vol[cavity] = 0
    vol[3:6, 21:24, 9:12] = k + 1
    planes = per_plane(vol, rng)
    # Small fragments that appear in one plane only (removed by min_size).
    for z, y, x in ((1, 2, 2), (5, 29, 28), (6, 1, 27)):
        planes[z, y:y + 2, x:x + 2] = planes[z].max() + 1
    return planes


def case_merge(rng):
    vol = np.zeros((Z, H, W), np.uint32)
    for z in range(Z):
        # Two discs converging: apart in low planes, one object from z = 4.
        d = max(0, 7 - 2 * z)
        yy, xx = np.mgrid[0:H, 0:W]
        a = (yy - 10) ** 2 + (xx - 10 + d) ** 2 <= 16
        b = (yy - 10) ** 2 + (xx - 10 - d) ** 2 <= 16
        if z >= 4:
            vol[z][a | b] = 1
        else:
            vol[z][a] = 1
            vol[z][b] = 2
        # A bar that splits into two equal halves from z = 5 (a tie of IoUs).
        vol[z, 20:26, 8:24] = 3
        if z >= 5:
            vol[z, 20:26, 15:17] = 0
            vol[z, 20:26, 17:24] = 4
    return per_plane(vol, rng, jitter=False)


def case_gaps(rng):
    planes = per_plane(case_ellipsoids(rng), rng).astype(np.uint32)
    for z in range(Z):
        ids = [v for v in np.unique(planes[z]) if v]
        new = np.sort(rng.choice(np.arange(3, 600), size=len(ids), replace=False))
        plane = planes[z].copy()
        for v, n in zip(ids, rng.permutation(new)):
            planes[z][plane == v] = n
    return planes


def case_empty(rng):
    vol = np.zeros((Z, H, W), np.uint32)
    vol[1, 4:12, 4:12] = 1  # planes 0, 2 and 5 are empty
    vol[1, 20:28, 4:12] = 2
    vol[3:5, 6:14, 6:14] = 3
    vol[3:5, 20:26, 20:30] = 4
    vol[6:8, 6:14, 6:14] = 5
    vol[6:8, 16:30, 18:22] = 6
    return per_plane(vol, rng)


def random_cases(out, n, rng):
    index, thresholds, planes_all, stitched_all, masks_all = [], [], [], [], []
    for _ in range(n):
        z, h, w = rng.integers(1, 7), rng.integers(3, 14), rng.integers(3, 14)
        planes = np.zeros((z, h, w), np.uint32)
        for k in range(z):
            if rng.random() < 0.15:
                continue
            m = rng.random((h, w)) < rng.uniform(0.2, 0.8)
            if rng.random() < 0.5:
                m = ndi.binary_opening(m)
            lab, count = ndi.label(m)
            if count and count < 59 and rng.random() < 0.3:
                values = rng.permutation(np.sort(rng.choice(np.arange(1, 60), size=count, replace=False)))
                lab = np.concatenate([[0], values])[lab]
            planes[k] = lab
        t = float(rng.choice([0.0, 0.1, 0.25, 0.3, 0.5, 0.75, 0.9]))
        min_size = int(rng.choice([-1, 0, 3, 8, 15]))
        stitched = utils.stitch3D(planes.copy(), stitch_threshold=t)
        masks = utils.fill_holes_and_remove_small_masks(stitched.copy(), min_size=min_size)
        index.append([z, h, w, min_size])
        thresholds.append(t)
        planes_all.append(planes.ravel())
        stitched_all.append(stitched.astype(np.uint32).ravel())
        masks_all.append(masks.astype(np.uint32).ravel())
    np.save(os.path.join(out, "stitch_random_index.npy"), np.array(index, np.int64))
    np.save(os.path.join(out, "stitch_random_threshold.npy"), np.array(thresholds, np.float64))
    for name, arrays in (("planes", planes_all), ("stitched", stitched_all), ("masks", masks_all)):
        np.save(os.path.join(out, f"stitch_random_{name}.npy"), np.concatenate(arrays).astype(np.uint32))
    print(f"stitch_random: {n} random volumes")


def small_dtype(a):
    m = int(a.max()) if a.size else 0
    return a.astype(np.uint8 if m < 256 else np.uint16 if m < 65536 else np.uint32)


def main():
    args = sys.argv[1:]
    n_random = 0
    if "--random" in args:
        at = args.index("--random")
        n_random = int(args[at + 1])
        del args[at:at + 2]
    out = args[0] if args else os.path.join(os.path.dirname(__file__), "../../tests/data/dynamics")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(19)
    cases = {"ellipsoids": case_ellipsoids(rng), "merge": case_merge(rng), "gaps": case_gaps(rng),
             "empty": case_empty(rng)}
    for name, planes in cases.items():
        np.save(os.path.join(out, f"stitch_{name}_planes.npy"), small_dtype(planes))
        for t in THRESHOLDS:
            stitched = utils.stitch3D(planes.copy(), stitch_threshold=t)
            masks = utils.fill_holes_and_remove_small_masks(stitched.copy(), min_size=MIN_SIZE)
            tag = f"stitch_{name}_t{round(t * 100)}"
            np.save(os.path.join(out, f"{tag}_stitched.npy"), small_dtype(stitched))
            np.save(os.path.join(out, f"{tag}_masks.npy"), small_dtype(masks))
            print(f"{tag}: {len(np.unique(stitched)) - 1} stitched ids (max {stitched.max()}), "
                  f"{masks.max()} masks")
            if name == "ellipsoids" and t == 0.25:
                nomin = utils.fill_holes_and_remove_small_masks(stitched.copy(), min_size=-1)
                np.save(os.path.join(out, f"{tag}_masks_nomin.npy"), small_dtype(nomin))
    if n_random:
        random_cases(out, n_random, np.random.default_rng(1919))
    return 0


if __name__ == "__main__":
    sys.exit(main())
