"""cpipc.Client's overhead: one request's round trip above the producer's segmentation time.

One `cpipc serve` (the embedded network, on the CPU) serves, in turn and
interleaved so that load changes hit all of them:
  - Client.segment(array): the image travels through an input segment;
  - Client.segment(path): the producer reads the file (.npy);
  - `cpipc submit PATH --json`: a new process per image (connect included).
Per request: wall time around the call, and the producer's own times from
the result (timings_s.total: the segmentation; timings_s.request: from the
worker taking the request to its result, reading and publishing included).
overhead = wall - total, i.e. everything that is not segmentation: the
client, the socket, the input segment, the producer's reading and
publishing, and copying the masks out. Issue 15's goal: < 1 ms at 512².

    python benchmarks/python_client_bench.py [--size 512] [--rounds 5] [--repeats 4] [--out DIR]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import cpipc

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def sample(size: int) -> np.ndarray:
    """data/samples/cells_0.tif (a rendering of cells, 384² uint16) tiled to size²."""
    from PIL import Image  # scripts/setup.sh puts Pillow into the Python package's venv
    tile = np.array(Image.open(REPO / "data" / "samples" / "cells_0.tif"))
    reps = -(-size // tile.shape[0])
    return np.ascontiguousarray(np.tile(tile, (reps, reps))[:size, :size])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    binary = cpipc.find_binary()
    out = Path(a.out or REPO / "benchmarks" / "results" / f"python-client-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="cpipc-client-bench-"))
    img = sample(a.size)
    path = tmp / "image.npy"
    np.save(path, img)
    runs = []
    with cpipc.serve(f"bench-client-{os.getpid()}", device="cpu", socket=str(tmp / "s.sock")) as server, \
            cpipc.Client(socket=server.socket) as client:
        for _ in range(2):  # warm-up: first forward passes, input segment created
            client.segment(img)
        for rnd in range(a.rounds):
            for rep in range(a.repeats):
                for method in ("array", "path", "cpipc submit"):
                    t0 = time.perf_counter()
                    if method == "cpipc submit":
                        line = subprocess.run([binary, "submit", str(path), "--socket", server.socket, "--json"],
                                              check=True, capture_output=True, text=True).stdout
                        wall = time.perf_counter() - t0
                        msg = json.loads(line)
                        timings, objects = msg["timings_s"], msg["objects"]
                    else:
                        r = client.segment(img if method == "array" else path)
                        wall = time.perf_counter() - t0
                        timings, objects = r.timings, r.objects
                    runs.append({"round": rnd, "method": method, "wall_s": wall, "total_s": timings["total"],
                                 "request_s": timings["request"], "client_s": timings.get("client"),
                                 "objects": objects})
    rows = []
    for method in ("array", "path", "cpipc submit"):
        rs = [r for r in runs if r["method"] == method]
        med = lambda key: statistics.median(key(r) for r in rs)  # noqa: E731
        rows.append({"method": method, "n": len(rs), "wall_ms": med(lambda r: r["wall_s"]) * 1e3,
                     "segmentation_ms": med(lambda r: r["total_s"]) * 1e3,
                     "overhead_ms": med(lambda r: r["wall_s"] - r["total_s"]) * 1e3,
                     "outside_producer_ms": med(lambda r: r["wall_s"] - r["request_s"]) * 1e3,
                     "client_ms": (med(lambda r: r["client_s"]) * 1e3) if rs[0]["client_s"] is not None else None,
                     "objects": rs[0]["objects"]})
    machine = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [f"# cpipc.Client round trip, {a.size}x{a.size} uint16, {machine}", "",
             f"`python benchmarks/python_client_bench.py --size {a.size} --rounds {a.rounds} --repeats {a.repeats}`"
             f" ({len(runs) // 3} requests per method, medians)", "",
             "| method | wall ms | segmentation ms | overhead ms (wall - segmentation) | outside the producer ms "
             "(wall - its request time) | in the client ms (timings client) |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        client = "-" if r["client_ms"] is None else f"{r['client_ms']:.2f}"
        lines.append(f"| {r['method']} | {r['wall_ms']:.1f} | {r['segmentation_ms']:.1f} | {r['overhead_ms']:.2f} | "
                     f"{r['outside_producer_ms']:.2f} | {client} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    with open(out / "runs.jsonl", "w") as f:
        for r in runs:
            f.write(json.dumps(r) + "\n")
    print("\n".join(lines))
    print(f"\nraw: {out}")


if __name__ == "__main__":
    sys.exit(main())
