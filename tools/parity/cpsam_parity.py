#!/usr/bin/env python3
"""Cellpose-SAM parity: `cpipc segment` against Cellpose 4's own eval, same weights.

No CP-SAM weights can be downloaded here, so the network is Cellpose 4's `vit.CPSAM`
with seeded random initialisation (torch.manual_seed(SEED); the relative-position tables,
which SAM zero-initialises, drawn N(0, REL_POS) so that the exported fused attention is
checked with them): 305 M parameters, saved
as a Cellpose checkpoint and exported by tools/export/export.py, both cached outside
the repo ($CPIPC_CACHE_DIR/cpsam-seed<SEED>/, about 2.5 GB, made again when the
export code changes). At random
initialisation its outputs are about 0.6 in size, where a trained network's flows are
about 5 (5x unit vectors): pixels then never gather and there are no masks at all, and
a random field scaled up is chaotic (a 1e-4 change in the flows moves every mask). So
the readout (`out`, the 1x1 convolution whose 3 x 8 x 8 outputs per token the pixel
shuffle lays out as an 8 x 8 patch) is scaled by GAIN, and its bias gets a fixed
pattern: within each 8 x 8 patch, flows of length SINK pointing at the patch's centre.
Pixels then gather in sinks that tiling, blending and resizing move and merge, which
the cellprob of the random network (image-dependent) selects; the flow-error QC is
off (these flows are not the flows of their masks). Hundreds of masks per 256 x 256,
the same under 1e-4 changes of the flows (cellprob threshold 1.0; 0.5 for the 3-channel
images, whose cellprob is wider). Whatever masks those weights produce, cpipc
must produce the same:

  - flows (dY, dX, cellprob at the image's size) within --flow-tol (1e-3) of
    CellposeModel(use_bfloat16=False).eval(...)'s, fp32 on the CPU;
  - masks AP@0.5 >= 0.98 against Cellpose's (cellpose.metrics.average_precision).

Images (made here, deterministic): gray 256x256 (2 x 2 tiles once padded), 3-channel 512x512 (nine
tiles), gray 300x420 (not a multiple of the tile; padded to tiles as Cellpose 4 pads),
and the 3-channel one at diameter 45 (Cellpose 4's 30 / diameter rescale). Cellpose's
outputs are cached beside the model (keyed by image, arguments and versions): a CP-SAM
forward costs ~15 s per tile on 2 CPU cores.

    cpsam_parity.py --cpipc build/cpipc [--cases a,b] [--seed 0] [--keep DIR] [--device cpu|cuda]

On a GPU (`--device cuda`, tools/gpu/gpu_check.sh) both sides run Cellpose 4's GPU
default, bfloat16 (`use_bfloat16=True`; cpipc `--precision bf16`): the masks must
agree (AP@0.5), and the flows' difference is printed, not held to 1e-3 (bf16 carries
8 bits of mantissa); `--precision fp32` checks fp32 on the GPU.

Runs in the Cellpose 4.2.1.1 venv (scripts/setup.sh --reference: ~/.cache/cpipc/cellpose-venv).
Exit 0: all cases hold; 1: a case differs (printed); 77: no Cellpose 4 here (skipped).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import cellpose
    from cellpose import metrics, models
    from cellpose.vit import CPSAM
except ImportError as e:
    print(f"skipped: Cellpose 4 is not importable here ({e}); scripts/setup.sh --reference makes its venv")
    sys.exit(77)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "export"))
from export import sha256  # noqa: E402  (tools/export/export.py)
CACHE = os.environ.get("CPIPC_CACHE_DIR", os.path.expanduser("~/.cache/cpipc"))
GAIN = 5.0
SINK = 5.0
REL_POS = 0.1  # std of the relative-position tables: SAM zero-initialises them, trained CP-SAMs do not
CASES = {
    "gray256": dict(shape=(256, 256), channels=1, diameter=None),
    "rgb512": dict(shape=(512, 512), channels=3, diameter=None, cellprob_threshold=0.5),
    "gray300x420": dict(shape=(300, 420), channels=1, diameter=None),
    "rgb512_d45": dict(shape=(512, 512), channels=3, diameter=45.0, cellprob_threshold=0.5),
}
THRESHOLDS = dict(cellprob_threshold=1.0, flow_threshold=0.0)  # a case may set its own cellprob_threshold


def thresholds(case):
    return {**THRESHOLDS, **{k: case[k] for k in THRESHOLDS if k in case}}


def ensure_model(seed):
    """The seeded checkpoint and its export, made once into the cache."""
    folder = os.path.join(CACHE, f"cpsam-seed{seed}")
    ckpt, exported = os.path.join(folder, f"cpsam_seed{seed}"), os.path.join(folder, f"cpsam_seed{seed}.pt")
    stamp = os.path.join(folder, "made.json")
    export_code = [os.path.join(REPO, "tools", "export", f) for f in ("export.py", "sam_attention.py")]
    want = {"seed": seed, "gain": GAIN, "sink": SINK, "rel_pos": REL_POS, "cellpose": cellpose.version,
            "torch": torch.__version__, "export": [sha256(f)[:16] for f in export_code]}
    try:
        with open(stamp) as f:
            if json.load(f) == want and os.path.isfile(ckpt) and os.path.isfile(exported):
                return ckpt, exported
    except (OSError, ValueError):
        pass
    os.makedirs(folder, exist_ok=True)
    t0 = time.time()
    torch.manual_seed(seed)
    net = CPSAM(dtype=torch.float32)
    with torch.no_grad():
        for block in net.encoder.blocks:
            block.attn.rel_pos_h.normal_(0, REL_POS)
            block.attn.rel_pos_w.normal_(0, REL_POS)
        net.out.weight *= GAIN
        net.out.bias *= GAIN
        # out channel c * ps^2 + i * ps + j is output channel c at (i, j) of the patch (W2 = identity)
        ps = net.ps
        i, j = torch.meshgrid(torch.arange(ps), torch.arange(ps), indexing="ij")
        dy, dx = (ps - 1) / 2 - i, (ps - 1) / 2 - j
        norm = torch.hypot(dy, dx)
        net.out.bias[:ps * ps] += (SINK * dy / norm).flatten()
        net.out.bias[ps * ps:2 * ps * ps] += (SINK * dx / norm).flatten()
    net.save_model(ckpt)
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "export", "export.py"), "--checkpoint", ckpt,
                    "--out", exported, "--training-data",
                    f"none: random initialisation, torch.manual_seed({seed}), relative positions N(0, {REL_POS:g}), "
                    f"readout x {GAIN:g}, sink bias {SINK:g}"],
                   check=True)
    with open(stamp, "w") as f:
        json.dump(want, f)
    print(f"made the seeded CP-SAM and its export in {time.time() - t0:.0f} s: {folder}")
    return ckpt, exported


def make_image(name, case):
    """Smooth blobs over a gradient and noise, uint16; channel k shifted so that channels differ."""
    rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    h, w = case["shape"]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = []
    for c in range(case["channels"]):
        img = 200 + 0.3 * yy + 0.2 * xx
        for _ in range(h * w // 900):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, 14)
            img += rng.uniform(500, 1500) / (1 + ((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2) ** 2
        img += rng.normal(0, 20, img.shape) * (c + 1)
        planes.append(img)
    img = np.stack(planes, -1) if case["channels"] > 1 else planes[0]
    return np.clip(img, 0, 65535).astype(np.uint16)


def cellpose_outputs(model, ckpt_sha, name, case, image, cache_dir, mode=("cpu", "fp32")):
    key = hashlib.sha256(json.dumps([ckpt_sha, cellpose.version, torch.__version__, name, case, THRESHOLDS,
                                     hashlib.sha256(image.tobytes()).hexdigest()] +
                                    ([] if mode == ("cpu", "fp32") else list(mode))).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"cellpose-{name}-{key}.npz")
    if os.path.isfile(path):
        with np.load(path) as z:
            return z["masks"], z["flows"], float(z["seconds"]), True
    t0 = time.time()
    masks, flows, _ = model.eval(image, diameter=case["diameter"], channel_axis=-1 if image.ndim == 3 else None,
                                 **thresholds(case))
    seconds = time.time() - t0
    stacked = np.concatenate([flows[1], flows[2][None]], 0).astype(np.float32)  # dY, dX, cellprob
    np.savez(path, masks=masks, flows=stacked, seconds=seconds)
    return masks, stacked, seconds, False


def cpipc_outputs(cpipc, exported, name, case, image, work, mode=("cpu", "fp32")):
    path = os.path.join(work, f"{name}.npy")
    np.save(path, image)
    device, precision = mode
    args = [cpipc, "segment", path, "--model", exported, "--device", device, "-o", work, "--json", "--no-npy",
            "--save-flows", "--cellprob-threshold", str(thresholds(case)["cellprob_threshold"]),
            "--flow-threshold", str(thresholds(case)["flow_threshold"])]
    if case["diameter"]:
        args += ["--diameter", str(case["diameter"])]
    if image.ndim == 3:
        args += ["--channel-axis", "2"]
    if device == "cuda":
        args += ["--precision", precision]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cpipc segment failed ({r.returncode}): {r.stderr.strip()}")
    line = json.loads(r.stdout.splitlines()[0])
    from PIL import Image  # cellpose depends on it
    masks = np.array(Image.open(line["masks"])) if line["masks"].endswith(".png") else None
    return masks, np.load(line["flows"]), line


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpipc", required=True)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flow-tol", type=float, default=None, help="default 1e-3 in fp32; not held in bf16")
    p.add_argument("--min-ap", type=float, default=0.98)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", default=None, help="keep cpipc's outputs in this folder")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: fp32 on the CPU, bf16 on CUDA")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    precision = a.precision or ("bf16" if a.device == "cuda" else "fp32")
    if a.device == "cpu" and precision != "fp32":
        p.error("the CPU runs fp32 (as Cellpose 4 does there)")
    flow_tol = a.flow_tol if a.flow_tol is not None else (1e-3 if precision == "fp32" else float("inf"))
    mode = (a.device, precision)

    ckpt, exported = ensure_model(a.seed)
    ckpt_sha = sha256(ckpt)
    model = models.CellposeModel(gpu=a.device == "cuda", pretrained_model=ckpt, use_bfloat16=precision == "bf16")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or tmp
        os.makedirs(work, exist_ok=True)
        for name in a.cases.split(","):
            case = CASES[name]
            image = make_image(name, case)
            ref_masks, ref_flows, ref_s, cached = cellpose_outputs(model, ckpt_sha, name, case, image,
                                                                   os.path.dirname(ckpt), mode)
            t0 = time.time()
            masks, flows, line = cpipc_outputs(a.cpipc, exported, name, case, image, work, mode)
            ours_s = time.time() - t0
            flow_diff = float(np.abs(flows - ref_flows).max()) if flows.shape == ref_flows.shape else float("inf")
            ap = metrics.average_precision([ref_masks.astype(np.int32)], [masks.astype(np.int32)],
                                           threshold=[0.5])[0][0, 0] if ref_masks.max() or masks.max() else 1.0
            ok = flows.shape == ref_flows.shape and flow_diff <= flow_tol and ap >= a.min_ap and 10 <= ref_masks.max()
            print(f"{'ok  ' if ok else 'FAIL'} {name} ({a.device}, {precision}): {image.shape} "
                  f"flows max |diff| {flow_diff:.2e}, "
                  f"AP@0.5 {ap:.4f}, masks cellpose {ref_masks.max()} cpipc {masks.max()}, tiles {line.get('tiles')}, "
                  f"cellpose eval {ref_s:.1f} s{' (cached)' if cached else ''}, cpipc process {ours_s:.1f} s")
            if not ok:
                failures.append(name)
    if failures:
        print(f"Cellpose-SAM parity fails for: {', '.join(failures)}")
        sys.exit(1)
    print("Cellpose-SAM parity holds")


if __name__ == "__main__":
    main()
