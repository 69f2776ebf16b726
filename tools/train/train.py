#!/usr/bin/env python3
"""Train cpipc's embedded default Cellpose network on synthetic data and export it.

Runs in the cellpose 3.1.1.2 venv (see train.sh). Steps:
  1. generate train and test images with tools/synth/synth.py (fixed seeds; --family,
     default mix: every family of tools/synth/families, 8 or 16 bits per image),
  2. build a small CPnet and train it with cellpose.train.train_seg,
  3. evaluate with Cellpose's own CellposeModel.eval + metrics.average_precision,
  4. train its size model with Cellpose's own train.train_size (the settings its CLI
     uses) on the same training data (train_size_model; tools/train/train_size.py does
     this alone for an existing model file, leaving its weights as they are),
  5. trace forward -> (y, style) with torch.jit.trace at 224x224, check the traced
     module against eager at two sizes, save it with a cpipc.json extra file.
No weights are downloaded: the net starts from random init.
"""
import argparse
import glob
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import importlib.util

import cellpose
from cellpose import metrics, models, train
from cellpose.resnet_torch import CPnet

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SYNTH = os.path.join(REPO, "tools", "synth", "synth.py")
# The new recipe's widths (Cellpose's own CPnet); the embedded model of the first releases
# used --family star --nbase 2,16,32,64,256 --bits 16. nbase[-1] stays 256: Cellpose's
# run_net expects 256 styles.
NBASE = [2, 32, 64, 128, 256]
TILE = 224


def synth(out_dir, n, seed, size, family="star", channels=1, bits=16, seamless=None):
    """Generate a synthetic set and load it back as lists of arrays."""
    subprocess.run([sys.executable, SYNTH, out_dir, "--n", str(n), "--seed", str(seed),
                    "--size", str(size), "--channels", str(channels), "--bits", str(bits),
                    "--family", family, "--format", "npy"]
                   + (["--seamless", str(seamless)] if seamless is not None else []), check=True)
    files = sorted(f for f in glob.glob(os.path.join(out_dir, "img_*.npy"))
                   if not f.endswith("_masks.npy"))
    images = [np.load(f).astype(np.float32) for f in files]
    labels = [np.load(f[:-4] + "_masks.npy") for f in files]
    return images, labels


def synth_set(out_dir, n, seed, size, family, channels, bits, seamless=None):
    """synth() for one channel count, or (channels 0) half grayscale and half [cyto, nuc]
    (seed + 1), each image as H x W x 2 ([image, zeros] for grayscale): Cellpose's channels
    [1, 2] then feed both kinds as eval feeds them (a gray image with channels [0, 0] is
    [image, zeros] too)."""
    if channels != 0:
        return synth(out_dir, n, seed, size, family, channels, bits, seamless)
    gray_x, gray_y = synth(out_dir + "-1", n - n // 2, seed, size, family, 1, bits, seamless)
    two_x, two_y = synth(out_dir + "-2", n // 2, seed + 1, size, family, 2, bits, seamless)
    gray_x = [np.stack([x, np.zeros_like(x)], axis=-1) for x in gray_x]
    return gray_x + two_x, gray_y + two_y


class Exported(torch.nn.Module):
    """CPnet.forward returns (y, style, T0); the model contract is (y, style)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        y, style = self.net(x)[:2]
        return y, style


def evaluate(net, images, labels, channels=(0, 0)):
    """Cellpose's own eval pipeline with defaults; diameter = the net's diam_mean."""
    model = models.CellposeModel(gpu=False, pretrained_model=False, mkldnn=False)
    model.net = net
    net.eval()
    diameter = float(net.diam_mean.item()) or 30.0
    masks = [model.eval(img, channels=list(channels), diameter=diameter)[0] for img in images]
    ap, tp, fp, fn = metrics.average_precision(labels, masks, threshold=[0.5, 0.75, 0.9])
    return {"ap50": float(ap[:, 0].mean()), "ap75": float(ap[:, 1].mean()),
            "ap90": float(ap[:, 2].mean()), "n_images": len(images), "diameter": diameter}


def load_weights(net, path):
    """Weights of a file train.py saved (Exported(net) traced: parameters under "net.")."""
    state = torch.jit.load(path, map_location="cpu").state_dict()
    state = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"--init {path}: not a CPnet of these widths (missing {missing[:3]}, "
                 f"unexpected {unexpected[:3]})")


def load_export_tool():
    """tools/export/export.py as a module: size_model_meta writes cpipc.json's size model."""
    spec = importlib.util.spec_from_file_location(
        "export", os.path.join(REPO, "tools", "export", "export.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def train_size_model(net, train_x, train_y, test_x, test_y, work_dir, channels=(0, 0)):
    """Cellpose 3.1.1.2's train.train_size on the network's training data, with what its
    CLI passes (defaults: bsize 512, scale_range 1, 10 epochs, l2 1; batch 8). Returns
    (params, wall seconds); params is SizeModel.params {A, smean, ymean, diam_mean}."""
    t0 = time.time()
    params = train.train_size(net, os.path.join(work_dir, "cpnet"), train_data=train_x,
                              train_labels=train_y, test_data=test_x, test_labels=test_y,
                              channels=list(channels), normalize=True, min_train_masks=1,
                              batch_size=8)
    return params, time.time() - t0


def size_model_record(params, training_data, wall_s, threads):
    meta = load_export_tool().size_model_meta(
        params, "trained here by tools/train with cellpose.train.train_size "
                f"{cellpose.version}")
    meta["training_data"] = training_data
    meta["training"] = {"n_epochs": 10, "bsize": 512, "scale_range": 1.0, "batch_size": 8,
                        "l2_regularization": 1.0, "wall_s": round(wall_s, 1), "threads": threads}
    return meta


def trace_and_check(net):
    """Trace at TILE x TILE; check traced == eager there and at another multiple of 8."""
    net.eval()
    wrapped = Exported(net).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        traced = torch.jit.trace(wrapped, torch.randn(1, 2, TILE, TILE, generator=gen))
        checks = {}
        for shape in [(1, 2, TILE, TILE), (2, 2, 256, 320)]:
            x = torch.randn(*shape, generator=gen)
            (ye, se), (yt, st) = wrapped(x), traced(x)
            checks["x".join(map(str, shape))] = max((ye - yt).abs().max().item(),
                                                    (se - st).abs().max().item())
    return traced, checks


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(os.environ.get("CPIPC_CACHE_DIR", os.path.expanduser("~/.cache/cpipc")),
                                                 "train-runs", "latest", "cpnet.pt"),
                   help="where the TorchScript file goes (not models/: promote.sh puts a network there "
                        "and regenerates the fixtures made from it)")
    p.add_argument("--n-train", type=int, default=24)
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--n-test", type=int, default=16)
    p.add_argument("--test-seed", type=int, default=1000)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--nimg-per-epoch", type=int, default=None,
                   help="images drawn per epoch (default all): many epochs of few images "
                        "give train_seg's learning-rate decay (its last 50 epochs from 100 "
                        "epochs on, its last 100 from 300) within a fixed budget of samples")
    p.add_argument("--bsize", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--family", default="mix",
                   help="tools/synth family: mix (default), nuclei, cyto, elongated, clumps, star, "
                        "or a weighted list such as nuclei:3,cyto:3,clumps,elongated")
    p.add_argument("--seamless", type=float, default=None,
                   help="share of images whose touching cells show no seam (synth.py's default 0.35)")
    p.add_argument("--channels", type=int, choices=[0, 1, 2], default=1,
                   help="1: grayscale (Cellpose channels 0,0); 2: [cyto, nuc] (channels 1,2); "
                        "0: half of each, as [image, zeros] and [cyto, nuc] (channels 1,2)")
    p.add_argument("--bits", type=int, choices=[0, 8, 16], default=0,
                   help="0: 8 or 16 per image (not with --family star)")
    p.add_argument("--no-size-model", action="store_true",
                   help="skip train_size (minutes per image on a CPU); train_size.py adds it later")
    p.add_argument("--init", default=None,
                   help="start from this cpipc TorchScript file's weights (a CPnet of the same "
                        "--nbase) instead of random init: a second stage of training")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where train_seg and train_size run (cuda: a lent GPU, "
                        "tools/gpu/train_on_gpu.sh); evaluation and tracing run on the CPU")
    p.add_argument("--nbase", default=",".join(map(str, NBASE)),
                   help="CPnet widths, comma separated; the last must be 256")
    a = p.parse_args()
    nbase = [int(v) for v in a.nbase.split(",")]
    if nbase[-1] != 256:
        p.error("--nbase must end with 256 (Cellpose's run_net expects 256 styles)")
    if a.family == "star" and a.bits == 0:
        a.bits = 16
    channels = [0, 0] if a.channels == 1 else [1, 2]  # 0 (mixed) is H x W x 2 throughout

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # train_seg's loss log
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)  # weight init; train_seg seeds numpy per epoch itself
    np.random.seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        data = dict(family=a.family, channels=a.channels, bits=a.bits, seamless=a.seamless)
        train_x, train_y = synth_set(os.path.join(tmp, "train"), a.n_train, a.train_seed, a.size,
                                     **data)
        test_x, test_y = synth_set(os.path.join(tmp, "test"), a.n_test, a.test_seed, a.size, **data)

        net = CPnet(nbase, nout=3, sz=3, mkldnn=False)
        if a.init:
            load_weights(net, a.init)
        if a.device == "cuda" and not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA device here")
        net.to(a.device)  # train_seg and train_size run where net.device is
        t0 = time.time()
        train.train_seg(net, train_data=train_x, train_labels=train_y, channels=channels,
                        normalize=True, batch_size=a.batch, learning_rate=a.lr,
                        n_epochs=a.epochs, nimg_per_epoch=a.nimg_per_epoch, bsize=a.bsize,
                        save_path=tmp,
                        model_name="cpnet", min_train_masks=1)
        train_s = time.time() - t0
        print(f"training: {train_s:.1f} s")
        size_params = None
        if not a.no_size_model:
            size_params, size_s = train_size_model(net, train_x, train_y, test_x, test_y, tmp,
                                                      channels)
            print(f"size model training: {size_s:.1f} s")
        net.to("cpu")

    scores = evaluate(net, test_x, test_y, channels)
    print("held-out:", json.dumps(scores))

    traced, checks = trace_and_check(net)
    print("trace check, max |traced - eager|:", json.dumps(checks))
    if max(checks.values()) > 1e-4:
        sys.exit("traced module does not match eager")

    synth_args = f"family {a.family} size {a.size} channels {a.channels} bits {a.bits or '8|16'}" \
        + (f" seamless {a.seamless}" if a.seamless is not None else "")
    meta = {
        "architecture": "CPnet",
        "nbase": nbase,
        "input_channels": 2,
        "channel_convention": "cellpose3 [seg, nuc]",
        "nout": 3,
        "diam_mean": float(net.diam_mean.item()),
        "diam_labels": float(net.diam_labels.item()),
        "tile": TILE,
        "cellpose_version": cellpose.version,
        "torch_version": torch.__version__,
        "source_checkpoint": "trained here by tools/train/train.py"
                             + (f", continued from {os.path.basename(a.init)}" if a.init else ""),
        "training_data": f"tools/synth/synth.py seed {a.train_seed} n {a.n_train} {synth_args}",
        "training": {"epochs": a.epochs, "nimg_per_epoch": a.nimg_per_epoch or a.n_train,
                     "bsize": a.bsize, "batch_size": a.batch,
                     "learning_rate": a.lr, "channels": channels,
                     "wall_s": round(train_s, 1), "threads": a.threads,
                     "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu"},
        "eval": {**scores, "flow_threshold": 0.4, "cellprob_threshold": 0.0,
                 "data": f"tools/synth/synth.py seed {a.test_seed} n {a.n_test} {synth_args}"},
        "trace_check_max_abs_diff": checks,
    }
    if size_params is not None:
        meta["size_model"] = size_model_record(
            size_params, f"tools/synth/synth.py seed {a.train_seed} n {a.n_train} {synth_args}",
            size_s, a.threads)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    torch.jit.save(traced, a.out, _extra_files={"cpipc.json": json.dumps(meta)})
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    # reload as a consumer would: the file alone, metadata included
    extra = {"cpipc.json": ""}
    reloaded = torch.jit.load(a.out, _extra_files=extra)
    assert json.loads(extra["cpipc.json"]) == meta
    x = torch.randn(1, 2, TILE, TILE)
    assert torch.equal(reloaded(x)[0], traced(x)[0])
    print(f"saved {a.out} ({os.path.getsize(a.out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
