#!/usr/bin/env python3
"""Tests for tools/train/evaluate.py: its AP against hand-made cases (and against
cellpose.metrics where cellpose is installed), and one tiny end-to-end run through a
cpipc binary (CPIPC_BINARY, else evaluate.py's default; skipped when empty or missing).

    ~/.cache/cpipc/cellpose3-venv/bin/python tools/train/test_evaluate.py
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import evaluate  # noqa: E402


def squares(offset=0):
    lab = np.zeros((40, 40), np.uint16)
    lab[5 + offset:15 + offset, 5:15] = 1
    lab[20:30, 20:30] = 2
    return lab


class AveragePrecision(unittest.TestCase):
    def test_cases(self):
        self.assertEqual(evaluate.average_precision(squares(), squares()), [1.0, 1.0, 1.0])
        self.assertEqual(evaluate.average_precision(squares(), np.zeros((40, 40), np.uint16)),
                         [0.0, 0.0, 0.0])
        # object 1 shifted by 2 rows: IoU 80/120 = 0.667, a match at 0.5 only
        ap = evaluate.average_precision(squares(), squares(2))
        self.assertEqual(ap, [1.0, 1 / 3, 1 / 3])
        # both objects merged into one prediction: IoU 0.5 with each, so one TP at 0.5
        # (IoU >= threshold counts, as in Cellpose) and one FN; nothing above 0.5
        merged = (squares() > 0).astype(np.uint16)
        self.assertEqual(evaluate.average_precision(squares(), merged), [0.5, 0.0, 0.0])

    def test_matches_cellpose(self):
        try:
            from cellpose import metrics
        except ImportError:
            self.skipTest("cellpose not installed")
        rng = np.random.default_rng(0)
        import heldout
        trues, preds = [], []
        for seed in range(3):
            lab = heldout.make("heldout-nuclei", seed, 96)[1].astype(np.int32)
            pred = np.roll(lab, rng.integers(-3, 4, 2), (0, 1))
            pred[pred == 1] = 0  # a miss
            trues.append(lab)
            preds.append(pred)
        ours = [evaluate.average_precision(t, p) for t, p in zip(trues, preds)]
        ref = metrics.average_precision(trues, preds, threshold=[0.5, 0.75, 0.9])[0]
        np.testing.assert_allclose(ours, ref, atol=1e-6)

    def test_failures(self):
        f = evaluate.failures
        self.assertEqual(f(squares(), squares()), dict(found=2, merged=0, split=0, missed=0, other=0,
                                                        false_positives=0))
        none = f(squares(), np.zeros((40, 40), np.uint16))
        self.assertEqual((none["missed"], none["false_positives"]), (2, 0))
        # two touching squares drawn as one: the merged one is counted as such; the other
        # keeps IoU 0.5 and is found
        touching = np.zeros((40, 40), np.uint16)
        touching[5:15, 5:15], touching[5:15, 15:25] = 1, 2
        merged = f(touching, (touching > 0).astype(np.uint16))
        self.assertEqual((merged["found"], merged["merged"]), (1, 1))
        three = np.zeros((40, 40), np.uint16)
        three[5:15, 5:15], three[5:15, 15:25], three[5:15, 25:35] = 1, 2, 3
        merged = f(three, (three > 0).astype(np.uint16))
        self.assertEqual((merged["merged"], merged["false_positives"]), (3, 1))
        # one square cut in three strips: split, and every strip is a false positive
        cut = np.zeros((40, 40), np.uint16)
        cut[5:15, 5:8], cut[5:15, 8:11], cut[5:15, 11:15] = 1, 2, 3
        split = f(squares()[:, :] * (squares() == 1), cut)
        self.assertEqual((split["split"], split["false_positives"]), (1, 3))
        # a prediction a quarter of the object's size: covered too little, a miss
        small = np.zeros((40, 40), np.uint16)
        small[5:10, 5:10] = 1
        self.assertEqual(f(squares() * (squares() == 1), small)["missed"], 1)

    def test_median_diameter(self):
        lab = np.zeros((50, 50), np.uint16)
        yy, xx = np.mgrid[0:50, 0:50]
        lab[np.hypot(yy - 25, xx - 25) < 10] = 1
        self.assertAlmostEqual(evaluate.median_diameter(lab), 20, delta=0.5)


class EndToEnd(unittest.TestCase):
    def test_one_tiny_image(self):
        # ctest sets CPIPC_BINARY, empty for a build without LibTorch (no segment)
        cpipc = os.environ.get("CPIPC_BINARY", evaluate.default_cpipc())
        if not cpipc or not os.access(cpipc, os.X_OK):
            self.skipTest("no cpipc binary")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "r.json")
            r = subprocess.run([sys.executable, os.path.join(HERE, "evaluate.py"), "--cpipc",
                                cpipc, "--n", "1", "--size", "96", "--no-real",
                                "--families", "heldout-nuclei", "--json", out,
                                "--markdown", os.path.join(d, "r.md")],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                res = json.load(f)
            row = res["heldout"][0]
            self.assertEqual(row["family"], "heldout-nuclei")
            for k in ("ap50", "ap75", "ap90"):
                self.assertTrue(0 <= row[k] <= 1)
            with open(os.path.join(d, "r.md")) as f:
                self.assertIn("| heldout-nuclei |", f.read())
            f = row["failures"]
            self.assertEqual(sum(f[k] for k in evaluate.FAILURES), row["objects_true"])


if __name__ == "__main__":
    unittest.main()
