"""Cellpose-SAM per image: `cpipc segment` against Cellpose 4's eval, same weights and images.

    ~/.cache/cpipc/cellpose-venv/bin/python benchmarks/cpsam_speed.py OUT_DIR \
        [--sizes 512,1024] [--threads 2] [--cpipc build/cpipc] [--device cpu|cuda] [--precision fp32|bf16]

Weights: the seeded CP-SAM of tools/parity/cpsam_parity.py (made there, cached in
$CPIPC_CACHE_DIR/cpsam-seed0). On the CPU both sides run fp32 (Cellpose's
use_bfloat16=False); on a GPU (`--device cuda`, tools/gpu/gpu_check.sh) both run
--precision: bf16 is Cellpose 4's default there (`use_bfloat16=True`), which cpipc's
`--precision bf16` follows. Images: cpsam_parity.make_image's gray blobs at
each size, with cpsam_parity.THRESHOLDS (cellprob 1.0, no flow-error QC), the same for both sides. Each side in one
process of its own (cpipc's first), model loaded once: a warm-up image of the first
size, then one image of each size, timed (Cellpose: the wall time of
`CellposeModel(use_bfloat16=False).eval`;
cpipc: `timings_s.total` of one `cpipc segment --json` run over all images, with its
network / dynamics split). Then a whole one-image process per side at the first size
(start, import or load, one image). AP@0.5 (cellpose.metrics) of cpipc's masks against
Cellpose's. Writes OUT_DIR/results.json and results.md.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# cpipc's environment as it was before torch and Cellpose were imported (cv2
# adds the venv to LD_LIBRARY_PATH, torch sets variables of its own).
ENV = dict(os.environ)
sys.path.insert(0, os.path.join(REPO, "tools", "parity"))
import cpsam_parity  # noqa: E402  (ensure_model, make_image, THRESHOLDS)

EVAL = """
import json, sys, time, numpy as np, torch
ckpt, device, precision, threads, folder, cellprob, flow = sys.argv[1:8]
torch.set_num_threads(int(threads))
from cellpose import models
m = models.CellposeModel(gpu=device == "cuda", pretrained_model=ckpt, use_bfloat16=precision == "bf16")
seconds = {}
for name in sys.argv[8:]:
    image = np.load(f"{folder}/{name}.npy")
    t0 = time.perf_counter()
    masks = m.eval(image, cellprob_threshold=float(cellprob), flow_threshold=float(flow))[0]
    if device == "cuda":
        torch.cuda.synchronize()
    seconds[name] = time.perf_counter() - t0
    np.save(f"{folder}/{name}_cellpose.npy", masks)
gpu_mib = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
print(json.dumps({"seconds": seconds, "peak_gpu_mib": gpu_mib}))
"""

ONE_IMAGE = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from cellpose import models
m = models.CellposeModel(gpu=sys.argv[4] == "cuda", pretrained_model=sys.argv[1], use_bfloat16=sys.argv[5] == "bf16")
m.eval(np.load(sys.argv[2]), cellprob_threshold=float(sys.argv[6]), flow_threshold=float(sys.argv[7]))
"""


def read_masks(path):
    if path.endswith(".png"):
        from PIL import Image
        return np.array(Image.open(path))
    import tifffile
    return tifffile.imread(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--sizes", default="512,1024")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpipc", default=os.path.join(REPO, "build", "cpipc"))
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: fp32 on the CPU, bf16 on CUDA")
    args = p.parse_args()
    precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    if args.device == "cpu" and precision != "fp32":
        p.error("the CPU runs fp32 (as Cellpose 4 does there)")
    os.makedirs(args.out, exist_ok=True)
    from cellpose import metrics
    ckpt, exported = cpsam_parity.ensure_model(0)
    sizes = [int(s) for s in args.sizes.split(",")]
    names = [f"warm{sizes[0]}"] + [f"gray{s}" for s in sizes]
    for name, size in zip(names, [sizes[0]] + sizes):
        np.save(os.path.join(args.out, f"{name}.npy"),
                cpsam_parity.make_image(name, dict(shape=(size, size), channels=1)))
    th = cpsam_parity.THRESHOLDS
    thresholds = [str(th["cellprob_threshold"]), str(th["flow_threshold"])]

    env = dict(ENV, OMP_NUM_THREADS=str(args.threads))
    r = subprocess.run([args.cpipc, "segment", *[os.path.join(args.out, f"{n}.npy") for n in names], "--model",
                        exported, "--device", args.device, *(["--precision", precision] if args.device == "cuda" else []),
                        "-o", args.out, "--json", "--no-outlines",
                        "--cellprob-threshold", str(th["cellprob_threshold"]),
                        "--flow-threshold", str(th["flow_threshold"])],
                       capture_output=True, text=True, env=env, check=True)
    child = subprocess.run([sys.executable, "-c", EVAL, ckpt, args.device, precision, str(args.threads), args.out,
                            *thresholds, *names], capture_output=True, text=True, env=env, check=True)
    cellpose = json.loads(child.stdout.strip().splitlines()[-1])
    cellpose_gpu_mib = cellpose["peak_gpu_mib"]
    rows = {name: {"cellpose_s": cellpose["seconds"][name]} for name in names}
    ref = {name: np.load(os.path.join(args.out, f"{name}_cellpose.npy")) for name in names}
    for name in names:
        print(f"Cellpose {name}: {rows[name]['cellpose_s']:.1f} s, {int(ref[name].max())} masks", flush=True)
    for line in r.stdout.splitlines():
        j = json.loads(line)
        name = os.path.splitext(os.path.basename(j["image"]))[0]
        masks = read_masks(j["masks"])
        ap = float(metrics.average_precision([ref[name].astype(np.int32)], [masks.astype(np.int32)],
                                             threshold=[0.5])[0][0, 0])
        rows[name].update(cpipc_s=j["timings_s"]["total"], network_s=j["timings_s"]["network"],
                          dynamics_s=j["timings_s"]["dynamics"], tiles=j["tiles"], objects=[int(ref[name].max()),
                                                                                             j["objects"]], ap50=ap)
        print(f"cpipc {name}: {j['timings_s']['total']:.1f} s, {j['objects']} masks, AP@0.5 {ap:.3f}", flush=True)

    first = os.path.join(args.out, f"gray{sizes[0]}.npy")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", ONE_IMAGE, ckpt, first, str(args.threads), args.device, precision,
                    *thresholds],
                   check=True, capture_output=True, env=env)
    process = {"cellpose_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    subprocess.run([args.cpipc, "segment", first, "--model", exported, "--device", args.device,
                    *(["--precision", precision] if args.device == "cuda" else []), "-o",
                    os.path.join(args.out, "one"), "--cellprob-threshold", str(th["cellprob_threshold"]),
                    "--flow-threshold", str(th["flow_threshold"])], check=True, capture_output=True, env=env)
    process["cpipc_s"] = time.perf_counter() - t0

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": machine, "threads": args.threads, "device": args.device, "precision": precision,
                   "rows": rows, "one_image_process": process, "cellpose_peak_gpu_mib": cellpose_gpu_mib,
                   "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, f, indent=1)
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}, "
             f"{args.threads} threads each side; the seeded CP-SAM, {precision}, {args.device}; one run per image "
             f"after a warm-up.", "",
             "| image | tiles | Cellpose 4 eval | cpipc segment | ratio | cpipc network / dynamics | objects | AP@0.5 |",
             "|---|---:|---:|---:|---:|---|---|---:|"]
    for name in names[1:]:
        r_ = rows[name]
        lines.append(f"| {name} | {r_['tiles']} | {r_['cellpose_s']:.1f} s | {r_['cpipc_s']:.1f} s | "
                     f"{r_['cellpose_s'] / r_['cpipc_s']:.2f}x | {r_['network_s']:.1f} / {r_['dynamics_s']:.2f} s | "
                     f"{r_['objects'][0]} / {r_['objects'][1]} | {r_['ap50']:.3f} |")
    lines += ["", f"Whole one-image process at {sizes[0]}²: Cellpose 4 {process['cellpose_s']:.1f} s, "
              f"cpipc {process['cpipc_s']:.1f} s ({process['cellpose_s'] / process['cpipc_s']:.2f}x)."]
    if cellpose_gpu_mib is not None:
        lines.append(f"Cellpose's peak GPU memory (torch.cuda.max_memory_allocated): {cellpose_gpu_mib:.0f} MiB.")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
