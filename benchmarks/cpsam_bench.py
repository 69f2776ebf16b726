"""Cellpose-SAM: one `cpipc serve` for N clients against N Cellpose 4 processes.

    ~/.cache/cpipc/cellpose-venv/bin/python benchmarks/cpsam_bench.py OUT_DIR \
        [--clients 4] [--size 256] [--threads 2] [--cpipc build/cpipc] [--device cpu|cuda]

The same CP-SAM weights on both sides: the seeded random CP-SAM of
tools/parity/cpsam_parity.py (made there, cached in $CPIPC_CACHE_DIR/cpsam-seed0),
fp32 on the CPU, one gray uint16 image of --size per client (different seeds).

  - cpipc: `cpipc serve --model cpsam_seed0.pt --device cpu` (one copy of the
    weights), then N `cpipc submit` processes started together, each sending its
    image; the producer takes them one at a time.
  - Cellpose: N processes started together, each `CellposeModel(pretrained_model=
    checkpoint, use_bfloat16=False).eval(image)` (what N users of Cellpose 4 run:
    each loads its own copy).

Memory: peak RSS (VmHWM) of every process; a side's total is the sum over its
processes (producer + clients; or the N Cellpose processes). Time: wall time from
the start of the clients (cpipc: the producer already loaded) or of the processes
(Cellpose: includes its import and load, which is what each of its users pays) to
the last result. Writes OUT_DIR/results.json and results.md.
"""
import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# cpipc's environment as it was before torch and Cellpose were imported (cv2
# adds the venv to LD_LIBRARY_PATH, torch sets variables of its own).
ENV = dict(os.environ)
sys.path.insert(0, os.path.join(REPO, "tools", "parity"))
import cpsam_parity  # noqa: E402  (ensure_model: the seeded CP-SAM and its export)

CELLPOSE_CHILD = """
import sys, time, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from cellpose import models
gpu = sys.argv[4] == "cuda"
m = models.CellposeModel(gpu=gpu, pretrained_model=sys.argv[1], use_bfloat16=gpu)
masks = m.eval(np.load(sys.argv[2]), flow_threshold=0.0)[0]
print(int(masks.max()))
"""


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class GpuMemory:
    """Peak GPU memory (MiB) per process id, from nvidia-smi, while running."""

    def __init__(self):
        self.peak, self.missed, self._stop = {}, 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        while not self._stop.is_set():
            try:  # a wedged driver must not stall the benchmark: a sample that times out is missed
                r = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                   capture_output=True, text=True, timeout=10)
            except subprocess.TimeoutExpired:
                self.missed += 1
                continue
            for line in r.stdout.splitlines():
                try:
                    pid, mib = (int(v) for v in line.split(","))
                except ValueError:
                    continue
                self.peak[pid] = max(self.peak.get(pid, 0), mib)
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def timed(cmd, env=None):
    """Popen under /usr/bin/time -f %M: the child's peak RSS (KiB) lands in its stderr's last line."""
    return subprocess.Popen(["/usr/bin/time", "-f", "maxrss %M", *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(procs):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"{p.args} failed: {stderr[-1500:]}")
        rss = [int(line.split()[1]) for line in stderr.splitlines() if line.startswith("maxrss ")]
        out.append((stdout, rss[-1] if rss else 0))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpipc", default=os.path.join(REPO, "build", "cpipc"))
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = p.parse_args()
    gpu = a.device == "cuda"
    precision = ["--precision", "bf16"] if gpu else []
    os.makedirs(a.out, exist_ok=True)
    ckpt, exported = cpsam_parity.ensure_model(0)
    env = dict(ENV, OMP_NUM_THREADS=str(a.threads))
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o700)
        images = []
        for k in range(a.clients):
            img = cpsam_parity.make_image(f"bench{k}", dict(shape=(a.size, a.size), channels=1))
            images.append(os.path.join(tmp, f"img{k}.npy"))
            np.save(images[-1], img)

        # cpipc: one producer, N clients.
        sock = os.path.join(tmp, "s.sock")
        t0 = time.perf_counter()
        sampler = GpuMemory() if gpu else None
        producer = subprocess.Popen([a.cpipc, "serve", "--model", exported, "--device", a.device, *precision, "--name",
                                     f"cpsam-bench-{os.getpid()}", "--socket", sock], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env)
        producer.stdout.readline()  # its ready line
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        clients = [timed([a.cpipc, "submit", img, "--socket", sock, "--flow-threshold", "0", "--json"], env)
                   for img in images]
        done = finish(clients)
        cpipc_wall = time.perf_counter() - t1
        producer_rss = peak_rss_kib(producer.pid)
        producer.send_signal(signal.SIGTERM)
        producer.wait(timeout=60)
        gpu_peaks = sampler.stop() if gpu else {}
        cpipc_objects = [json.loads(out.splitlines()[0])["objects"] for out, _ in done]
        cpipc_side = {"producer_peak_rss_mib": producer_rss / 1024,
                      "client_peak_rss_mib": [rss / 1024 for _, rss in done],
                      "total_peak_rss_mib": (producer_rss + sum(rss for _, rss in done)) / 1024,
                      "producer_load_s": load_s, "wall_s": cpipc_wall, "objects": cpipc_objects}
        if gpu:  # the clients never touch the GPU: all of it is the producer's
            cpipc_side["total_peak_gpu_mib"] = sum(gpu_peaks.values())
            cpipc_side["gpu_samples_missed"] = sampler.missed

        # Cellpose 4: N processes, each with its own model.
        sampler = GpuMemory() if gpu else None
        t2 = time.perf_counter()
        procs = [timed([sys.executable, "-c", CELLPOSE_CHILD, ckpt, img, str(a.threads), a.device], env)
                 for img in images]
        done = finish(procs)
        cp_wall = time.perf_counter() - t2
        gpu_peaks = sampler.stop() if gpu else {}
        cp_side = {"process_peak_rss_mib": [rss / 1024 for _, rss in done],
                   "total_peak_rss_mib": sum(rss for _, rss in done) / 1024, "wall_s": cp_wall,
                   "objects": [int(out.strip().splitlines()[-1]) for out, _ in done]}
        if gpu:
            cp_side["process_peak_gpu_mib"] = list(gpu_peaks.values())
            cp_side["total_peak_gpu_mib"] = sum(gpu_peaks.values())
            cp_side["gpu_samples_missed"] = sampler.missed

    result = {"clients": a.clients, "size": a.size, "threads": a.threads, "device": a.device, "model": exported,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "cpipc": cpipc_side, "cellpose": cp_side,
              "memory_ratio": cp_side["total_peak_rss_mib"] / cpipc_side["total_peak_rss_mib"],
              "command": " ".join(sys.argv)}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    md = [f"# Cellpose-SAM: one cpipc serve + {a.clients} clients vs {a.clients} Cellpose 4 processes",
          "", f"{a.size}² gray, {'bf16, CUDA' if gpu else 'fp32, CPU'}, {a.threads} threads per process; "
          f"`{result['command']}`", "",
          "| side | total peak RSS | per process | wall, all results | objects |", "|---|---:|---|---:|---|",
          f"| cpipc serve + {a.clients} submit | {cpipc_side['total_peak_rss_mib']:.0f} MiB | producer "
          f"{cpipc_side['producer_peak_rss_mib']:.0f}, clients "
          f"{', '.join(f'{v:.0f}' for v in cpipc_side['client_peak_rss_mib'])} | {cpipc_wall:.1f} s "
          f"(+ {load_s:.1f} s load, once) | {cpipc_objects} |",
          f"| {a.clients} Cellpose 4 processes | {cp_side['total_peak_rss_mib']:.0f} MiB | "
          f"{', '.join(f'{v:.0f}' for v in cp_side['process_peak_rss_mib'])} | {cp_wall:.1f} s (each loads) | "
          f"{cp_side['objects']} |", "",
          f"Memory ratio (Cellpose / cpipc): {result['memory_ratio']:.2f}x"]
    if gpu:
        md.append(f"GPU memory (peak per process, summed): cpipc {cpipc_side['total_peak_gpu_mib']} MiB, Cellpose "
                  f"{cp_side['total_peak_gpu_mib']} MiB ({', '.join(map(str, cp_side['process_peak_gpu_mib']))}).")
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
