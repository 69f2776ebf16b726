"""Service benchmark: `cpipc serve` against what a user does today and the seed's method.

    ~/.cache/cpipc/cellpose3-venv/bin/python benchmarks/service_bench.py OUT_DIR \
        [--rounds 3] [--sizes 256,512] [--clients 1,4,8] [--requests 1:3,4:1,8:1]
        [--threads 2] [--wait-quiet SECONDS] [--command TEXT]

(benchmarks/run_service_bench.sh builds bench_service and calls this.)

Sides, on the same synthetic 16-bit gray image per size (tools/synth/synth.py,
seed 0), diameter 30, the same weights (models/cpipc_default_cpnet.pt), 2 threads:
  - cpipc: one `cpipc serve --device cpu` (embedded model, started once, one
    warm-up request per size); C client threads of bench_service, each with its
    own connection, submit R requests each (image path); latency = submit ->
    masks copied out of the result segment. A separate consumer process
    (bench_service consumer) waits on the segment and reads each frame's
    first byte: result -> consumer's first byte = that time -
    FrameInfo.publish_monotonic_ns.
  - standalone ("what a user does today"): C processes started together, each
    runs Cellpose 3.1.1.2's pipeline itself: start, import, load the model,
    segment R times (service_baseline.py standalone). The first request's
    latency counts from the process's spawn (start + import + load + segment).
  - seed ("a new shared block per call"): one Python server (Cellpose, model
    loaded once, warm-up per size) that returns each result through a NEW
    multiprocessing.shared_memory block; C forked client processes attach,
    copy and unlink (service_baseline.py seed-server / seed-clients).
    Result -> first byte = the client's read of the block's first byte - the
    server's time after filling the block.

Every round runs every (size, clients) case on the three sides back to back,
the sides' order rotating from round to round. Per case and round:
requests/s = requests / wall time (first start to last result);
latencies p50 and p99 over the case's requests. Reported: medians over the
rounds; ratios are medians of the within-round ratios. Writes
OUT_DIR/results.json and OUT_DIR/results.md, with every raw record.
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BASELINE = os.path.join(REPO, "benchmarks", "service_baseline.py")
BUSY = "run_model_bench|run_dynamics_bench|segment_cellpose|dynamics_cellpose"


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def others_running():
    r = subprocess.run(["pgrep", "-f", BUSY], capture_output=True, text=True)
    mine = {str(os.getpid()), str(os.getppid())}
    return [p for p in r.stdout.split() if p not in mine]


def wait_quiet(limit_s, log):
    """Polls every 60 s until the 1-min load < 1.5 and no other benchmark runs, for up to limit_s."""
    t0 = time.monotonic()
    while True:
        load, busy = loadavg(), others_running()
        quiet = load[0] < 1.5 and not busy
        log(f"load {load}, other benchmarks {busy or 'none'}: {'quiet' if quiet else 'busy'}")
        if quiet or time.monotonic() - t0 + 60 > limit_s:
            return {"quiet": quiet, "waited_s": round(time.monotonic() - t0), "load": load, "others": busy}
        time.sleep(60)


def pct(values, q):
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def make_images(folder, sizes):
    spec = importlib.util.spec_from_file_location("synth", os.path.join(REPO, "tools/synth/synth.py"))
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for s in sizes:
        img, _ = synth.make_image(np.random.default_rng(0), s, 1, 16)
        paths[s] = os.path.join(folder, f"synth{s}.npy")
        np.save(paths[s], img)
    return paths


def start_and_wait(cmd, marker, env=None, timeout=300):
    """Starts a server; returns (Popen, seconds until it printed a line containing marker)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit(f"{cmd[0]} ended before it was ready: {p.stderr.read()[-2000:]}")
        if marker in line:
            return p, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"{cmd} not ready after {timeout} s")


def stop(p):
    if p and p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def run_json(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


class Bench:
    def __init__(self, a, env):
        self.a, self.env = a, env
        self.py = sys.executable
        self.bench = a.bench_service
        self.cpipc = os.path.join(REPO, "build", "cpipc")
        self.name = f"bench-svc-{os.getpid()}"
        self.sock = os.path.join(a.out, "cpipc.sock")
        self.seed_sock = os.path.join(a.out, "seed.sock")
        self.serve = self.seed = None

    def start(self, images):
        self.serve, self.serve_start_s = start_and_wait(
            [self.cpipc, "serve", "--socket", self.sock, "--name", self.name, "--device", "cpu"], "serving",
            env=self.env)
        self.seed, self.seed_start_s = start_and_wait(
            [self.py, BASELINE, "seed-server", "--socket", self.seed_sock, "--threads", str(self.a.threads)], "ready",
            env=self.env)
        for s, img in images.items():  # warm-up: the first run of each size is slower on both servers
            self.ours(img, 1, 1, consumer=False)
            self.seed_side(img, 1, 1)

    def close(self):
        stop(self.serve)
        stop(self.seed)

    def ours(self, image, clients, requests, consumer=True):
        cons = None
        if consumer:
            cons = subprocess.Popen([self.bench, "consumer", "--name", self.name], stdout=subprocess.PIPE, text=True,
                                    start_new_session=True)
            if "ready" not in cons.stdout.readline():
                raise SystemExit("bench_service consumer did not start")
        try:
            out = run_json([self.bench, "clients", "--socket", self.sock, "--image", image, "--clients", str(clients),
                            "--requests", str(requests), "--diameter", "30"])
        finally:
            frames = []
            if cons:
                time.sleep(0.2)
                os.killpg(cons.pid, signal.SIGTERM)
                rest, _ = cons.communicate(timeout=10)
                frames = [json.loads(line) for line in rest.splitlines() if line.strip()]
        if out["errors"]:
            raise SystemExit(f"cpipc clients failed: {out['errors']}")
        out["consumer_frames"] = frames
        return out

    def seed_side(self, image, clients, requests):
        return run_json([self.py, BASELINE, "seed-clients", "--socket", self.seed_sock, "--image", image,
                         "--clients", str(clients), "--requests", str(requests)], env=self.env)

    def standalone(self, image, clients, requests):
        procs = []
        t0 = time.monotonic_ns()
        for _ in range(clients):
            spawn = time.monotonic_ns()
            procs.append(subprocess.Popen([self.py, BASELINE, "standalone", "--image", image, "--requests",
                                           str(requests), "--threads", str(self.a.threads), "--spawn-ns", str(spawn)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env))
        runs = []
        for p in procs:
            o, e = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"standalone failed: {e[-2000:]}")
            runs.append(json.loads(o.strip().splitlines()[-1]))
        end = max(r["requests"][-1]["end_ns"] for r in runs)
        return {"clients": clients, "requests_per_client": requests, "start_ns": t0, "end_ns": end,
                "wall_s": (end - t0) * 1e-9, "processes": runs}


def summarize_case(side, raw):
    """One side, one case, one round -> the numbers."""
    ms = lambda ns: ns * 1e-6  # noqa: E731
    if side == "standalone":
        lat, first, steady, load = [], [], [], []
        for proc in raw["processes"]:
            for r in proc["requests"]:
                begin = proc["spawn_ns"] if r["index"] == 0 else r["start_ns"]
                lat.append(ms(r["end_ns"] - begin))
                (first if r["index"] == 0 else steady).append(ms(r["end_ns"] - begin))
            load.append(ms(proc["loaded_ns"] - proc["spawn_ns"]))
        n = sum(len(p["requests"]) for p in raw["processes"])
        objects = {r["objects"] for p in raw["processes"] for r in p["requests"]}
        extra = {"first_ms_p50": pct(first, 50), "steady_ms_p50": pct(steady, 50),
                 "start_import_load_ms_p50": pct(load, 50)}
    else:
        reqs = raw["requests"]
        n = len(reqs)
        lat = [ms(r["copied_ns"] - r["submit_ns"]) for r in reqs]
        objects = {r["objects"] for r in reqs}
        extra = {"result_msg_after_publish_us_p50": pct([(r["result_ns"] - r["publish_ns"]) * 1e-3 for r in reqs], 50),
                 "copied_after_publish_us_p50": pct([(r["copied_ns"] - r["publish_ns"]) * 1e-3 for r in reqs], 50)}
        if side == "cpipc":
            pubs = {r["publish_ns"] for r in reqs}
            seen = [f for f in raw["consumer_frames"] if f["publish_ns"] in pubs and f["valid"]]
            # The first frame after the producer re-created the segment for another shape includes
            # noticing that and attaching again: reported apart, not in the percentiles.
            fb = [(f["first_byte_ns"] - f["publish_ns"]) * 1e-3 for f in seen if not f.get("reattached")]
            extra["consumer_first_byte_us"] = fb
            extra["frames_seen_by_consumer"] = len(seen)
            extra["reattach_first_byte_us"] = [(f["first_byte_ns"] - f["publish_ns"]) * 1e-3 for f in seen
                                               if f.get("reattached")]
            extra["server_request_s_p50"] = pct([r["timings_s"].get("request", 0) for r in reqs], 50)
        else:
            fb = [(r["first_byte_ns"] - r["publish_ns"]) * 1e-3 for r in reqs]
            extra["consumer_first_byte_us"] = fb
        extra["first_byte_us_p50"] = pct(fb, 50)
        extra["first_byte_us_p99"] = pct(fb, 99)
    return {"requests": n, "wall_s": raw["wall_s"], "rps": n / raw["wall_s"], "p50_ms": pct(lat, 50),
            "p99_ms": pct(lat, 99), "latencies_ms": lat, "objects": sorted(objects), **extra}


def median_of(rounds, side, key):
    vals = [r[side][key] for r in rounds if r[side].get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(rounds, num_side, num_key, den_side, den_key):
    vals = [r[num_side][num_key] / r[den_side][den_key] for r in rounds]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 2**20
    return {"cpu": cpu, "nproc": os.cpu_count(), "memory_gib": round(mem, 1), "kernel": platform.release()}


def markdown(rep):
    m, o = rep["machine"], rep["options"]
    lines = [
        f"Measured {rep['date']} with `{rep['command']}`: {o['rounds']} round(s); in each, every case ran on the "
        "three sides back to back (order rotating). Every number is the median over the rounds; a ratio is the "
        "median of the rounds' ratios (range). Requests/s = all requests of the case / wall time from the clients' "
        "start to the last result; latency = submit → masks copied into the client (standalone: the first request "
        "of each process counts from its spawn, so start + import + model load are in it).",
        f"Machine: {m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; torch threads "
        f"{o['threads']} per Python process, cpipc serve with OMP_NUM_THREADS={o['threads']}. Load average "
        f"{rep['load_before']} at the first round, {rep['load_after']} at the end"
        + (f"; quiet wait: {rep['quiet']}" if rep.get("quiet") else "") + ".",
        f"Servers started once: cpipc serve ready in {rep['serve_start_s']:.1f} s, the seed's Python server in "
        f"{rep['seed_start_s']:.1f} s (import + model load); both had one warm-up request per size.",
        "",
        "| image | clients × requests | cpipc req/s | standalone req/s | seed req/s | cpipc / standalone | cpipc / seed "
        "| cpipc p50 / p99 | standalone p50 / p99 | seed p50 / p99 | standalone first / steady |",
        "|---|---|---:|---:|---:|---|---|---|---|---|---|",
    ]
    rr = lambda x: f"{x['median']:.2f}x ({x['min']:.2f}–{x['max']:.2f})"  # noqa: E731
    s = lambda v: f"{v / 1000:.2f} s" if v is not None else "–"  # noqa: E731
    for c in rep["cases"]:
        med = c["medians"]
        lines.append(
            f"| {c['size']}² | {c['clients']} × {c['requests']} | {med['cpipc']['rps']:.3f} | "
            f"{med['standalone']['rps']:.3f} | {med['seed']['rps']:.3f} | {rr(c['rps_ratio_standalone'])} | "
            f"{rr(c['rps_ratio_seed'])} | {s(med['cpipc']['p50_ms'])} / {s(med['cpipc']['p99_ms'])} | "
            f"{s(med['standalone']['p50_ms'])} / {s(med['standalone']['p99_ms'])} | "
            f"{s(med['seed']['p50_ms'])} / {s(med['seed']['p99_ms'])} | "
            f"{s(med['standalone']['first_ms_p50'])} / {s(med['standalone']['steady_ms_p50'])} |")
    lines += [
        "",
        "| image | clients | result → consumer's first byte: cpipc (separate consumer in wait_next) p50 / p99 "
        "| seed (client maps the new block) p50 / p99 | cpipc: result message at the client / masks copied, after publish "
        "| seed: answer at the client / masks copied, after publish |",
        "|---|---:|---|---|---|---|",
    ]
    us = lambda v: f"{v:.0f} µs" if v is not None else "–"  # noqa: E731
    for c in rep["cases"]:
        med = c["medians"]
        lines.append(
            f"| {c['size']}² | {c['clients']} | {us(med['cpipc']['first_byte_us_p50'])} / "
            f"{us(med['cpipc']['first_byte_us_p99'])} | {us(med['seed']['first_byte_us_p50'])} / "
            f"{us(med['seed']['first_byte_us_p99'])} | {us(med['cpipc']['result_msg_after_publish_us_p50'])} / "
            f"{us(med['cpipc']['copied_after_publish_us_p50'])} | {us(med['seed']['result_msg_after_publish_us_p50'])}"
            f" / {us(med['seed']['copied_after_publish_us_p50'])} |")
    re = [v for c in rep["cases"] for pr in c["per_round"] for v in pr["cpipc"].get("reattach_first_byte_us", [])]
    if re:
        lines += ["", f"Not in the cpipc columns: {len(re)} frame(s) that were the first after the producer re-created "
                  "its segment for the other size; the consumer had to notice that and attach again: publish → first "
                  f"byte median {us(statistics.median(re))} (range {us(min(re))}–{us(max(re))})."]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--clients", default="1,4,8")
    p.add_argument("--requests", default="1:2,4:1,8:1", help="requests per client, by clients (C:R,...)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--wait-quiet", type=int, default=0, help="wait up to this long for a quiet machine first")
    p.add_argument("--bench-service", default=os.path.join(REPO, "build", "benchmarks", "bench_service"))
    p.add_argument("--command", default="benchmarks/run_service_bench.sh")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    clients = [int(c) for c in a.clients.split(",")]
    per_client = {int(k): int(v) for k, v in (kv.split(":") for kv in a.requests.split(","))}
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    log = lambda msg: print(f"[service {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    images = make_images(os.path.join(a.out, "images"), sizes)
    b = Bench(a, env)
    rounds_raw = []
    try:
        log("starting cpipc serve and the seed's server, warm-up")
        b.start(images)
        quiet = wait_quiet(a.wait_quiet, log) if a.wait_quiet else None
        load_before = loadavg()
        sides = ["cpipc", "standalone", "seed"]
        for rnd in range(a.rounds):
            order = sides[rnd % 3:] + sides[:rnd % 3]
            rec = {"round": rnd + 1, "load_before": loadavg(), "cases": []}
            for s in sizes:
                for c in clients:
                    R = per_client.get(c, 1)
                    case = {"size": s, "clients": c, "requests": R, "raw": {}, "order": order}
                    for side in order:
                        fn = {"cpipc": b.ours, "standalone": b.standalone, "seed": b.seed_side}[side]
                        case["raw"][side] = fn(images[s], c, R)
                        log(f"round {rnd + 1} {s}² C={c} R={R} {side}: {case['raw'][side]['wall_s']:.1f} s")
                    rec["cases"].append(case)
            rec["load_after"] = loadavg()
            rounds_raw.append(rec)
    finally:
        b.close()

    cases = []
    for i, first in enumerate(rounds_raw[0]["cases"]):
        per_round = [{side: summarize_case(side, r["cases"][i]["raw"][side]) for side in sides} for r in rounds_raw]
        keys = ["rps", "p50_ms", "p99_ms", "first_ms_p50", "steady_ms_p50", "start_import_load_ms_p50",
                "first_byte_us_p50", "first_byte_us_p99", "result_msg_after_publish_us_p50",
                "copied_after_publish_us_p50", "server_request_s_p50"]
        medians = {side: {k: median_of(per_round, side, k) for k in keys} for side in sides}
        objects = {side: sorted({o for pr in per_round for o in pr[side]["objects"]}) for side in sides}
        cases.append({"size": first["size"], "clients": first["clients"], "requests": first["requests"],
                      "medians": medians, "objects": objects,
                      "rps_ratio_standalone": ratio(per_round, "cpipc", "rps", "standalone", "rps"),
                      "rps_ratio_seed": ratio(per_round, "cpipc", "rps", "seed", "rps"),
                      "p50_ratio_standalone": ratio(per_round, "standalone", "p50_ms", "cpipc", "p50_ms"),
                      "p50_ratio_seed": ratio(per_round, "seed", "p50_ms", "cpipc", "p50_ms"),
                      "per_round": per_round})
    rep = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": a.command, "machine": machine(),
           "options": {"rounds": a.rounds, "sizes": sizes, "clients": clients, "requests_per_client": per_client,
                       "threads": a.threads},
           "load_before": load_before, "load_after": loadavg(), "quiet": quiet,
           "serve_start_s": b.serve_start_s, "seed_start_s": b.seed_start_s,
           "cases": cases, "rounds_raw": rounds_raw}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(rep, f, indent=1)
    md = markdown(rep)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
