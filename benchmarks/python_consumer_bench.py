"""Python consumers of frames: the cpipc package against the seed's SharedMemory-per-frame pattern.

Every run is one producer (this process) and C consumer processes (spawned:
fresh interpreters that import numpy, and cpipc on cpipc's side), frames of
side x side uint32. Methods:

  seed-copy    per frame the producer creates a NEW multiprocessing.shared_memory
               block, copies the frame into it, and sends (shape, dtype, name,
               frame id) to every consumer over its multiprocessing.Pipe; a
               consumer maps the block by name, copies the array out
               (np.ndarray(shape, dtype, buffer=shm.buf).copy()), closes it and
               acks the name; once all C consumers acked, the producer closes
               and unlinks it. One block per frame, shared by all consumers;
               at most --seed-depth (4) frames in flight.
  seed-sum     the same, but the consumer reads the block in place
               (view.sum()) instead of copying it: the seed's zero-copy read.
  cpipc-copy   cpipc.Publisher(slots=4) publishing as fast as it can (it never
               waits for consumers: cpipc's latest-value design); consumers
               loop seg.wait_next(timeout) (a private copy of the next frame).
               A consumer slower than the producer skips frames: only frames
               delivered count.
  cpipc-paced  as cpipc-copy, but the producer publishes the next frame only
               after every consumer acked the previous one (1 byte over a
               multiprocessing.Pipe per frame), so every consumer gets every
               frame, as in the seed.
  cpipc-lease  free-running producer as cpipc-copy; consumers block in
               seg.wait() (the futex wait of wait_next, without its copy) for a
               frame newer than the last one they read, lease the latest, then
               view.sum() in place, counted only if the lease is still valid
               after the sum.

frames/s of a consumer = the frames it received (and copied, or summed) whose
handling finished inside a common window [t0, t1] (--window s, opening
--warmup s after every consumer said ready), divided by the window's length.
Every frame carries its frame id in its first and last element; a consumer
checks both (a torn or stale frame is counted bad and fails the run).

Subcommands: run (prints one JSON object per run, then medians; --out DIR
writes runs.jsonl, results.json, results.md), profile (per-step timings in one
process, no contention).
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from multiprocessing import shared_memory
from multiprocessing.connection import wait

import numpy as np

CTX = mp.get_context("spawn")
INF = float("inf")
METHODS = ("seed-copy", "seed-sum", "cpipc-copy", "cpipc-paced", "cpipc-lease")


def make_frames(side):
    """Two label-like frames that differ (odd and even ids)."""
    blocks = np.arange(side, dtype=np.uint32) // 16
    base = (blocks[:, None] * 131 + blocks[None, :] * 7) % 1000
    return [(base + p).astype(np.uint32) for p in (0, 1)]


def stamp(frame, frame_id):
    frame.flat[0] = frame_id
    frame.flat[-1] = frame_id


def attach_block(name):
    """The seed consumer's SharedMemory(name=...), without resource-tracker trouble."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    # Before 3.13, attaching registers the name with the resource tracker. These
    # consumers are spawned by the producer and share its tracker (spawn passes
    # the tracker's fd to the child), where the creator already registered the
    # name: the tracker keeps a set, so the second REGISTER changes nothing and
    # the producer's unlink() unregisters it once. (A consumer with a tracker of
    # its own would have to resource_tracker.unregister() here, or its tracker
    # would unlink the block at exit and warn about a leak.)
    return shared_memory.SharedMemory(name=name)


class Clock:
    """Per-step time, summed over the frames counted in the window."""

    def __init__(self, steps):
        self.steps = {s: 0.0 for s in steps}

    def add(self, marks):
        for (s, _), (a, b) in zip(self.steps.items(), zip(marks, marks[1:])):
            self.steps[s] += b - a


def report(res_conn, counted, window, bad, skipped, received, clock, extra=None):
    t0, t1 = window[0], window[1]
    out = {"frames": counted, "fps": counted / (t1 - t0), "bad": bad, "skipped": skipped,
           "received": received,
           "us_per_frame": {k: (v / counted * 1e6 if counted else None) for k, v in clock.steps.items()}}
    out.update(extra or {})
    res_conn.send(out)


def seed_consumer(conn, res_conn, window, work):
    conn.send("ready")
    pc, mono = time.perf_counter, time.monotonic
    clock = Clock(["wait+recv", "attach", work, "close", "ack"])
    counted = bad = skipped = received = last = 0
    keep = None
    while True:
        a = pc()
        message = conn.recv()
        if message is None:
            break
        shape, dtype, name, frame_id = message
        b = pc()
        block = attach_block(name)
        c = pc()
        view = np.ndarray(shape, dtype, buffer=block.buf)
        if work == "copy":
            keep = view.copy()
            ok = keep.flat[0] == frame_id and keep.flat[-1] == frame_id
        else:
            view.sum(dtype=np.uint32)
            ok = view.flat[0] == frame_id and view.flat[-1] == frame_id
        del view  # a mapping cannot close while a view of it lives
        d = pc()
        block.close()
        e = pc()
        conn.send(name)
        f = pc()
        received += 1
        bad += not ok
        skipped += frame_id - last - 1 if last else 0
        last = frame_id
        if window[0] <= mono() <= window[1]:
            counted += 1
            clock.add([a, b, c, d, e, f])
    del keep
    report(res_conn, counted, window, bad, skipped, received, clock)


def cpipc_consumer(conn, res_conn, window, stop, name, work, paced):
    import cpipc

    seg = cpipc.attach(name)
    conn.send("ready")
    pc, mono = time.perf_counter, time.monotonic
    counted = bad = skipped = received = last = polls = invalid = 0
    if work == "copy":
        clock = Clock(["wait_next (wait+copy)", "check", "ack"])
        while not stop.value:
            a = pc()
            arr = seg.wait_next(timeout=0.1)
            b = pc()
            if arr is None:
                continue
            frame_id = int(arr.flat[0])
            ok = arr.flat[-1] == frame_id and frame_id > last
            c = pc()
            if paced:
                conn.send_bytes(b"a")
            d = pc()
            received += 1
            bad += not ok
            skipped += frame_id - last - 1 if last else 0
            last = frame_id
            if window[0] <= mono() <= window[1]:
                counted += 1
                clock.add([a, b, c, d])
    else:
        clock = Clock(["wait (futex, no copy) + lease", "lease", "sum+check", "release"])
        while not stop.value:
            a = pc()
            if seg.wait(timeout=0.2) is None:
                continue
            lease = seg.lease()
            if lease is None or lease.info["frame_id"] <= last:
                if lease is not None:
                    lease.release()
                polls += 1
                continue
            b = pc()
            frame_id = lease.info["frame_id"]
            view = lease.view
            c = pc()
            view.sum(dtype=np.uint32)
            ok = view.flat[0] == frame_id and view.flat[-1] == frame_id
            valid = lease.valid()
            d = pc()
            lease.release()
            del view
            e = pc()
            received += 1
            if not valid:  # the producer took the slot back during the sum: not a frame read
                invalid += 1
                continue
            bad += not ok
            skipped += frame_id - last - 1 if last else 0
            last = frame_id
            if window[0] <= mono() <= window[1]:
                counted += 1
                clock.add([a, b, c, d, e])
    seg.close()
    report(res_conn, counted, window, bad, skipped, received, clock, {"polls": polls, "invalid": invalid})


def start_consumers(n, target, args_of):
    procs, conns, results = [], [], []
    for i in range(n):
        ours, theirs = CTX.Pipe()
        res_ours, res_theirs = CTX.Pipe(duplex=False)
        p = CTX.Process(target=target, args=(theirs, res_theirs) + args_of(i), daemon=True)
        p.start()
        theirs.close()
        res_theirs.close()
        procs.append(p)
        conns.append(ours)
        results.append(res_ours)
    for c in conns:
        if not c.poll(60) or c.recv() != "ready":
            raise RuntimeError("a consumer did not start")
    return procs, conns, results


def open_window(window, warmup, length):
    t0 = time.monotonic() + warmup
    window[1] = t0 + length
    window[0] = t0
    return t0, t0 + length


def finish(procs, results):
    out = [r.recv() for r in results]
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()
    return out


def run_seed(side, consumers, work, depth, warmup, length):
    frames = make_frames(side)
    window = CTX.RawArray("d", [INF, INF])
    procs, conns, results = start_consumers(consumers, seed_consumer, lambda i: (window, work))
    in_flight = {}  # name -> [block, acks missing]

    def settle():
        for conn in wait(conns):
            while conn.poll():
                entry = in_flight[conn.recv()]
                entry[1] -= 1
                if entry[1] == 0:
                    entry[0].close()
                    entry[0].unlink()
                    del in_flight[entry[0].name]

    try:
        t0, t1 = open_window(window, warmup, length)
        frame_id = published = 0
        while (now := time.monotonic()) < t1 + 0.02:
            while len(in_flight) >= depth:
                settle()
            frame_id += 1
            frame = frames[frame_id % 2]
            stamp(frame, frame_id)
            block = shared_memory.SharedMemory(create=True, size=frame.nbytes)
            np.ndarray(frame.shape, frame.dtype, buffer=block.buf)[:] = frame
            in_flight[block.name] = [block, consumers]
            for conn in conns:
                conn.send((frame.shape, "uint32", block.name, frame_id))
            published += t0 <= now <= t1
        while in_flight:
            settle()
        for conn in conns:
            conn.send(None)
        return finish(procs, results), published / (t1 - t0)
    finally:
        for block, _ in in_flight.values():
            block.close()
            block.unlink()
        for p in procs:
            if p.is_alive():
                p.kill()


def run_cpipc(side, consumers, work, paced, warmup, length, tag):
    import cpipc

    frames = make_frames(side)
    window = CTX.RawArray("d", [INF, INF])
    stop = CTX.RawValue("b", 0)
    name = f"pybench-{os.getpid()}-{tag}"
    procs = []
    with cpipc.Publisher(name, (side, side), np.uint32, slots=4) as pub:
        try:
            procs, conns, results = start_consumers(
                consumers, cpipc_consumer, lambda i: (window, stop, name, work, paced))
            t0, t1 = open_window(window, warmup, length)
            frame_id = published = 0
            while (now := time.monotonic()) < t1 + 0.02:
                frame_id += 1
                frame = frames[frame_id % 2]
                stamp(frame, frame_id)
                pub.publish(frame)
                published += t0 <= now <= t1
                if paced:
                    for conn in conns:
                        conn.recv_bytes()
            stop.value = 1
            return finish(procs, results), published / (t1 - t0)
        finally:
            stop.value = 1
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.kill()


def one_run(method, side, consumers, args, tag):
    if method.startswith("seed"):
        per, producer_fps = run_seed(side, consumers, method.split("-")[1], args.seed_depth, args.warmup, args.window)
    else:
        work = "lease" if method == "cpipc-lease" else "copy"
        per, producer_fps = run_cpipc(side, consumers, work, method == "cpipc-paced", args.warmup, args.window, tag)
    bad = sum(p["bad"] for p in per)
    if bad:
        raise RuntimeError(f"{method} {side} {consumers}: {bad} frames with a wrong frame id")
    fps = [p["fps"] for p in per]
    return {"method": method, "side": side, "consumers": consumers,
            "fps_per_consumer": statistics.fmean(fps), "fps_min": min(fps), "fps_total": sum(fps),
            "producer_fps": producer_fps, "consumers_raw": per}


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import cpipc

    return {"cpu": model, "nproc": os.cpu_count(), "kernel": platform.release(),
            "python": sys.version.split()[0], "numpy": np.__version__, "cpipc": cpipc.__version__,
            "start_method": "spawn"}


def cpu_idle(seconds=0.5):
    """The fraction of this machine's CPU time that was idle over ``seconds``."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = snap()
    time.sleep(seconds)
    i1, t1 = snap()
    return (i1 - i0) / max(1, t1 - t0)


def wait_quiet(limit_s, want=0.7):
    """Waits up to limit_s for a half second in which the CPUs were >= want idle; returns the last idle fraction."""
    end = time.monotonic() + limit_s
    idle = cpu_idle()
    while idle < want and time.monotonic() < end:
        idle = cpu_idle()
    return idle


def cmd_run(args):
    sides = [int(v) for v in args.sides.split(",")]
    counts = [int(v) for v in args.consumers.split(",")]
    methods = args.methods.split(",")
    rows = []
    info = machine()
    info["load_before"] = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    runs_file = open(os.path.join(args.out, "runs.jsonl"), "w") if args.out else None
    for rnd in range(1, args.rounds + 1):
        for side in sides:
            for n in counts:
                idle = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
                for method in methods:
                    r = one_run(method, side, n, args, f"{rnd}-{side}-{n}")
                    r["round"] = rnd
                    r["load"] = os.getloadavg()[0]
                    r["idle_before_case"] = idle
                    rows.append(r)
                    line = json.dumps(r)
                    print(line, flush=True)
                    if runs_file:
                        runs_file.write(line + "\n")
                        runs_file.flush()
                    print(f"round {rnd} {side}² x{n} {method:12s} {r['fps_per_consumer']:9.1f} frames/s per consumer "
                          f"(producer {r['producer_fps']:.0f}/s)", file=sys.stderr, flush=True)
    info["load_after"] = os.getloadavg()
    summary = summarize(rows, sides, counts, methods)
    result = {"started": started, "machine": info, "args": vars(args), "summary": summary}
    text = markdown(result)
    print(text)
    if args.out:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(text)


def summarize(rows, sides, counts, methods):
    out = []
    for side in sides:
        for n in counts:
            cell = {"side": side, "consumers": n}
            by = {m: {r["round"]: r for r in rows if r["method"] == m and r["side"] == side and r["consumers"] == n}
                  for m in methods}
            for m in methods:
                rs = list(by[m].values())
                cell[m] = {
                    "fps_per_consumer": statistics.median(r["fps_per_consumer"] for r in rs),
                    "fps_min": statistics.median(r["fps_min"] for r in rs),
                    "producer_fps": statistics.median(r["producer_fps"] for r in rs),
                    "skipped_per_consumer": statistics.median(
                        statistics.fmean(c["skipped"] for c in r["consumers_raw"]) for r in rs),
                    "us_per_frame": {k: statistics.median(statistics.fmean(c["us_per_frame"][k] or 0 for c in r["consumers_raw"]) for r in rs)
                                     for k in rs[0]["consumers_raw"][0]["us_per_frame"]},
                }
            for m in methods:
                if m.startswith("cpipc"):
                    base = "seed-sum" if m == "cpipc-lease" and "seed-sum" in by else "seed-copy"
                    if base not in by:
                        continue
                    ratios = [by[m][k]["fps_per_consumer"] / by[base][k]["fps_per_consumer"]
                              for k in by[m] if k in by[base]]
                    cell[m]["ratio"] = {"against": base, "median": statistics.median(ratios),
                                        "min": min(ratios), "max": max(ratios)}
            out.append(cell)
    return out


def markdown(result):
    m = result["machine"]
    a = result["args"]
    lines = [
        f"Measured {result['started']} with `benchmarks/run_python_consumer_bench.sh` "
        f"({a['rounds']} rounds; every method of a case back to back in each round; window {a['window']} s after "
        f"{a['warmup']} s warm-up; seed depth {a['seed_depth']}).",
        f"Machine: {m['cpu']}, {m['nproc']} cores, Linux {m['kernel']}; Python {m['python']}, numpy {m['numpy']}, "
        f"cpipc {m['cpipc']}, consumers started with spawn. Load average {' '.join(f'{x:.2f}' for x in m['load_before'])} "
        f"before, {' '.join(f'{x:.2f}' for x in m['load_after'])} after.",
        "Medians over the rounds of the mean frames/s per consumer; a ratio is the median of the rounds' ratios "
        "(range in parentheses).",
        "",
        "| frame | consumers | seed copy | cpipc copy (wait_next) | cpipc copy / seed | cpipc paced copy | paced / seed "
        "| seed sum in place | cpipc lease + sum | lease / seed sum | cpipc producer fps | cpipc skipped/consumer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def g(cell, k, f="fps_per_consumer"):
        return cell.get(k, {}).get(f)

    def ratio(cell, k):
        r = cell.get(k, {}).get("ratio")
        return f"{r['median']:.2f}x ({r['min']:.2f}–{r['max']:.2f})" if r else "–"

    def num(v):
        return "–" if v is None else f"{v:.0f}"

    for c in result["summary"]:
        lines.append(
            f"| {c['side']}² uint32 | {c['consumers']} | {num(g(c, 'seed-copy'))} | {num(g(c, 'cpipc-copy'))} | "
            f"{ratio(c, 'cpipc-copy')} | {num(g(c, 'cpipc-paced'))} | {ratio(c, 'cpipc-paced')} | "
            f"{num(g(c, 'seed-sum'))} | {num(g(c, 'cpipc-lease'))} | {ratio(c, 'cpipc-lease')} | "
            f"{num(g(c, 'cpipc-copy', 'producer_fps'))} | {num(g(c, 'cpipc-copy', 'skipped_per_consumer'))} |")
    lines += ["", "Consumer time per counted frame (µs, medians over the rounds of the consumers' means):", ""]
    for c in result["summary"]:
        for k in METHODS:
            if k in c:
                steps = ", ".join(f"{s} {v:.0f}" for s, v in c[k]["us_per_frame"].items())
                lines.append(f"- {c['side']}² x{c['consumers']} {k}: {steps}")
    return "\n".join(lines) + "\n"


def timeit_us(fn, n):
    fn()
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(best)


def cmd_profile(args):
    """Each step alone, in this one process: where a consumer's time goes."""
    import cpipc

    out = {"machine": machine()}
    for side in [int(v) for v in args.sides.split(",")]:
        n = 400 if side <= 512 else 25
        frame = make_frames(side)[0]
        stamp(frame, 1)
        steps = {}
        steps["numpy arr.copy()"] = timeit_us(lambda: frame.copy(), n)
        steps["numpy np.zeros + copyto (zero-fill then copy)"] = timeit_us(
            lambda: np.copyto(np.zeros_like(frame), frame), n)
        steps["numpy arr.sum(dtype=uint32)"] = timeit_us(lambda: frame.sum(dtype=np.uint32), n)

        def seed_producer_block():
            b = shared_memory.SharedMemory(create=True, size=frame.nbytes)
            np.ndarray(frame.shape, frame.dtype, buffer=b.buf)[:] = frame
            return b

        held = seed_producer_block()

        def seed_attach_copy_close():
            b = attach_block(held.name)
            a = np.ndarray(frame.shape, frame.dtype, buffer=b.buf).copy()
            b.close()
            return a

        def seed_attach_close():
            attach_block(held.name).close()

        def seed_create_fill_unlink():
            b = seed_producer_block()
            b.close()
            b.unlink()

        def seed_producer_steps():
            pc = time.perf_counter
            t = [pc()]
            b = shared_memory.SharedMemory(create=True, size=frame.nbytes)  # shm_open, ftruncate, mmap, tracker
            t.append(pc())
            np.ndarray(frame.shape, frame.dtype, buffer=b.buf)[:] = frame  # the copy, and a page fault per 4 KiB page
            t.append(pc())
            b.close()  # munmap
            t.append(pc())
            b.unlink()  # shm_unlink, tracker
            t.append(pc())
            return [y - x for x, y in zip(t, t[1:])]

        parts = [seed_producer_steps() for _ in range(n)]
        for i, label in enumerate(["SharedMemory(create=True)", "fill (copy + first-touch page faults)",
                                   "close", "unlink"]):
            steps[f"seed producer step: {label}"] = statistics.median(p[i] for p in parts) * 1e6
        steps["seed consumer: SharedMemory(name) + close (no copy)"] = timeit_us(seed_attach_close, n)
        steps["seed consumer: SharedMemory(name) + copy + close"] = timeit_us(seed_attach_copy_close, n)
        steps["seed producer: SharedMemory(create) + fill + close + unlink"] = timeit_us(seed_create_fill_unlink, n)
        held.close()
        held.unlink()

        a, b = CTX.Pipe()
        msg = (frame.shape, "uint32", "psm_0123456789", 1)

        def pipe_roundtrip():
            a.send(msg)
            b.recv()
            b.send("psm_0123456789")
            a.recv()

        steps["seed: Pipe send + recv of the message and the ack (same process, no wake-up)"] = timeit_us(pipe_roundtrip, n)
        name = f"pybench-prof-{os.getpid()}-{side}"
        with cpipc.Publisher(name, frame.shape, np.uint32, slots=4) as pub:
            steps["cpipc Publisher.publish"] = timeit_us(lambda: pub.publish(frame), n)
            with cpipc.attach(name) as seg:
                steps["cpipc Segment.latest() (copy)"] = timeit_us(seg.latest, n)
                steps["cpipc _cpipc.Reader.copy_latest() (copy, no Python wrapper)"] = timeit_us(
                    seg._reader.copy_latest, n)

                def next_frame():
                    pub.publish(frame)
                    seg.wait_next(timeout=1)

                steps["cpipc publish + wait_next (frame already there, same process)"] = timeit_us(next_frame, n)
                steps["cpipc Segment.lease() + release"] = timeit_us(lambda: seg.lease().release(), n)

                def lease_sum():
                    with seg.lease() as v:
                        v.sum(dtype=np.uint32)

                steps["cpipc lease + view.sum + release"] = timeit_us(lease_sum, n)
                steps["cpipc Segment.info()"] = timeit_us(seg.info, n)
        out[f"{side}"] = steps
        print(f"{side}² uint32:", file=sys.stderr)
        for k, v in steps.items():
            print(f"  {v:9.1f} µs  {k}", file=sys.stderr)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(os.path.join(args.out, "profile.json"), "w") as f:
            f.write(text + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["run", "profile"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sides", default="512,2048")
    p.add_argument("--consumers", default="1,4")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--warmup", type=float, default=0.3)
    p.add_argument("--window", type=float, default=1.5)
    p.add_argument("--seed-depth", type=int, default=4, help="frames the seed's producer keeps in flight")
    p.add_argument("--wait-quiet", type=float, default=0.0,
                   help="before each case, wait up to this many seconds for the CPUs to be >= 70%% idle")
    p.add_argument("--out")
    args = p.parse_args()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    {"run": cmd_run, "profile": cmd_profile}[args.command](args)


if __name__ == "__main__":
    main()
