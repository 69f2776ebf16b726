"""Stream results as they are made, the way a notebook cell would (no napari, no files).

A producer keeps the network loaded; this client queues every image at once
and takes each result as it finishes, while a second reader, as any other
process could, follows the producer's result segment frame by frame.

    python examples/streaming_example.py data/samples/*.tif

Needs the cpipc program (scripts/setup.sh; on PATH or in $CPIPC_BIN).
"""

import sys
import threading

import numpy as np

import cpipc

images = sys.argv[1:] or ["data/samples/cells_0.tif", "data/samples/cells_1.tif", "data/samples/cells_2.tif"]
printing = threading.Lock()  # two threads print: one line at a time, never interleaved


def say(line: str) -> None:
    with printing:
        print(line, flush=True)


def follow(stream: str) -> None:
    """Another consumer: each frame the producer publishes from now on, as it is published
    (a reader that falls behind gets the newest, never a queue)."""
    with cpipc.attach(stream) as seg:
        while (frame := seg.wait_next(timeout=5)) is not None:
            say(f"  [reader] frame {seg.last_info['frame_id']}: {int(frame.max())} objects, "
                f"source {seg.last_info['meta'].get('source')}")


with cpipc.serve(device="auto") as producer, cpipc.Client(producer.name) as client:
    futures = {path: client.submit(path) for path in images}  # queued at once; the producer works through them
    reader = None
    for path, future in futures.items():
        r = future.result()
        if reader is None:  # the segment exists once the first result is published
            reader = threading.Thread(target=follow, args=(producer.name,))
            reader.start()
        areas = np.bincount(r.masks.ravel())[1:]
        say(f"{path}: {r.objects} cells, median area {np.median(areas):.0f} px, "
            f"network {r.timings['network']:.2f} s, dynamics {r.timings['dynamics']:.3f} s")
    reader.join()
