"""Makes the fixtures of tests/io_test.cpp in tests/data/io: a label image
(outlines_labels.npy) with the _cp_outlines.txt Cellpose writes for it
(utils.outlines_list + io.outlines_to_text), and a 3-page uint16 TIFF
(stack3.tif, page k filled with 1000 * k + row * 10 + column) as tifffile,
which Cellpose reads and writes TIFFs with, saves it.

Run with the Cellpose venv: ~/.cache/cpipc/cellpose-venv/bin/python
tools/io/make_outline_fixture.py [out_dir]  (default tests/data/io).
"""
import os
import sys

import numpy as np
import tifffile
from cellpose import io, utils

H, W = 40, 48


def labels():
    m = np.zeros((H, W), np.uint16)
    m[2:10, 4:12] = 1  # touching masks: 1 and 2 share an edge
    m[2:10, 12:18] = 2
    m[14:24, 4:14] = 3  # a ring: a mask with a hole
    m[17:21, 7:11] = 0
    m[0:5, 30:48] = 4  # touches the top and right borders
    m[12, 24] = 5  # one pixel
    for i in range(9):  # a thin diagonal, 8-connected
        m[12 + i, 28 + i] = 6
    m[28:34, 2:8] = 7  # two pieces, the larger one second in raster order
    m[26:28, 12:14] = 7
    m[36:40, 0:3] = 8  # bottom-left corner
    m[30:32, 20:22] = 9  # 2x2: four contour points, an empty line in Cellpose
    m[26:36, 30:40] = 11  # label 10 absent: Cellpose writes no line for it
    m[28:34, 33:37] = 0  # a U shape: concave
    m[28:36, 34:36] = 0
    m[38:40, 40:48] = 12  # bottom border, two rows
    m[20:23, 40:43] = 13  # two pieces of the same size: the tie goes to OpenCV's first
    m[20:23, 45:48] = 13
    m[18:20, 8:11] = 14  # inside the hole of mask 3
    return m


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../tests/data/io")
    os.makedirs(out, exist_ok=True)
    m = labels()
    np.save(os.path.join(out, "outlines_labels.npy"), m)
    io.outlines_to_text(os.path.join(out, "outlines"), utils.outlines_list(m))
    rows, cols = np.mgrid[0:6, 0:5]
    stack = np.stack([1000 * k + rows * 10 + cols for k in range(3)]).astype(np.uint16)
    tifffile.imwrite(os.path.join(out, "stack3.tif"), stack, photometric="minisblack")


if __name__ == "__main__":
    main()
