"""The seed's way of handing frames to other processes, as cpipc's baseline.

Per frame, the producer creates a NEW multiprocessing.shared_memory block,
fills an np.ndarray over it, and sends the block's name to every consumer
over a multiprocessing Pipe. Each consumer maps the block by name, checksums
it, closes it and acknowledges; once every consumer has acknowledged, the
producer unlinks it. At most SLOTS frames are in flight, like cpipc's ring.

Counted the way bench_segment counts cpipc: each consumer bumps a shared
counter per frame it checksummed; the producer samples the counters at the two
ends of a window that opens after a warm-up. Prints one JSON object.
"""

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import signal
import sys
import time
import timeit
from multiprocessing import resource_tracker, shared_memory
from multiprocessing.connection import wait

import numpy as np

SLOTS = 4  # frames in flight; cpipc's benchmark uses a ring of 4 slots


def make_frame(side, parity=0):
    """bench_segment.cpp's label images: 16x16 blocks of labels 0..999; odd and even frames differ."""
    blocks = np.arange(side, dtype=np.uint32) // 16
    return ((blocks[:, None] * 131 + blocks[None, :] * 7 + parity) % 1000).astype(np.uint32)


def checksum(arr):
    """Sum of the elements modulo 2**32: one read pass, as on cpipc's side."""
    return int(arr.sum(dtype=np.uint32))


def checksum_us(side, quick):
    """The consumers' checksum alone, in microseconds per frame (best of 5)."""
    arr = make_frame(side)
    runs = (2000 if side <= 512 else 100) // (20 if quick else 1)
    return min(timeit.repeat(lambda: checksum(arr), number=runs, repeat=5)) / runs * 1e6


def consumer(conn, index, delivered, side, expected, parent_pid):
    """expected: the checksums of even and odd frames."""
    # Die with the producer, so that no consumer outlives a killed run.
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        return
    conn.send("ready")
    bad = 0
    while (message := conn.recv()) is not None:
        name, frame_id = message
        block = shared_memory.SharedMemory(name=name)
        arr = np.ndarray((side, side), dtype=np.uint32, buffer=block.buf)
        bad += checksum(arr) != expected[frame_id % 2]
        del arr  # the mapping cannot close while a view of it lives
        block.close()
        delivered[index] += 1
        conn.send(name)  # the producer may unlink it now
    conn.send(bad)


def frames_per_second(side, consumers, warmup_s, window_s):
    frames = [make_frame(side, 0), make_frame(side, 1)]
    expected = [checksum(f) for f in frames]
    delivered = mp.RawArray(ctypes.c_uint64, consumers)
    pipes, procs = [], []
    in_flight = {}  # name -> [block, acknowledgements still missing]
    frame_id = 0  # 1-based like cpipc's: odd and even frames differ

    def settle_acks():
        for conn in wait(pipes):
            while conn.poll():
                entry = in_flight[conn.recv()]
                entry[1] -= 1
                if entry[1] == 0:
                    entry[0].close()
                    entry[0].unlink()
                    del in_flight[entry[0].name]

    def publish_until(deadline_ns):
        nonlocal frame_id
        published = 0
        while time.monotonic_ns() < deadline_ns:
            frame_id += 1
            frame = frames[frame_id % 2]
            while len(in_flight) >= SLOTS:
                settle_acks()
            block = shared_memory.SharedMemory(create=True, size=frame.nbytes)
            in_flight[block.name] = [block, consumers]
            arr = np.ndarray(frame.shape, dtype=frame.dtype, buffer=block.buf)
            arr[:] = frame
            del arr
            for conn in pipes:
                conn.send((block.name, frame_id))
            published += 1
        return published

    try:
        for i in range(consumers):
            ours, theirs = mp.Pipe()
            proc = mp.Process(target=consumer, args=(theirs, i, delivered, side, expected, os.getpid()), daemon=True)
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        for conn in pipes:
            if not conn.poll(20) or conn.recv() != "ready":
                raise RuntimeError("a consumer process did not start")

        publish_until(time.monotonic_ns() + int(warmup_s * 1e9))
        t0 = time.monotonic_ns()
        d0 = list(delivered)
        published = publish_until(t0 + int(window_s * 1e9))
        d1 = list(delivered)
        seconds = (time.monotonic_ns() - t0) * 1e-9

        while in_flight:
            settle_acks()
        for conn in pipes:
            conn.send(None)
        bad = sum(conn.recv() for conn in pipes)
        if bad:
            raise RuntimeError(f"{bad} frames had a wrong checksum")
        reader_fps = [(b - a) / seconds for a, b in zip(d0, d1)]
        return {
            "name": f"seed/{side}/{consumers}",
            "side": side,
            "readers": consumers,
            "reader_fps": sum(reader_fps) / consumers,
            "reader_fps_min": min(reader_fps),
            "producer_fps": published / seconds,
            "window_s": seconds,
            "expected_checksum": expected[0],
        }
    finally:
        for block, _ in in_flight.values():
            block.close()
            try:
                block.unlink()
            except FileNotFoundError:
                pass
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--sides", default="512,2048", help="frame sides, comma-separated")
    parser.add_argument("--consumers", default="1,8", help="consumer counts, comma-separated")
    parser.add_argument("--out", help="write the JSON here as well as to stdout")
    args = parser.parse_args()
    warmup_s, window_s = (0.05, 0.1) if args.quick else (0.3, 2.0)

    # A SIGTERM (the runner's cleanup) still runs the finally blocks above.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # One resource tracker for the producer and every consumer (they fork from
    # here), as in a seed program that created a block before it forked.
    resource_tracker.ensure_running()

    sides = [int(v) for v in args.sides.split(",")]
    counts = [int(v) for v in args.consumers.split(",")]
    results = [frames_per_second(side, n, warmup_s, window_s) for side in sides for n in counts]
    report = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "start_method": mp.get_start_method(),
        "slots": SLOTS,
        "benchmarks": results,
        "checksum_us": {str(side): checksum_us(side, args.quick) for side in sides},
    }
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
