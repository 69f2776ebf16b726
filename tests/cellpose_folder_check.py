"""`cpipc segment --dir` takes the images Cellpose 3's own CLI takes
(cellpose.io.get_image_files), in the same order, for a folder of awkward
names and every combination of --img-filter, --mask-filter and
--look-one-level-down; the only differences are the ones README documents:
cpipc also skips Cellpose's other outputs (`_outlines`, `_seg`) and leaves
out the formats it cannot read (.flex, .dax, .nd2, .nrrd), naming them.

usage: cellpose_folder_check.py CPIPC   (in the Cellpose 3 venv; exits 77 without it)
"""

import itertools
import json
import os
import subprocess
import sys
import tempfile

try:
    from cellpose import io as cp_io
except ImportError:
    print("skipped: cellpose 3 is not importable here (tools/train/train.sh makes its venv)")
    sys.exit(77)

NAMES = ["a10.tif", "a2.tif", "a1.tif", "B.TIFF", "c.Tif", "d_masks.png", "e_cp_masks.png", "f_flows.tif",
         "f_flows_0.tif", "g_outlines.png", "h_seg.npy", "i.npy", "j.jpeg", "J.JPG", "k_cellprob.png",
         "l_cp_output.png", "n_dapi.tif", "n_dapi_masks.tif", "o_x.png", "x.nd2", "notes.txt", "masks.png",
         "p.q.tif", "_masks.png", "sub/m1.png", "sub/m10_dapi.tif", "sub/m_masks.tif", "sub/deeper/z.tif",
         "sub2/a3.tif"]
CPIPC_ONLY_SKIPS = ("_outlines", "_seg")  # Cellpose's outputs that its CLI would segment again
UNREADABLE = (".flex", ".dax", ".nd2", ".nrrd")


def expected(folder, img_filter, mask_filter, down):
    names = cp_io.get_image_files(folder, mask_filter, img_filter, down)
    keep = []
    for name in names:
        stem, ext = os.path.splitext(name)
        if stem.endswith(CPIPC_ONLY_SKIPS) or ext.lower() in UNREADABLE:
            continue
        keep.append(os.path.normpath(name))
    return keep


def ours(cpipc, folder, img_filter, mask_filter, down):
    args = [cpipc, "segment", "--dir", folder, "--dry-run"]
    if img_filter:
        args += ["--img-filter", img_filter]
    if mask_filter != "_masks":
        args += ["--mask-filter", mask_filter]
    if down:
        args.append("--look-one-level-down")
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return [os.path.normpath(p) for p in json.loads(r.stdout)["dry_run"]["images"]], ""


def main():
    cpipc = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        folder = os.path.join(work, "in")
        for name in NAMES:
            os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
            with open(os.path.join(folder, name), "wb") as f:
                f.write(b"not read by a dry run")
        cases = itertools.product([None, "_dapi", "2", "a1"], ["_masks", "_x", "_dapi"], [False, True])
        for img_filter, mask_filter, down in cases:
            try:
                want = expected(folder, img_filter, mask_filter, down)
            except ValueError:
                want = []  # Cellpose: "no images"
            got, err = ours(cpipc, folder, img_filter, mask_filter, down)
            if got is None and not want:
                continue  # both refuse: cpipc says so in one line, exit 3 (segment_flags_test)
            if got != want:
                failures += 1
                print(f"FAIL img_filter={img_filter} mask_filter={mask_filter} down={down}:\n"
                      f"  Cellpose: {want}\n  cpipc:    {got} {err}")
        print(f"{24 - failures} of 24 folder queries take Cellpose's images in Cellpose's order")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
