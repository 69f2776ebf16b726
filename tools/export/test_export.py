#!/usr/bin/env python3
"""Tests for tools/export/export.py; run with the cellpose 3 venv's python:

    ~/.cache/cpipc/cellpose3-venv/bin/python tools/export/test_export.py

A randomly initialised CPnet is saved the way Cellpose saves it (net.save_model),
exported through the CLI, and the .pt is checked as the C++ side will read it:
TorchScript, (y, style) tuple, cpipc.json, outputs equal to eager. Bad input must give
one line on stderr and a non-zero exit. No weights are downloaded.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch
from cellpose.resnet_torch import CPnet

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORT = os.path.join(HERE, "export.py")
NBASE = [2, 8, 16, 32, 256]  # small and fast; the last level stays 256 (style width)


def run_export(*args):
    return subprocess.run([sys.executable, EXPORT, *args], capture_output=True, text=True)


def randomize_bn(net, gen):
    """Fresh BatchNorm stats are 0/1, which would hide a BN that is skipped or mis-ordered."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


class ExportCPnet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        torch.set_num_threads(2)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ckpt = os.path.join(cls.tmp.name, "cpnet_random")
        net = CPnet(list(NBASE), nout=3, sz=3, mkldnn=False, diam_mean=17.0)
        randomize_bn(net, torch.Generator().manual_seed(1))
        net.diam_labels.data[:] = 21.5  # train_seg stores the training set's mean diameter
        net.save_model(cls.ckpt)  # torch.save(state_dict), as train_seg does
        cls.net = net.eval()
        cls.out = os.path.join(cls.tmp.name, "out", "model.pt")
        cls.result = run_export("--checkpoint", cls.ckpt, "--out", cls.out,
                                "--training-data", "random init (test)", "--sidecar")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_cli_succeeds(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        self.assertIn("exported CPnet", self.result.stdout)

    def test_contract_and_equality(self):
        extra = {"cpipc.json": ""}
        m = torch.jit.load(self.out, _extra_files=extra)
        self.assertIsInstance(m, torch.jit.ScriptModule)
        gen = torch.Generator().manual_seed(5)
        for shape in [(1, 2, 224, 224), (3, 2, 64, 96), (2, 2, 136, 200)]:
            x = torch.randn(*shape, generator=gen)
            with torch.no_grad():
                out = m(x)
                y0, s0 = self.net(x)[:2]
            self.assertIsInstance(out, tuple)
            self.assertEqual(len(out), 2)
            y, s = out
            self.assertEqual(y.dtype, torch.float32)
            self.assertEqual(tuple(y.shape), (shape[0], 3, shape[2], shape[3]))
            self.assertEqual(tuple(s.shape), (shape[0], 256))
            self.assertLessEqual((y - y0).abs().max().item(), 1e-5, shape)
            self.assertLessEqual((s - s0).abs().max().item(), 1e-5, shape)

    def test_metadata(self):
        extra = {"cpipc.json": ""}
        torch.jit.load(self.out, _extra_files=extra)
        meta = json.loads(extra["cpipc.json"])
        with open(os.path.join(os.path.dirname(self.out), "model.json")) as f:
            self.assertEqual(json.load(f), meta)
        self.assertEqual(meta["architecture"], "CPnet")
        self.assertEqual(meta["nbase"], NBASE)
        self.assertEqual(meta["input_channels"], 2)
        self.assertEqual(meta["channel_convention"], "cellpose3 [seg, nuc]")
        self.assertEqual(meta["nout"], 3)
        self.assertEqual(meta["diam_mean"], 17.0)
        self.assertEqual(meta["diam_labels"], 21.5)
        self.assertEqual(meta["tile"], 224)
        self.assertEqual(meta["training_data"], "random init (test)")
        self.assertTrue(meta["source_checkpoint"].startswith("cpnet_random sha256 "))
        self.assertEqual(meta["cellpose_version"], __import__("cellpose").version)
        self.assertEqual(meta["torch_version"], torch.__version__)
        self.assertEqual(len(meta["trace_check_max_abs_diff"]), 2)
        self.assertLessEqual(max(meta["trace_check_max_abs_diff"].values()), 1e-5)
        # the schema of the embedded default model, plus what export.py adds
        with open(os.path.join(HERE, "..", "..", "models", "cpipc_default_cpnet.json")) as f:
            default = json.load(f)
        shared = set(default) - {"training", "eval", "size_model"}  # size_model: with --size-model
        self.assertLessEqual(shared, set(meta))

    def test_overrides(self):
        out = os.path.join(self.tmp.name, "override.pt")
        r = run_export("--checkpoint", self.ckpt, "--out", out, "--diam-mean", "30",
                       "--tile", "256")
        self.assertEqual(r.returncode, 0, r.stderr)
        extra = {"cpipc.json": ""}
        torch.jit.load(out, _extra_files=extra)
        meta = json.loads(extra["cpipc.json"])
        self.assertEqual((meta["diam_mean"], meta["tile"]), (30.0, 256))
        self.assertIn("1x2x256x256", meta["trace_check_max_abs_diff"])

    def test_size_model(self):
        import numpy as np
        size_npy = os.path.join(self.tmp.name, "cpnet_random_size.npy")
        gen = np.random.default_rng(3)
        params = {"A": gen.normal(size=256), "smean": gen.normal(size=256).astype(np.float32),
                  "ymean": np.float32(0.125), "diam_mean": 17.0}
        np.save(size_npy, params)  # as train.train_size saves it
        out = os.path.join(self.tmp.name, "sized.pt")
        r = run_export("--checkpoint", self.ckpt, "--out", out, "--size-model", size_npy)
        self.assertEqual(r.returncode, 0, r.stderr)
        extra = {"cpipc.json": ""}
        torch.jit.load(out, _extra_files=extra)
        sm = json.loads(extra["cpipc.json"])["size_model"]
        self.assertEqual(sm["A"], params["A"].tolist())  # exact through JSON
        self.assertEqual(sm["smean"], params["smean"].astype(np.float64).tolist())
        self.assertEqual((sm["ymean"], sm["diam_mean"]), (0.125, 17.0))
        self.assertTrue(sm["source"].startswith("cpnet_random_size.npy sha256 "))
        bad = os.path.join(self.tmp.name, "bad_size.npy")
        np.save(bad, {"A": np.zeros(256), "smean": np.zeros(128), "ymean": 0.0, "diam_mean": 30.0})
        self.assertOneLineError(run_export("--checkpoint", self.ckpt, "--size-model", bad, "--out",
                                           os.path.join(self.tmp.name, "x.pt")),
                                "must have the style's length")

    def assertOneLineError(self, r, needle):
        self.assertNotEqual(r.returncode, 0)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("export.py: error:", lines[0])
        self.assertIn(needle, lines[0])

    def test_random_blob(self):
        blob = os.path.join(self.tmp.name, "blob.pth")
        with open(blob, "wb") as f:
            f.write(os.urandom(4096))  # content does not matter: any non-checkpoint
        out = os.path.join(self.tmp.name, "blob.pt")
        self.assertOneLineError(run_export("--checkpoint", blob, "--out", out),
                                "not a PyTorch state-dict checkpoint")
        self.assertFalse(os.path.exists(out))

    def test_missing_file(self):
        self.assertOneLineError(run_export("--checkpoint", os.path.join(self.tmp.name, "nope"),
                                           "--out", os.path.join(self.tmp.name, "x.pt")),
                                "checkpoint not found")

    def test_foreign_state_dict(self):
        ckpt = os.path.join(self.tmp.name, "linear.pth")
        torch.save(torch.nn.Linear(4, 2).state_dict(), ckpt)
        self.assertOneLineError(run_export("--checkpoint", ckpt, "--out",
                                           os.path.join(self.tmp.name, "x.pt")),
                                "unrecognised checkpoint")

    def test_bad_tile(self):
        self.assertOneLineError(run_export("--checkpoint", self.ckpt, "--tile", "100", "--out",
                                           os.path.join(self.tmp.name, "x.pt")),
                                "not a multiple of 8")

    def test_sam_needs_cellpose4(self):
        # only the keys matter for detection: a tiny fake CP-SAM state dict
        ckpt = os.path.join(self.tmp.name, "sam.pth")
        torch.save({"W2": torch.zeros(1), "encoder.patch_embed.proj.weight": torch.zeros(1)},
                   ckpt)
        r = run_export("--checkpoint", ckpt, "--out", os.path.join(self.tmp.name, "x.pt"))
        if __import__("cellpose").version.startswith("3."):
            self.assertOneLineError(r, "needs cellpose>=4")
        else:
            self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
