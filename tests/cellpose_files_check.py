"""`cpipc segment`'s Cellpose files read by the libraries Cellpose users read
them with: _seg.npy by numpy.load(allow_pickle=True) (and by every other
Python given after --also, e.g. one with numpy 1.x), <stem>_rois.zip by
roifile, the masks TIFF by tifffile. Where Cellpose 3 is importable, its own
io.masks_flows_to_seg and io.save_rois run on cpipc's masks and flows and
their files are compared with cpipc's, key by key and ROI by ROI, and where
its GUI extras are importable too, Cellpose's GUI loads the _seg.npy
(cellpose_gui_load.py, offscreen Qt).

usage: cellpose_files_check.py CPIPC IMAGE [--also PYTHON ...]
Exits 77 (skipped) when numpy, roifile, tifffile or imagecodecs is missing.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

try:
    import imagecodecs
    import numpy as np
    import roifile
    import tifffile
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e}; run scripts/setup.sh (the tools venv has them all)")
    sys.exit(77)

try:
    from cellpose import io as cp_io
    from cellpose import plot as cp_plot
except ImportError:
    cp_io = None

SEG_KEYS = ["outlines", "masks", "chan_choose", "ismanual", "filename", "flows", "diameter"]
UUID1 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def close_pictures(theirs, ours, what):
    """Equal shapes, values at most one level apart on at most 0.1 % of them; how many differ."""
    a, b = theirs.astype(int), ours.astype(int)
    check(a.shape == b.shape, f"{what}: shape {b.shape}, Cellpose's {a.shape}")
    off = np.count_nonzero(a != b)
    check(np.abs(a - b).max() <= 1 and off <= 1e-3 * a.size, f"{what}: {off} values differ, by up to "
          f"{np.abs(a - b).max()}")
    return off


def load_seg(path):
    return np.load(path, allow_pickle=True).item()


def check_seg(seg, masks, flows, image):
    check(list(seg.keys()) == SEG_KEYS, f"_seg.npy keys {list(seg.keys())}")
    check(seg["masks"].dtype == np.uint16 and np.array_equal(seg["masks"], masks), "_seg.npy masks")
    check(seg["outlines"].dtype == np.uint16, "outlines dtype")
    on = seg["outlines"] > 0
    check(np.array_equal(seg["outlines"][on], masks[on]) and on.sum() > 0, "outlines carry the mask labels")
    check(seg["chan_choose"] == [0, 0], f"chan_choose {seg['chan_choose']}")
    check(seg["ismanual"].dtype == bool and seg["ismanual"].shape == (masks.max(),) and not seg["ismanual"].any(),
          "ismanual")
    check(seg["filename"] == image, f"filename {seg['filename']!r}")
    check(isinstance(seg["diameter"], float) and seg["diameter"] > 0, f"diameter {seg['diameter']!r}")
    f = seg["flows"]
    h, w = masks.shape
    check(isinstance(f, list) and len(f) == 5, "flows is a list of 5")
    check(f[0].dtype == np.uint8 and f[0].shape == (1, h, w, 3), f"flows[0] {f[0].dtype} {f[0].shape}")
    check(f[1].dtype == np.uint8 and f[1].shape == (1, h, w), f"flows[1] {f[1].dtype} {f[1].shape}")
    check(f[2].dtype == np.uint8 and f[2].shape == (1, h, w, 3) and not f[2].any(), "flows[2]")
    check(f[3] == [], "flows[3]")
    check(f[4].dtype == np.float32 and np.array_equal(f[4], flows), "flows[4] is dY, dX, cellprob")


def compare_with_cellpose(seg, masks, flows, image, work, stem):
    """Cellpose's own masks_flows_to_seg and save_rois on cpipc's masks and flows."""
    dP, cellprob = flows[:2], flows[2]
    cp_flows = [cp_plot.dx_to_circ(dP), dP, cellprob]
    base = os.path.join(work, "cellpose")
    cp_io.masks_flows_to_seg(np.zeros(masks.shape, np.float32), masks, cp_flows, base + ".tif",
                             diams=seg["diameter"], channels=[0, 0])
    ref = load_seg(base + "_seg.npy")
    check(list(ref.keys()) == list(seg.keys()), f"keys {list(ref.keys())} (Cellpose) vs {list(seg.keys())}")
    for k in ("outlines", "masks", "ismanual"):
        check(ref[k].dtype == seg[k].dtype and np.array_equal(ref[k], seg[k]), f"{k} differs from Cellpose's")
    check(ref["chan_choose"] == seg["chan_choose"], "chan_choose differs")
    check(type(ref["diameter"]) is type(seg["diameter"]) or float(ref["diameter"]) == seg["diameter"], "diameter")
    for i in (2, 4):
        check(ref["flows"][i].dtype == seg["flows"][i].dtype and np.array_equal(ref["flows"][i], seg["flows"][i]),
              f"flows[{i}] differs from Cellpose's")
    check(ref["flows"][3] == seg["flows"][3], "flows[3]")
    # The 8-bit pictures: normalize99's percentiles are numpy 2.4's (numpy 2.0
    # computes their index in float32, 1.x the whole percentile in float64)
    # and cos/atan2 the C library's, not numpy's own float32 ones.
    off = []
    for i in (0, 1):
        check(ref["flows"][i].dtype == seg["flows"][i].dtype, f"flows[{i}] dtype")
        off.append(close_pictures(ref["flows"][i], seg["flows"][i], f"flows[{i}]"))
    print(f"_seg.npy equals Cellpose's masks_flows_to_seg (with numpy {np.__version__}; "
          f"{off[0]} flow-picture and {off[1]} cell-probability values one level off)")

    cp_io.save_rois(masks, base + ".tif")
    theirs = roifile.roiread(base + "_rois.zip")
    ours = roifile.roiread(stem + "_rois.zip")
    check(len(theirs) == len(ours), f"{len(ours)} ROIs, Cellpose {len(theirs)}")
    for t, o in zip(theirs, ours):
        check(np.array_equal(t.coordinates(), o.coordinates()), f"ROI {o.name}: other coordinates than Cellpose's")
        same_name = roifile.ImagejRoi.frompoints(t.coordinates().astype(int), name=o.name).tobytes()
        check(o.tobytes() == same_name, f"ROI {o.name}: other bytes than Cellpose's with the same name")
    print(f"{len(ours)} ROIs equal Cellpose's save_rois but for their uuid1 names")

    cp_io.save_masks(cp_io.imread(image), masks, cp_flows, base + ".tif", png=False, save_outlines=True)
    theirs = imagecodecs.imread(base + "_outlines_cp_masks.png")
    ours = imagecodecs.imread(stem + "_outlines_cp_masks.png")
    off = close_pictures(theirs, ours, "outlines picture")
    print(f"the outlines picture equals Cellpose's save_masks(save_outlines=True) ({off} values one level off)")


def load_in_gui(seg_npy, masks, image):
    """Cellpose's GUI loader on our _seg.npy (offscreen Qt, its own process: Qt aborts rather than raises)."""
    try:
        import qtpy  # noqa: F401  (Cellpose's GUI extras: scripts/setup.sh adds them to the Cellpose 3 venv)
    except ImportError:
        print("Cellpose's GUI (qtpy, PyQt6) not importable here: the GUI load was not run")
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cellpose_gui_load.py")
    r = subprocess.run([sys.executable, script, seg_npy], capture_output=True, text=True, timeout=240,
                       env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), cwd=os.path.dirname(seg_npy))
    check(r.returncode == 0 and r.stdout.strip(), f"Cellpose's GUI failed on _seg.npy: {r.stderr[-2000:]}")
    gui = json.loads(r.stdout.strip().splitlines()[-1])
    check(gui["loaded"] and gui["ncells"] == masks.max(), f"the GUI loaded {gui['ncells']} of {masks.max()} masks")
    check(gui["masks_equal"] and gui["outlines_equal"], "the GUI's masks or outlines differ from the file's")
    check(gui["flows_usable"], "the GUI could not use the flows (their shape is not the image's)")
    check(os.path.samefile(gui["filename"], image), f"the GUI opened {gui['filename']}, not {image}")
    print(f"Cellpose's GUI loads _seg.npy: {gui['ncells']} masks, outlines and flows, image {gui['filename']}")


def main():
    cpipc, image = sys.argv[1], sys.argv[2]
    also = sys.argv[sys.argv.index("--also") + 1:] if "--also" in sys.argv else []
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "out")
        run = subprocess.run([cpipc, "segment", image, "-o", out, "--json", "--save-flows", "--save_rois",
                              "--save-tif", "--save-png", "--save_outlines"], capture_output=True, text=True)
        check(run.returncode == 0, f"cpipc segment failed: {run.stderr}")
        j = json.loads(run.stdout.splitlines()[0])
        stem = os.path.join(out, os.path.splitext(os.path.basename(image))[0])
        expected = {"masks": stem + "_cp_masks.png", "masks_tif": stem + "_cp_masks.tif",
                    "outlines": stem + "_cp_outlines.txt", "rois": stem + "_rois.zip",
                    "outlines_png": stem + "_outlines_cp_masks.png", "seg_npy": stem + "_seg.npy"}
        for key, path in expected.items():
            check(j.get(key) == path and os.path.isfile(path), f"{key}: {j.get(key)!r}, expected {path}")

        masks = tifffile.imread(stem + "_cp_masks.tif")
        check(masks.dtype == np.uint16 and masks.max() == j["objects"] and masks.max() > 0, f"masks TIFF {masks.dtype}")
        flows = np.load(j["flows"])
        seg = load_seg(stem + "_seg.npy")
        check_seg(seg, masks, flows, image)
        print(f"_seg.npy loads with numpy {np.__version__}: {len(seg['flows'])} flows, {masks.max()} masks")
        for python in also:
            if not os.access(python, os.X_OK):
                continue
            code = ("import numpy as np, sys; d = np.load(sys.argv[1], allow_pickle=True).item(); "
                    "print('numpy', np.__version__, sorted(d), d['masks'].dtype, d['flows'][4].shape)")
            r = subprocess.run([python, "-c", code, stem + "_seg.npy"], capture_output=True, text=True)
            check(r.returncode == 0, f"{python} cannot load _seg.npy: {r.stderr}")
            print(f"{python}: {r.stdout.strip()}")

        # One ROI per mask with an outline, in label order, each the polygon of the outlines text.
        with open(stem + "_cp_outlines.txt") as f:
            polygons = [np.array(list(map(int, line.split(","))), int).reshape(-1, 2)
                        for line in f.read().splitlines() if line]
        with zipfile.ZipFile(stem + "_rois.zip") as z:
            infos = z.infolist()
            check(all(i.compress_type == zipfile.ZIP_STORED for i in infos), "ROIs are stored, not deflated")
            rois = [roifile.ImagejRoi.frombytes(z.read(i)) for i in infos]
        check(len(rois) == len(polygons) and 0.9 * masks.max() <= len(rois) <= masks.max(),
              f"{len(rois)} ROIs, {len(polygons)} outlines, {masks.max()} masks")
        for info, roi, polygon in zip(infos, rois, polygons):
            check(UUID1.match(roi.name) and info.filename == roi.name + ".roi", f"ROI name {roi.name!r}")
            check(roi.roitype == roifile.ROI_TYPE.FREEHAND, f"ROI type {roi.roitype!r}")
            check(np.array_equal(roi.coordinates(), polygon), f"ROI {roi.name} is not its outline")
            check(roi.tobytes() == roifile.ImagejRoi.frompoints(polygon, name=roi.name).tobytes(),
                  f"ROI {roi.name}: other bytes than roifile writes")
        print(f"{len(rois)} ROIs, one per mask, as roifile writes them")

        picture = imagecodecs.imread(stem + "_outlines_cp_masks.png")
        check(picture.dtype == np.uint8 and picture.shape == masks.shape + (3,), f"outlines picture {picture.shape}")
        red = (picture == [255, 0, 0]).all(axis=-1)
        check(np.array_equal(red, seg["outlines"] > 0), "the outlines picture's red pixels are the outlines")

        if cp_io is not None:
            compare_with_cellpose(seg, masks, flows, image, work, stem)
            load_in_gui(stem + "_seg.npy", masks, image)
        else:
            print("Cellpose not importable here: its masks_flows_to_seg and save_rois were not run")
    print("ok")


if __name__ == "__main__":
    main()
