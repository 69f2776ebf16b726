"""The service benchmark's two baselines, Cellpose 3.1.1.2's own pipeline on cpipc's
embedded network (models/cpipc_default_cpnet.pt through the shim in
tools/parity/make_parity.py, as benchmarks/segment_cellpose.py), torch on the CPU.

    python service_baseline.py standalone --image IMG --requests R [--threads 2] [--spawn-ns NS]
        What a user does today: this process imports Cellpose, loads the model and
        segments the image R times (np.load + eval each time). Prints one JSON
        object with CLOCK_MONOTONIC timestamps: spawn (from the caller), imports
        done, model loaded, and each request's start and end.

    python service_baseline.py seed-server --socket PATH [--threads 2]
        The seed's method: one server process loads the model once and serves
        clients over a Unix socket (multiprocessing.connection), one request at
        a time in arrival order. Per request it segments the image, puts the
        masks into a NEW multiprocessing.shared_memory block and answers
        (shape, dtype, block name, publish time); the client maps the block,
        copies the masks out, closes and unlinks it (benchmarks/seed_baseline.py
        is the same pattern for frames). Prints "ready" when listening.

    python service_baseline.py seed-clients --socket PATH --image IMG --clients C --requests R
        C client processes (fork; numpy only) connect, start together and send R
        requests each, one after the other. Prints one JSON object with every
        request's timestamps (submitted, answer read, first byte of the block
        read, masks copied, the server's publish time) and the wall time.
"""

import argparse
import json
import os
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEFAULT_MODEL = os.path.join(REPO, "models", "cpipc_default_cpnet.pt")


def load_model(path, threads):
    import importlib.util

    import torch

    torch.set_num_threads(threads)
    spec = importlib.util.spec_from_file_location("make_parity", os.path.join(REPO, "tools/parity/make_parity.py"))
    parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parity)
    return parity.cellpose_model(path)


def segment(model, image_path, diameter):
    import numpy as np

    img = np.load(image_path)
    return model.eval(img, channels=[0, 0], diameter=diameter)[0]


def standalone(a):
    t_start = time.monotonic_ns()
    import numpy as np  # noqa: F401
    import torch

    import cellpose  # noqa: F401

    t_imported = time.monotonic_ns()
    model = load_model(a.model, a.threads)
    t_loaded = time.monotonic_ns()
    reqs = []
    for i in range(a.requests):
        t0 = time.monotonic_ns()
        masks = segment(model, a.image, a.diameter)
        reqs.append({"index": i, "start_ns": t0, "end_ns": time.monotonic_ns(), "objects": int(masks.max())})
    print(json.dumps({"spawn_ns": a.spawn_ns, "python_start_ns": t_start, "imported_ns": t_imported,
                      "loaded_ns": t_loaded, "requests": reqs, "torch_threads": torch.get_num_threads()}))


def seed_server(a):
    import signal
    import threading
    from multiprocessing import resource_tracker, shared_memory
    from multiprocessing.connection import Listener, wait

    import numpy as np

    model = load_model(a.model, a.threads)
    listener = Listener(a.socket, family="AF_UNIX")
    conns, lock = [], threading.Lock()
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                c = listener.accept()
            except OSError:
                return
            with lock:
                conns.append(c)

    threading.Thread(target=accept, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.is_set():
        with lock:
            current = list(conns)
        if not current:
            time.sleep(0.01)
            continue
        for c in wait(current, timeout=0.05):
            try:
                image, diameter = c.recv()
            except (EOFError, OSError):
                with lock:
                    conns.remove(c)
                continue
            masks = segment(model, image, diameter)
            block = shared_memory.SharedMemory(create=True, size=max(masks.nbytes, 1))
            arr = np.ndarray(masks.shape, dtype=masks.dtype, buffer=block.buf)
            arr[:] = masks
            del arr
            publish_ns = time.monotonic_ns()
            c.send((masks.shape, masks.dtype.str, block.name, publish_ns, int(masks.max())))
            block.close()
            # The client unlinks it: keep our resource tracker from unlinking it again at exit.
            resource_tracker.unregister(block._name, "shared_memory")
    listener.close()


def seed_client(conn_address, image, requests, diameter, ready, go, out):
    from multiprocessing import shared_memory
    from multiprocessing.connection import Client

    import numpy as np

    conn = Client(conn_address, family="AF_UNIX")
    ready.send(True)
    go.recv()
    reqs = []
    for i in range(requests):
        t0 = time.monotonic_ns()
        conn.send((image, diameter))
        shape, dtype, name, publish_ns, objects = conn.recv()
        t_msg = time.monotonic_ns()
        block = shared_memory.SharedMemory(name=name)
        first = block.buf[0]  # noqa: F841
        t_first = time.monotonic_ns()
        masks = np.ndarray(shape, dtype=np.dtype(dtype), buffer=block.buf).copy()
        block.close()
        block.unlink()
        t_copied = time.monotonic_ns()
        reqs.append({"index": i, "submit_ns": t0, "result_ns": t_msg, "first_byte_ns": t_first, "copied_ns": t_copied,
                     "publish_ns": publish_ns, "objects": objects, "checksum": int(masks.astype(np.uint64).sum())})
    out.send(reqs)
    conn.close()


def seed_clients(a):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    procs, readies, gos, outs = [], [], [], []
    for c in range(a.clients):
        r_ours, r_theirs = ctx.Pipe()
        g_ours, g_theirs = ctx.Pipe()
        o_ours, o_theirs = ctx.Pipe()
        p = ctx.Process(target=seed_client, args=(a.socket, a.image, a.requests, a.diameter, r_theirs, g_theirs,
                                                  o_theirs), daemon=True)
        p.start()
        procs.append(p), readies.append(r_ours), gos.append(g_ours), outs.append(o_ours)
    for r in readies:
        r.recv()
    start_ns = time.monotonic_ns()
    for g in gos:
        g.send(True)
    reqs = []
    for c, o in enumerate(outs):
        for r in o.recv():
            r["client"] = c
            reqs.append(r)
    for p in procs:
        p.join()
    end_ns = max(r["copied_ns"] for r in reqs)
    print(json.dumps({"clients": a.clients, "requests_per_client": a.requests, "start_ns": start_ns,
                      "end_ns": end_ns, "wall_s": (end_ns - start_ns) * 1e-9, "requests": reqs}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["standalone", "seed-server", "seed-clients"])
    p.add_argument("--image")
    p.add_argument("--requests", type=int, default=1)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--diameter", type=float, default=30.0)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--socket")
    p.add_argument("--spawn-ns", type=int, default=None)
    a = p.parse_args()
    {"standalone": standalone, "seed-server": seed_server, "seed-clients": seed_clients}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
