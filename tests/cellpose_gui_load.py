"""Loads a _seg.npy into Cellpose's GUI as a user's "File > Load _seg.npy" does:
Cellpose 3's MainW (offscreen Qt) and its gui.io._load_seg. Prints one JSON
line with what the GUI holds afterwards (masks, outlines, flows, diameter),
for cellpose_files_check.py to compare with the file.

usage: QT_QPA_PLATFORM=offscreen cellpose_gui_load.py SEG_NPY
"""

import json
import sys

import numpy as np
from qtpy import QtWidgets

app = QtWidgets.QApplication([])  # before cellpose.gui: its widgets need one
from cellpose.gui import gui, io  # noqa: E402

seg = sys.argv[1]
window = gui.MainW()
io._load_seg(window, filename=seg)  # prints and returns on a file it cannot read
saved = np.load(seg, allow_pickle=True).item()
print(json.dumps({
    "loaded": bool(window.loaded),
    "ncells": int(window.ncells),
    "masks_equal": bool(np.array_equal(window.cellpix[0], saved["masks"])),
    # the GUI keeps outlines as the label of the cell they outline
    "outlines_equal": bool(np.array_equal(window.outpix[0] > 0, saved["outlines"] > 0)),
    "flows_usable": bool(window.recompute_masks),  # set only when flows[0] has the image's shape
    "diameter": float(window.diameter),
    "filename": window.filename,
    "image_shape": list(window.stack.shape),
}))
app.quit()
