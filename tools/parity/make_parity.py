#!/usr/bin/env python3
"""Parity fixtures for cpipc's model pipeline, made by Cellpose 3.1.1.2's own eval.

Cellpose's CellposeModel.eval runs on cpipc's embedded network (the TorchScript file,
handed to Cellpose through a small nn.Module shim) exactly as a user would call it; the
arrays it computes on the way are captured by wrapping its own methods:

  <case>/image.npy   what was given to eval (original dtype, HxW or HxWxC)
  <case>/input.npy   float32 [2, H, W]  network input after convert_image + normalize_img,
                     at the original size (before the resize to diam_mean)
  <case>/flows.npy   float32 [3, H, W]  dY, dX, cellprob logit at the original size
                     (what goes into dynamics; eval's flows[1] and flows[2])
  <case>/style.npy   float32 [256]      eval's style (tile styles summed, L2-normalised)
  <case>/masks.npy   uint16 (uint32 from 65536 labels)  eval's masks
  <case>/case.json   eval's arguments, rescale and niter it used, versions, n_masks

    make_parity.py [--out DIR] [--cases a,b|committed|all] [--model PT] [--threads 2]
                   [--compare DIR]

Default --out is tests/data/model. --compare DIR checks the fresh files against DIR
(e.g. the committed ones) and exits 1 on a mismatch (flows within 1e-4 relative,
masks nearly equal). Runs in ~/.cache/cpipc/cellpose3-venv. Deterministic: fixed seeds, fixed threads.
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch

import cellpose
from cellpose import models

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = "models/cpipc_default_cpnet.pt"
EVAL_DEFAULTS = {"flow_threshold": 0.4, "cellprob_threshold": 0.0, "min_size": 15,
                 "tile_overlap": 0.1, "batch_size": 8}
TILE = 224


def load_synth():
    spec = importlib.util.spec_from_file_location(
        "synth", os.path.join(REPO, "tools", "synth", "synth.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class JitNet(torch.nn.Module):
    """What Cellpose 3's run_net/_forward read from model.net: nout, mkldnn, device,
    eval(), and net(x)[:2] = (y, style). The TorchScript module provides the last."""

    def __init__(self, path, device="cpu"):
        super().__init__()
        extra = {"cpipc.json": ""}
        self._device = torch.device(device)
        self.jit = torch.jit.load(path, map_location=self._device, _extra_files=extra)
        self.meta = json.loads(extra["cpipc.json"])
        self.nout = self.meta["nout"]
        self.mkldnn = False
        self.diam_mean = torch.nn.Parameter(torch.tensor([self.meta["diam_mean"]]),
                                            requires_grad=False)
        self.diam_labels = torch.nn.Parameter(torch.tensor([self.meta["diam_labels"]]),
                                              requires_grad=False)

    @property
    def device(self):
        return self._device

    def forward(self, x):
        return self.jit(x)


def cellpose_model(path, device="cpu"):
    """A CellposeModel whose net is ours, on `device` ("cpu" or "cuda": Cellpose's own
    GPU path then, network and dynamics). diam_mean / diam_labels are set the way
    __init__ sets them when it loads a custom (non-builtin) checkpoint."""
    dev = torch.device(device)
    model = models.CellposeModel(gpu=dev.type == "cuda", device=dev, pretrained_model=False, mkldnn=False)
    model.net = JitNet(path, dev)
    model.diam_mean = np.float32(model.net.meta["diam_mean"])
    model.diam_labels = np.float32(model.net.meta["diam_labels"])
    return model


def synth_image(synth, seed, shape, channels, bits, scale=1.0, centre_cell=False):
    """A synth.py image (one seeded Generator), zoomed by `scale` so that cells get the
    size a case wants, cropped to `shape` (H, W); dtype kept. With centre_cell the crop
    is centred on a cell so a tiny image still holds one."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    size = max(int(np.ceil(max(shape) / scale)) + 8, 96)  # synth places few cells below ~96
    img, labels = synth.make_image(rng, size, channels, bits)
    if scale != 1.0:
        dtype = img.dtype
        zoom = (scale, scale) + ((1,) if img.ndim == 3 else ())
        img = ndimage.zoom(img.astype(np.float64), zoom, order=1)
        img = np.clip(np.round(img), 0, np.iinfo(dtype).max).astype(dtype)
        labels = ndimage.zoom(labels, scale, order=0)
    y0 = (img.shape[0] - shape[0]) // 2
    x0 = (img.shape[1] - shape[1]) // 2
    if centre_cell:
        ids, counts = np.unique(labels[labels > 0], return_counts=True)
        cy, cx = np.argwhere(labels == ids[np.argmax(counts)]).mean(0).astype(int)
        y0 = int(np.clip(cy - shape[0] // 2, 0, img.shape[0] - shape[0]))
        x0 = int(np.clip(cx - shape[1] // 2, 0, img.shape[1] - shape[1]))
    return np.ascontiguousarray(img[y0:y0 + shape[0], x0:x0 + shape[1]])


def make_case(name, synth):
    """(image, eval kwargs, description). Seeds are per case, fixed."""
    if name == "gray8_nodiam":
        img = synth_image(synth, 14, (96, 131), 1, 8)
        return img, dict(channels=[0, 0], diameter=None), \
            "gray uint8, diameter None: rescale = diam_mean / diam_labels, one tile"
    if name == "gray16_up":
        img = synth_image(synth, 12, (250, 333), 1, 16, scale=0.55)
        return img, dict(channels=[0, 0], diameter=20.0), \
            "gray uint16, diameter 20: upsampled x1.5, 3x3 tiles in two batches"
    if name == "two16_down":
        img = synth_image(synth, 13, (301, 257), 2, 16, scale=1.1)
        return img, dict(channels=[1, 2], diameter=40.0), \
            "two-channel uint16 HxWx2, channels [1, 2], diameter 40: downsampled x0.75, " \
            "2x1 tiles of 224x208 (a tile axis shorter than 224)"
    if name == "rgb8":
        # a green-only stain saved as RGB: red holds an unrelated image (must be ignored),
        # blue is empty. Cellpose keeps a channel with ptp == 0 as it is (not normalised),
        # so the net sees [green, 0], as a grayscale image is given to it ([seg, 0]).
        green = synth_image(synth, 14, (200, 230), 1, 8, scale=1.1)
        red = synth_image(synth, 15, (200, 230), 1, 8)
        img = np.dstack([red, green, np.zeros_like(green)])
        return img, dict(channels=[2, 3], diameter=36.0), \
            "RGB uint8 HxWx3, channels [2, 3]: cells in green, red ignored, blue empty " \
            "(ptp 0: left as is); diameter 36: rescale 0.833, sizes truncated by int()"
    if name in ("float_multitile", "float_large"):
        shape = (226, 243) if name == "float_multitile" else (400, 452)
        img = synth_image(synth, 16, shape, 1, 16)
        img = (img.astype(np.float32) / 1000.0 - 0.25).astype(np.float32)  # negative too
        tiles = "2x2" if name == "float_multitile" else "3x3"
        return img, dict(channels=[0, 0], diameter=30.0), \
            f"float32 gray {shape[0]}x{shape[1]}, diameter 30: rescale 1 (no resize), " \
            f"{tiles} tiles, sizes not multiples of 16"
    if name == "tiny16":
        # cells of ~15 px: a 30 px cell would fill the image and fail max_size_fraction
        img = synth_image(synth, 17, (17, 23), 1, 16, scale=0.45, centre_cell=True)
        return img, dict(channels=[0, 0], diameter=30.0), \
            "gray uint16 17x23, diameter 30: smaller than a tile, padded to one 48x48 tile"
    raise KeyError(name)


COMMITTED = ["gray8_nodiam", "gray16_up", "two16_down", "rgb8", "float_multitile", "tiny16"]
ALL = COMMITTED + ["float_large"]  # the brief's 400x452 case: too large to commit


def run_case(model, image, kwargs):
    """model.eval as a user calls it; _run_net and _compute_masks are wrapped (not
    changed) to see the normalised input, rescale, and the niter eval chose."""
    seen = {}
    run_net, compute_masks = model._run_net, model._compute_masks

    def spy_run_net(x, **kw):
        seen["x"], seen["rescale"] = x.copy(), kw["rescale"]
        out = run_net(x, **kw)
        seen["dP"], seen["cellprob"], seen["style"] = (np.copy(o) for o in out)
        return out

    def spy_compute_masks(shape, dP, cellprob, **kw):
        seen["niter"] = kw["niter"]
        return compute_masks(shape, dP, cellprob, **kw)

    model._run_net, model._compute_masks = spy_run_net, spy_compute_masks
    try:
        masks, flows, style = model.eval(image, bsize=TILE, **EVAL_DEFAULTS, **kwargs)
    finally:
        del model._run_net, model._compute_masks
    # what eval returned must be what went into dynamics
    assert np.array_equal(flows[1], seen["dP"].squeeze()), "dP differs from eval's flows[1]"
    assert np.array_equal(flows[2], seen["cellprob"].squeeze()), "cellprob differs"
    assert np.array_equal(style, seen["style"])
    x = seen["x"][0]  # [1, H, W, 2] -> [H, W, 2]
    return {
        "input": np.ascontiguousarray(x.transpose(2, 0, 1).astype(np.float32)),
        "flows": np.concatenate([flows[1], flows[2][None]]).astype(np.float32),
        "style": np.asarray(style, np.float32),
        "masks": masks,
        "rescale": float(seen["rescale"]),
        "niter_arg": float(seen["niter"]),
        # follow_flows truncates: niter = np.uint32(niter)
        "niter": int(np.uint32(seen["niter"])),
    }


def write_case(out_dir, name, image, kwargs, desc, res, model_rel):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "image.npy"), image)
    for key in ("input", "flows", "style", "masks"):
        np.save(os.path.join(d, f"{key}.npy"), res[key])
    case = {
        "description": desc,
        "channels": kwargs["channels"],
        "diameter": kwargs["diameter"],
        "rescale": res["rescale"],
        "niter": res["niter"],
        "niter_arg": res["niter_arg"],
        **{k: EVAL_DEFAULTS[k] for k in ("flow_threshold", "cellprob_threshold", "min_size")},
        "tile": TILE,
        **{k: EVAL_DEFAULTS[k] for k in ("tile_overlap", "batch_size")},
        "cellpose_version": cellpose.version,
        "torch_version": torch.__version__,
        "model": model_rel,
        "image_shape": list(image.shape),
        "image_dtype": str(image.dtype),
        "n_masks": int(res["masks"].max()),
    }
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    return case


def compare(out_dir, ref_dir, names):
    """Fresh vs reference (another machine, thread count or oneDNN may differ a little).
    Arrays: |a - b| <= tol * (1 + |b|), relative because an input far from a network's
    training data can give cellprob logits in the hundreds (the first default network's
    two16_down: ~240). Masks: same count +-1 and at most 0.2 %
    of pixels switching between background and foreground (labels may renumber)."""
    if not os.path.isdir(ref_dir):
        return [f"reference directory {ref_dir} not found"]
    bad = []
    for name in names:
        if not os.path.isdir(os.path.join(ref_dir, name)):
            print(f"compare {name}: not in {ref_dir}, skipped")
            continue
        for key, tol in (("image", 0.0), ("input", 1e-5), ("flows", 1e-4), ("style", 1e-5),
                         ("masks", None)):
            a = np.load(os.path.join(out_dir, name, f"{key}.npy"))
            b = np.load(os.path.join(ref_dir, name, f"{key}.npy"))
            if a.shape != b.shape or a.dtype != b.dtype:
                bad.append(f"{name}/{key}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
                continue
            if key == "masks":
                moved = float(((a > 0) != (b > 0)).mean())
                print(f"compare {name}/masks: {a.max()} vs {b.max()}, fg/bg differ {moved:.2%}")
                if abs(int(a.max()) - int(b.max())) > 1 or moved > 0.002:
                    bad.append(f"{name}/masks: {a.max()} vs {b.max()} masks, {moved:.2%} moved")
                continue
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            err = float((np.abs(a64 - b64) / (1 + np.abs(b64))).max()) if a.size else 0.0
            print(f"compare {name}/{key}: max |diff| / (1 + |ref|) {err:.3g}")
            if err > tol:
                bad.append(f"{name}/{key}: {err:.3g} > {tol}")
    return bad


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "tests", "data", "model"))
    p.add_argument("--cases", default="committed",
                   help=f"comma-separated names, 'committed' or 'all' ({', '.join(ALL)})")
    p.add_argument("--model", default=os.path.join(REPO, MODEL))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compare", default=None, metavar="DIR",
                   help="check the new files against DIR (exit 1 on mismatch)")
    a = p.parse_args()

    names = {"committed": COMMITTED, "all": ALL}.get(a.cases, a.cases.split(","))
    unknown = [n for n in names if n not in ALL]
    if unknown:
        sys.exit(f"make_parity.py: error: unknown case(s) {unknown}; known: {ALL}")
    if not os.path.isfile(a.model):
        sys.exit(f"make_parity.py: error: model not found: {a.model}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    model_rel = os.path.relpath(os.path.abspath(a.model), REPO)
    model = cellpose_model(a.model)
    synth = load_synth()
    for name in names:
        t0 = time.time()
        image, kwargs, desc = make_case(name, synth)
        res = run_case(model, image, kwargs)
        case = write_case(a.out, name, image, kwargs, desc, res, model_rel)
        print(f"{name}: image {image.shape} {image.dtype}, rescale {case['rescale']:.4f}, "
              f"niter {case['niter']}, {case['n_masks']} masks, {time.time() - t0:.1f} s")
    if a.compare:
        bad = compare(a.out, a.compare, names)
        if bad:
            sys.exit("make_parity.py: mismatch: " + "; ".join(bad))
        print(f"all {len(names)} case(s) match {a.compare}")


if __name__ == "__main__":
    main()
