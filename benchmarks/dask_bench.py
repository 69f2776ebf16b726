"""cpipc.dask.segment_zarr against Cellpose 3.1.1.2's distributed_eval: the same zarr
image, the same weights (the embedded network, handed to Cellpose as
tools/parity/make_parity.py does), the same cluster shape (a LocalCluster of 2
worker processes, 1 thread each), the same blocks (blocksize, overlap = 2 x diameter).

One side per process, because each needs its own venv:

    python-venv/bin/python     dask_bench.py make IMAGE.zarr --size 4096
    python-venv/bin/python     dask_bench.py cpipc IMAGE.zarr OUT.zarr RESULT.json
    cellpose3-venv/bin/python  dask_bench.py cellpose IMAGE.zarr OUT.zarr RESULT.json
    python-venv/bin/python     dask_bench.py report IMAGE.zarr RESULT.json... (medians, ratios, AP)

benchmarks/run_dask_bench.sh runs them all, sides alternating. Timed: the call
(segment_zarr / distributed_eval) on a running cluster, model loads included on
both sides (cpipc: once per worker; Cellpose: once per block). Memory: the peak
RSS (VmHWM) of each worker process, plus its cpipc serve producer on cpipc's side.
"""

import json
import os
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = 2


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def make(path: str, size: int, block: int) -> None:
    """The image: python/tests/test_dask.py's field of cells (tools/synth's cells, one rendering)."""
    import zarr
    sys.path.insert(0, os.path.join(REPO, "python", "tests"))
    from test_dask import field_of_cells
    image = field_of_cells(size, seed=1)
    # Zarr format 2: what Cellpose 3.1.1.2 (zarr 2) reads too. Its [1, Y, X] twin is what
    # distributed_eval takes (see use_our_weights).
    z = zarr.open_array(path, mode="w", shape=image.shape, chunks=(block, block), dtype=image.dtype,
                        zarr_format=2)
    z[...] = image
    z3 = zarr.open_array(path + ".zyx", mode="w", shape=(1,) + image.shape, chunks=(1, block, block),
                         dtype=image.dtype, zarr_format=2)
    z3[...] = image[None]
    print(f"wrote {path} and {path}.zyx: {image.shape} {image.dtype}")


def run_cpipc(image: str, out: str, blocksize: int, diameter: float) -> dict:
    from distributed import Client, LocalCluster

    import cpipc.dask
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        start = time.perf_counter()
        cpipc.dask.segment_zarr(image, out, blocksize=blocksize, client=client, diameter=diameter, device="cpu",
                                keep_producers=True)
        wall = time.perf_counter() - start
        worker_kib = client.run(lambda: vm_hwm_kib(os.getpid()))

        def producer_kib(dask_worker):
            plugins = [p for n, p in dask_worker.plugins.items() if n.startswith("cpipc-producers-")]
            return sum(vm_hwm_kib(p._server.pid) for p in plugins if p._server is not None)
        serve_kib = client.run(producer_kib)
    per_worker = [(worker_kib[w] + serve_kib[w]) / 1024 for w in sorted(worker_kib)]
    return {"side": "cpipc", "wall_s": wall, "peak_rss_mib_per_worker": per_worker,
            "producer_peak_rss_mib": [serve_kib[w] / 1024 for w in sorted(serve_kib)]}


def use_our_weights(path: str):
    """A worker plugin: Cellpose's CellposeModel(**model_kwargs), which distributed_eval
    constructs for every block, becomes a CellposeModel with the embedded network
    (make_parity.cellpose_model's recipe), loaded from disk each time, as Cellpose loads
    its weights each time."""
    from distributed import WorkerPlugin

    class OurWeights(WorkerPlugin):
        def setup(self, worker):
            sys.path.insert(0, os.path.join(REPO, "tools", "parity"))
            import cellpose.models
            import make_parity
            import torch
            if getattr(cellpose.models, "_cpipc_patched", False):
                return
            original = cellpose.models.CellposeModel

            def model(**_kwargs):
                m = original(gpu=False, device=torch.device("cpu"), pretrained_model=False, mkldnn=False)
                m.net = make_parity.JitNet(path, "cpu")
                m.diam_mean = np.float32(m.net.meta["diam_mean"])
                m.diam_labels = np.float32(m.net.meta["diam_labels"])
                # distributed_eval 3.1.1.2 handles 3-D arrays only (its merge labels faces with a
                # 3-D structure): the image goes in as [1, Y, X], and eval's [Y, X] masks get
                # their Z axis back here. Nothing else changes.
                evaluate = m.eval

                def eval_plane(x, **kwargs):
                    out = evaluate(x[0], **kwargs)
                    return (out[0][None],) + tuple(out[1:])
                m.eval = eval_plane
                return m
            cellpose.models.CellposeModel = model
            cellpose.models._cpipc_patched = True

    return OurWeights()


def run_cellpose(image: str, out: str, blocksize: int, diameter: float) -> dict:
    import zarr
    from cellpose.contrib import distributed_segmentation as ds
    from distributed import Client, LocalCluster

    model = os.path.join(REPO, "models", "cpipc_default_cpnet.pt")
    scratch = os.path.dirname(os.path.abspath(out))
    os.chdir(scratch)  # distributed_eval writes its worker log folder into the working directory
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        cluster.client = client  # distributed_eval takes its own cluster classes, which carry their client
        client.register_plugin(use_our_weights(model), name="cpipc-bench-weights")
        source = zarr.open_array(image + ".zyx", mode="r")
        start = time.perf_counter()
        ds.distributed_eval(source, (1, blocksize, blocksize), out, model_kwargs={},
                            # its overlap is 2 x diameter, used in slices: an int
                            eval_kwargs={"diameter": int(diameter), "channels": [0, 0]}, cluster=cluster,
                            temporary_directory=scratch)
        wall = time.perf_counter() - start
        worker_kib = client.run(lambda: vm_hwm_kib(os.getpid()))
    return {"side": "cellpose", "wall_s": wall,
            "peak_rss_mib_per_worker": [worker_kib[w] / 1024 for w in sorted(worker_kib)]}


def report(image: str, results: list) -> None:
    import zarr
    sys.path.insert(0, os.path.join(REPO, "python", "tests"))
    from test_dask import average_precision

    import cpipc
    runs = [json.load(open(r)) for r in results]
    sides = {s: [r for r in runs if r["side"] == s] for s in ("cpipc", "cellpose")}
    pixels = np.asarray(zarr.open_array(image, mode="r")[...])
    diameter = runs[0]["diameter"]
    with cpipc.serve(f"bench-whole-{os.getpid()}", device="cpu") as server, \
            cpipc.Client(socket=server.socket) as client:
        whole = client.segment(pixels, diameter=diameter).masks
    rows = {}
    for side, rs in sides.items():
        labels = np.asarray(zarr.open_array(rs[-1]["out"], mode="r")[...]).reshape(pixels.shape)
        ap, n_whole, n_side = average_precision(whole, labels)
        rows[side] = {"wall_s": statistics.median(r["wall_s"] for r in rs),
                      "walls": [round(r["wall_s"], 1) for r in rs],
                      "peak_mib": statistics.median(max(r["peak_rss_mib_per_worker"]) for r in rs),
                      "objects": n_side, "ap_vs_whole": ap}
    c, p = rows["cpipc"], rows["cellpose"]
    print(f"image {pixels.shape} {pixels.dtype}, blocks {runs[0]['blocksize']}, diameter {diameter}, "
          f"{WORKERS} workers; whole-image cpipc segment: {n_whole} objects")
    print("| side | wall (median) | runs | peak RSS per worker (median of the larger) | objects | AP@0.5 vs whole image |")
    print("|---|---:|---|---:|---:|---:|")
    for side, name in (("cellpose", "Cellpose 3.1.1.2 distributed_eval"), ("cpipc", "cpipc.dask.segment_zarr")):
        r = rows[side]
        print(f"| {name} | {r['wall_s']:.1f} s | {r['walls']} | {r['peak_mib']:.0f} MiB | {r['objects']} "
              f"| {r['ap_vs_whole']:.4f} |")
    print(f"speed-up {p['wall_s'] / c['wall_s']:.2f}x, memory per worker {p['peak_mib'] / c['peak_mib']:.2f}x less")
    producers = [max(r["producer_peak_rss_mib"]) for r in sides["cpipc"]]
    print(f"(cpipc's per-worker figure includes its cpipc serve producer: {statistics.median(producers):.0f} MiB)")


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["make", "cpipc", "cellpose", "report"])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--blocksize", type=int, default=1024)
    ap.add_argument("--diameter", type=int, default=30)
    a = ap.parse_args()
    if a.what == "make":
        make(a.paths[0], a.size, a.blocksize)
    elif a.what == "report":
        report(a.paths[0], a.paths[1:])
    else:
        image, out, result = a.paths
        run = run_cpipc if a.what == "cpipc" else run_cellpose
        r = run(os.path.abspath(image), os.path.abspath(out), a.blocksize, a.diameter)
        r.update(out=os.path.abspath(out), blocksize=a.blocksize, diameter=a.diameter)
        with open(result, "w") as f:
            json.dump(r, f)
        print(json.dumps(r))


if __name__ == "__main__":
    main()
