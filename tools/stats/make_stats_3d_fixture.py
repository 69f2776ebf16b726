"""Makes the 3-D fixtures of tests/post_test.cpp and tests/post_cli_test.cpp
in tests/data/stats: a label volume, intensity volumes, and the per-object
table scikit-image's regionprops gives for them (cpipc's object_stats_3d).

  labels_3d.npy       uint16 [6, 20, 24]: ellipsoids, a hollow box with an
                      object inside, a label in two pieces, one voxel, a
                      label touching all six faces, gaps in the numbering
  gray_3d.npy         uint16 [6, 20, 24] intensity volume
  gray_3d.tif         the same as an ImageJ hyperstack (axes ZYX)
  two_3d.npy          uint8 [6, 20, 24, 2] two-channel intensity volume
  two_3d.tif          the same as an ImageJ hyperstack (axes ZCYX)
  stats_3d_gray.csv   cpipc's columns, values from regionprops(intensity_image=gray)
  stats_3d_two.csv    label and the per-channel intensity columns

Needs numpy, scikit-image and tifffile (Cellpose 3's venv has them):

  ~/.cache/cpipc/cellpose3-venv/bin/python tools/stats/make_stats_3d_fixture.py [out_dir]
"""
import csv
import math
import os
import sys

import numpy as np
import tifffile
from skimage.measure import regionprops

Z, H, W = 6, 20, 24


def labels(rng):
    m = np.zeros((Z, H, W), np.uint16)
    zz, yy, xx = np.mgrid[0:Z, 0:H, 0:W]
    for k in range(4):
        c = rng.uniform([0, 0, 0], [Z, H, W])
        r = rng.uniform([1, 2, 2], [3, 5, 5])
        m[((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1] = 20 + k
    m[1:5, 2:8, 2:8] = 1  # a hollow box ...
    m[2:4, 3:7, 3:7] = 0
    m[2:4, 4:6, 4:6] = 2  # ... with an object inside
    m[0, 12:14, 0:2] = 3  # one label in two pieces
    m[5, 18:20, 10:13] = 3
    m[3, 10, 20] = 4  # one voxel
    m[0:6, 9, 9:12] = 5  # a wall from the first plane to the last
    m[2, 0:20, 15] = 300  # touches top and bottom rows; labels 6..299 absent
    m[4, 15:17, 0:24] = 65535  # touches left and right columns; the largest uint16
    return m


def columns(channels):
    cols = ["label", "volume", "centroid_z", "centroid_y", "centroid_x", "bbox_z0", "bbox_y0", "bbox_x0",
            "bbox_z1", "bbox_y1", "bbox_x1", "equivalent_diameter"]
    for c in range(channels):
        suffix = "" if channels == 1 else f"_c{c}"
        cols += [f"intensity_mean{suffix}", f"intensity_min{suffix}", f"intensity_max{suffix}"]
    return cols


def number(v):
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def stats_rows(m, image, channels):
    rows = []
    for r in regionprops(m.astype(np.int64), intensity_image=image):
        row = [r.label, int(r.area), *r.centroid, *r.bbox, r.equivalent_diameter_area]
        mean, lo, hi = (np.atleast_1d(np.asarray(v, np.float64)) for v in
                        (r.intensity_mean, r.intensity_min, r.intensity_max))
        for c in range(channels):
            row += [mean[c], lo[c], hi[c]]
        assert len(row) == len(columns(channels))
        # The definition docs/CONSUMERS.md states, checked against skimage's.
        assert math.isclose(r.equivalent_diameter_area, (6 * r.area / math.pi) ** (1 / 3), rel_tol=1e-12)
        rows.append(row)
    return rows


def write_csv(path, cols, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for row in rows:
            w.writerow([number(v) for v in row])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../tests/data/stats")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    m = labels(rng)
    zz, yy, xx = np.mgrid[0:Z, 0:H, 0:W]
    gray = (200 + 300 * zz + 20 * yy + 5 * xx + rng.integers(0, 400, size=(Z, H, W))).astype(np.uint16)
    gray[m > 0] += 3000
    two = rng.integers(0, 256, size=(Z, H, W, 2)).astype(np.uint8)

    np.save(os.path.join(out, "labels_3d.npy"), m)
    np.save(os.path.join(out, "gray_3d.npy"), gray)
    np.save(os.path.join(out, "two_3d.npy"), two)
    tifffile.imwrite(os.path.join(out, "gray_3d.tif"), gray, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(os.path.join(out, "two_3d.tif"), np.ascontiguousarray(two.transpose(0, 3, 1, 2)), imagej=True,
                     metadata={"axes": "ZCYX"})
    write_csv(os.path.join(out, "stats_3d_gray.csv"), columns(1), stats_rows(m, gray, 1))
    n = len(columns(0))
    rows = [[row[0], *row[n:]] for row in stats_rows(m, two, 2)]
    write_csv(os.path.join(out, "stats_3d_two.csv"), ["label", *columns(2)[n:]], rows)
    print(f"wrote {out}: {len(np.unique(m)) - 1} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
