"""Makes the fixtures of tests/post_test.cpp and tests/post_cli_test.cpp in
tests/data/stats: a label image, intensity images, the per-object table
scikit-image's regionprops gives for them, and the outlines Cellpose draws.

  labels.npy          uint16 [48, 64]: the hard cases (holes, nested objects,
                      pieces, 1-pixel objects, diagonals, borders, touching
                      objects, gaps in the numbering, labels above 255)
                      plus random ellipses
  gray.npy            uint16 [48, 64] intensity image
  rgb.npy             uint8 [48, 64, 3] intensity image
  stats_gray.csv      cpipc's columns, values from skimage.measure.regionprops
                      (intensity_image=gray)
  stats_rgb.csv       label and the per-channel intensity columns
                      (intensity_image=rgb, channel last)
  outlines.npy        uint8 [48, 64]: cellpose.utils.masks_to_outlines(labels)
  outlines_rgb.npy    uint8 [48, 64, 3]: the picture Cellpose's save_masks(...,
                      save_outlines=True) saves for gray.npy (normalize99,
                      plot.image_to_rgb, outline pixels pure red)

Needs scikit-image and Cellpose in one Python. Cellpose's venv plus
scikit-image in a scratch venv that sees it, e.g.:

  ~/.cache/cpipc/cellpose-venv/bin/python -m venv /tmp/post-venv
  echo ~/.cache/cpipc/cellpose-venv/lib/python3.11/site-packages \
      > /tmp/post-venv/lib/python3.11/site-packages/cellpose.pth
  /tmp/post-venv/bin/pip install scikit-image
  /tmp/post-venv/bin/python tools/stats/make_stats_fixture.py [out_dir]

`--check N` instead compares, on N random label images, cpipc's definition
of an outline pixel (see docs/CONSUMERS.md and reference_outlines below) with
Cellpose's masks_to_outlines, and prints the first difference if any.
"""
import csv
import math
import os
import sys

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops

from cellpose import plot, transforms, utils

H, W = 48, 64


def labels(rng):
    m = np.zeros((H, W), np.uint16)
    yy, xx = np.mgrid[0:H, 0:W]
    # Random ellipses first; the hand-made cases are drawn over them.
    for k in range(8):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        ry, rx = rng.uniform(2, 7), rng.uniform(2, 7)
        t = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dy * np.cos(t) + dx * np.sin(t)) / ry
        v = (-dy * np.sin(t) + dx * np.cos(t)) / rx
        m[u * u + v * v <= 1] = 40 + k
    m[2:10, 4:12] = 1  # touching rectangles: 1 and 2 share an edge
    m[2:10, 12:18] = 2
    m[14:24, 2:14] = 3  # a ring: a mask with a hole ...
    m[17:21, 5:11] = 0
    m[18:20, 7:9] = 4  # ... with another mask inside it
    m[0:5, 46:64] = 5  # touches the top and right borders
    m[12, 24] = 6  # one pixel
    for i in range(9):  # a thin diagonal, 8-connected only
        m[12 + i, 28 + i] = 7
    m[28:34, 2:8] = 8  # two pieces of one label
    m[26:28, 12:14] = 8
    m[44:48, 0:3] = 9  # bottom-left corner
    m[30:32, 20:22] = 10  # 2x2
    m[26:36, 40:50] = 300  # a U shape (concave); labels 11..299 absent
    m[28:34, 43:47] = 0
    m[28:36, 44:46] = 0
    m[38:44, 20:30] = 301  # a ring with a piece of itself inside its hole
    m[39:43, 21:29] = 0
    m[40:42, 24:26] = 301
    m[37:40, 52:55] = 65535  # the largest uint16 label; a diagonal-only hole:
    m[38, 53] = 0  # a 3x3 block with its centre cleared
    m[44:48, 56:64] = 1000  # bottom-right corner, holes touching the ring diagonally
    m[45, 58] = 0
    m[46, 59] = 0
    return m


def columns(channels):
    cols = ["label", "area", "centroid_y", "centroid_x", "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1", "perimeter",
            "equivalent_diameter"]
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
        row = [r.label, int(r.area), *r.centroid, *r.bbox, r.perimeter, r.equivalent_diameter_area]
        mean, lo, hi = (np.atleast_1d(np.asarray(v, np.float64)) for v in
                        (r.intensity_mean, r.intensity_min, r.intensity_max))
        for c in range(channels):
            row += [mean[c], lo[c], hi[c]]
        assert len(row) == len(columns(channels))
        # The definitions docs/CONSUMERS.md states, checked against skimage's.
        assert math.isclose(r.equivalent_diameter_area, math.sqrt(4 * r.area / math.pi), rel_tol=1e-12)
        rows.append(row)
    return rows


def write_csv(path, cols, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for row in rows:
            w.writerow([number(v) for v in row])


def reference_outlines(m):
    """cpipc's definition: a pixel of mask L is an outline pixel when one of
    its 4 neighbours lies outside the image or is a non-L pixel 4-connected
    (through non-L pixels) to the outside of the image. That is the set of
    pixels cv2.findContours(RETR_EXTERNAL, CHAIN_APPROX_NONE) traces on
    each mask (8-connected pieces, 4-connected background, holes and what
    lies inside them not traced), which is Cellpose's masks_to_outlines."""
    out = np.zeros(m.shape, bool)
    for L in np.unique(m):
        if L == 0:
            continue
        mask = np.pad(m == L, 1)
        bg, _ = ndi.label(~mask)  # 4-connectivity (the default structure)
        outer = bg == bg[0, 0]
        near = np.zeros_like(outer)
        near[1:-1, 1:-1] = outer[:-2, 1:-1] | outer[2:, 1:-1] | outer[1:-1, :-2] | outer[1:-1, 2:]
        out |= (mask & near)[1:-1, 1:-1]
    return out


def cellpose_outline_picture(gray, outlines):
    """What cellpose.io.save_masks(..., save_outlines=True) saves for a 2-D
    image (its code, minus the file writing)."""
    outX, outY = np.nonzero(outlines)
    img0 = transforms.normalize99(gray)
    if img0.shape[0] < 4:
        img0 = np.transpose(img0, (1, 2, 0))
    img0 = plot.image_to_rgb(img0, channels=[0, 0])
    imgout = img0.copy()
    imgout[outX, outY] = np.array([255, 0, 0])
    return imgout


def check(n):
    rng = np.random.default_rng(1)
    for i in range(n):
        h, w = rng.integers(1, 16, size=2)
        density = rng.uniform(0.2, 0.9)
        m = np.where(rng.random((h, w)) < density, rng.integers(1, 4, size=(h, w)), 0).astype(np.uint16)
        want = utils.masks_to_outlines(m)
        got = reference_outlines(m)
        if not np.array_equal(want, got):
            print(f"case {i}: differs\nlabels\n{m}\ncellpose\n{want.astype(int)}\nreference\n{got.astype(int)}")
            return 1
    print(f"{n} random label images: the reference outlines equal Cellpose's masks_to_outlines")
    return 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--check":
        return check(int(sys.argv[2]))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../tests/data/stats")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    m = labels(rng)
    yy, xx = np.mgrid[0:H, 0:W]
    gray = (300 + 40 * yy + 7 * xx + rng.integers(0, 500, size=(H, W))).astype(np.uint16)
    gray[m > 0] += 2000  # brighter cells, as in a fluorescence image
    gray[5, 5] = 60000  # a hot pixel above the 99th percentile
    rgb = rng.integers(0, 256, size=(H, W, 3)).astype(np.uint8)

    np.save(os.path.join(out, "labels.npy"), m)
    np.save(os.path.join(out, "gray.npy"), gray)
    np.save(os.path.join(out, "rgb.npy"), rgb)
    write_csv(os.path.join(out, "stats_gray.csv"), columns(1), stats_rows(m, gray, 1))
    rgb_rows = [[row[0], *row[10:]] for row in stats_rows(m, rgb, 3)]
    write_csv(os.path.join(out, "stats_rgb.csv"), ["label", *columns(3)[10:]], rgb_rows)

    outlines = utils.masks_to_outlines(m)
    assert np.array_equal(outlines, reference_outlines(m))
    np.save(os.path.join(out, "outlines.npy"), outlines.astype(np.uint8))
    np.save(os.path.join(out, "outlines_rgb.npy"), cellpose_outline_picture(gray, outlines))
    print(f"wrote {out}: {len(np.unique(m)) - 1} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
