#!/usr/bin/env python3
"""Tests for the training families (tools/synth) and the held-out generator
(tools/eval/heldout.py); run with a python that has numpy, scipy and tifffile (the
cellpose 3 venv):

    ~/.cache/cpipc/cellpose3-venv/bin/python tools/synth/test_synth.py

Small images (96-160 px) keep it to seconds.
"""
import ast
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
HELDOUT = os.path.join(REPO, "tools", "eval", "heldout.py")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HELDOUT))
import families  # noqa: E402
import heldout  # noqa: E402

SIZE = 128


def diameters(labels):
    areas = np.bincount(labels.ravel())[1:]
    return 2 * np.sqrt(areas[areas > 0] / np.pi)


class LabelChecks:
    def assertGoodLabels(self, labels, min_area=15):
        self.assertIn(labels.dtype, (np.uint16, np.uint32))
        ids = np.unique(labels)
        self.assertEqual(ids[0], 0, "no background")
        self.assertTrue(np.array_equal(ids[1:], np.arange(1, ids.size)), "labels not 1..N")
        self.assertGreater(ids.size - 1, 0, "no objects")
        for i, sl in enumerate(ndimage.find_objects(labels), start=1):
            piece = labels[sl] == i
            self.assertEqual(ndimage.label(piece)[1], 1, f"label {i} is not connected")
            self.assertGreaterEqual(piece.sum(), min_area, f"label {i} is a sliver")


class Families(unittest.TestCase, LabelChecks):
    def test_deterministic(self):
        for name in families.FAMILIES:
            with self.subTest(family=name):
                a = families.make(name, np.random.default_rng(5), SIZE, 16, 1)
                b = families.make(name, np.random.default_rng(5), SIZE, 16, 1)
                c = families.make(name, np.random.default_rng(6), SIZE, 16, 1)
                self.assertTrue(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
                self.assertFalse(np.array_equal(a[0], c[0]))

    def test_labels_and_formats(self):
        for name, mod in families.FAMILIES.items():
            for seed, bits, channels in [(0, 16, 1), (1, 8, 2), (2, 16, 2)]:
                with self.subTest(family=name, seed=seed, bits=bits, channels=channels):
                    img, labels = families.make(name, np.random.default_rng(seed), SIZE,
                                                bits, channels)
                    self.assertEqual(img.dtype, np.uint8 if bits == 8 else np.uint16)
                    self.assertEqual(img.shape, (SIZE, SIZE) if channels == 1
                                     else (SIZE, SIZE, 2))
                    self.assertGoodLabels(labels)
                    self.assertGreater(img.std(), 0)

    def test_diameter_range(self):
        """Median diameters over a few images stay within the families' 8-80 px."""
        meds = [np.median(diameters(families.make(n, np.random.default_rng(s), 160, 16, 1)[1]))
                for n in families.FAMILIES for s in range(3)]
        self.assertGreaterEqual(min(meds), 5)
        self.assertLessEqual(max(meds), 85)

    def test_union_rho_leaves_no_seam(self):
        # two touching squares: each cell's own rho dims their shared border, the union's does not
        labels = np.zeros((40, 60), np.int32)
        labels[10:30, 10:30], labels[10:30, 30:50] = 1, 2
        own = np.ones(labels.shape)
        for i, (cy, cx) in ((1, (19.5, 19.5)), (2, (19.5, 39.5))):
            yy, xx = np.nonzero(labels == i)
            own[yy, xx] = np.maximum(abs(yy - cy), abs(xx - cx)) / 10
        union = families.render.union_rho(labels, 5)
        across = slice(25, 35)  # the row through both centres, across the shared border
        self.assertGreater(own[20, across].max(), 0.9)
        self.assertEqual(union[20, across].max(), 0.0)
        self.assertGreater(union[20, 10], 0.7)  # the outer edge still shades
        self.assertTrue((union[labels == 0] == 1).all())

    def test_mix_uses_several_families(self):
        rng = np.random.default_rng(0)
        picks = {list(families.FAMILIES)[rng.integers(len(families.FAMILIES))]
                 for _ in range(20)}
        self.assertGreater(len(picks), 2)

    def test_fused_blobs_are_one_piece_and_not_star_convex(self):
        from scipy.spatial import ConvexHull
        yy, xx = np.mgrid[-60:61, -60:61].astype(np.float64)
        solidity = []
        for seed in range(20):
            rng = np.random.default_rng(seed)
            inside = families.render.lobed_outline(rng, 30, int(rng.integers(2, 5)), 0.2)(yy, xx) < 1
            self.assertEqual(ndimage.label(inside)[1], 1, f"seed {seed}: fused blobs in pieces")
            self.assertTrue(inside[60, 60], f"seed {seed}: the centre is outside")
            self.assertFalse(inside[0].any() or inside[-1].any() or inside[:, 0].any() or inside[:, -1].any(),
                             f"seed {seed}: reaches past 2 radii")
            points = np.argwhere(inside)
            solidity.append(inside.sum() / ConvexHull(points).volume)
        # a convex blob scores ~0.97 here (the hull of pixel centres is a little small)
        self.assertGreaterEqual(sum(v < 0.9 for v in solidity), 6, f"solidity {np.round(solidity, 2)}")

    def test_mix_draws_as_before_weighted_lists_existed(self):
        # old recipes (--family mix) must give the same images: one rng.integers per pick
        a = families.make("mix", np.random.default_rng(3), 96, 16, 1)
        rng = np.random.default_rng(3)
        name = list(families.FAMILIES)[rng.integers(len(families.FAMILIES))]
        b = families.FAMILIES[name].make(rng, 96, 16, 1)
        self.assertTrue(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))

    def test_weighted_lists(self):
        self.assertEqual(families.parse("nuclei:3,cyto"), (["nuclei", "cyto"], [3.0, 1.0]))
        self.assertEqual(families.parse("mix")[0], list(families.FAMILIES))
        for bad in ["nope", "nuclei:x", "nuclei:0", "nuclei:-1", "nuclei,", ""]:
            with self.assertRaises(ValueError, msg=bad):
                families.parse(bad)
        # one family only, by weight: the draws follow the weights
        names, weights = families.parse("nuclei:9,cyto:1")
        rng = np.random.default_rng(0)
        picks = [names[rng.choice(2, p=np.asarray(weights) / 10)] for _ in range(400)]
        self.assertGreater(picks.count("nuclei"), 320)

    def test_seamless_share(self):
        saved = families.render.SEAMLESS
        try:
            families.render.SEAMLESS = 1.0
            self.assertTrue(all(families.render.seamless(np.random.default_rng(s)) for s in range(50)))
            families.render.SEAMLESS = 0.0
            self.assertFalse(any(families.render.seamless(np.random.default_rng(s)) for s in range(50)))
        finally:
            families.render.SEAMLESS = saved

    def test_cli(self):
        with tempfile.TemporaryDirectory() as d:
            for fam in ["mix", "nuclei"]:
                out = os.path.join(d, fam)
                subprocess.run([sys.executable, os.path.join(HERE, "synth.py"), out, "--n", "2",
                                "--size", "96", "--family", fam, "--bits", "0",
                                "--format", "npy"], check=True, capture_output=True)
                self.assertEqual(len(os.listdir(out)), 4)
            for args in (["--family", "nope"], ["--family", "nuclei:x"],
                         ["--family", "nuclei", "--seamless", "1.5"], ["--seamless", "0.5"]):
                bad = subprocess.run([sys.executable, os.path.join(HERE, "synth.py"), d] + args,
                                     capture_output=True, text=True)
                self.assertEqual(bad.returncode, 2, args)
                self.assertIn("error:", bad.stderr.strip().splitlines()[-1], args)
            out = os.path.join(d, "weighted")
            subprocess.run([sys.executable, os.path.join(HERE, "synth.py"), out, "--n", "2",
                            "--size", "96", "--family", "nuclei:2,cyto", "--seamless", "0.9",
                            "--bits", "0", "--format", "npy"], check=True, capture_output=True)
            self.assertEqual(len(os.listdir(out)), 4)


class HeldOut(unittest.TestCase, LabelChecks):
    def test_imports_nothing_from_training(self):
        with open(HELDOUT) as f:
            tree = ast.parse(f.read())
        mods = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                self.assertEqual(node.level, 0, "relative import")
                mods.add(node.module.split(".")[0])
        self.assertLessEqual(mods, {"argparse", "os", "numpy", "scipy", "tifffile"})
        # and at run time: loading it alone pulls in no tools/synth module
        code = (f"import sys; sys.path.insert(0, {os.path.dirname(HELDOUT)!r}); import heldout;"
                "heldout.make('heldout-nuclei', 0, 64);"
                "bad = [m for m in sys.modules if m.split('.')[0] in ('families', 'synth')];"
                "sys.exit(1 if bad else 0)")
        self.assertEqual(subprocess.run([sys.executable, "-c", code]).returncode, 0)

    def test_families(self):
        self.assertGreaterEqual(len(heldout.FAMILIES), 3)
        for name in heldout.FAMILIES:
            with self.subTest(family=name):
                img, labels = heldout.make(name, 3, SIZE)
                again = heldout.make(name, 3, SIZE)
                self.assertTrue(np.array_equal(img, again[0]))
                self.assertTrue(np.array_equal(labels, again[1]))
                self.assertEqual(img.dtype, np.uint16)
                self.assertEqual(img.shape, (SIZE, SIZE))
                self.assertGoodLabels(labels)


if __name__ == "__main__":
    unittest.main()
