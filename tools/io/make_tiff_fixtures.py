"""Makes the Deflate TIFF fixtures of tests/io_test.cpp in tests/data/io, as
Cellpose and tifffile write them (the pixel values follow formulas the test
recomputes):

  cellpose_masks_u32.tif   cellpose.io.imsave of uint32 masks [40, 48] past
                           65535 (what Cellpose saves for >= 65536 masks):
                           70000 + 7 * i where i % 5, else 0 (i: raster index)
  zlib_u16_stack.tif       tifffile, Deflate, two uint16 pages [24, 30]:
                           1000 * page + 10 * row + column
  zlib_rgb8_predictor.tif  tifffile, Deflate with horizontal differencing
                           (Predictor 2), uint8 RGB [20, 24, 3], 4 rows per
                           strip: (3 * (24 * row + column) + channel) % 251
  zlib_f32_predictor.tif   tifffile, Deflate with the floating-point
                           predictor (Predictor 3), float32 [8, 8]: refused

Run with the Cellpose 3 venv: ~/.cache/cpipc/cellpose3-venv/bin/python
tools/io/make_tiff_fixtures.py [out_dir]  (default tests/data/io).
"""
import os
import sys

import numpy as np
import tifffile
from cellpose import io


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "io")
    i = np.arange(40 * 48, dtype=np.uint32)
    masks = np.where(i % 5 != 0, 70000 + 7 * i, 0).astype(np.uint32).reshape(40, 48)
    io.imsave(os.path.join(out, "cellpose_masks_u32.tif"), masks)

    r, c = np.mgrid[0:24, 0:30]
    pages = np.stack([1000 * k + 10 * r + c for k in range(2)]).astype(np.uint16)
    tifffile.imwrite(os.path.join(out, "zlib_u16_stack.tif"), pages, compression="zlib")

    r, c, ch = np.mgrid[0:20, 0:24, 0:3]
    rgb = ((3 * (24 * r + c) + ch) % 251).astype(np.uint8)
    tifffile.imwrite(os.path.join(out, "zlib_rgb8_predictor.tif"), rgb, photometric="rgb", compression="zlib",
                     predictor=True, rowsperstrip=4)

    tifffile.imwrite(os.path.join(out, "zlib_f32_predictor.tif"), np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8),
                     compression="zlib", predictor=True)
    for name in ("cellpose_masks_u32.tif", "zlib_u16_stack.tif", "zlib_rgb8_predictor.tif", "zlib_f32_predictor.tif"):
        with tifffile.TiffFile(os.path.join(out, name)) as t:
            p = t.pages[0]
            print(name, len(t.pages), p.dtype, p.shape, int(p.compression), int(p.predictor),
                  os.path.getsize(os.path.join(out, name)))


if __name__ == "__main__":
    main()
