"""Segment an image in another process and read the masks back through shared memory.

The pattern cpipc replaces: a Cellpose process segments, copies its masks into
a SharedMemory block and hands back (shape, dtype, name); this side maps it,
saves it, and calls close() and unlink(). With cpipc the producer keeps the
network loaded, the masks come back through its segment, and cleaning up is
leaving the ``with`` blocks.

    python examples/shared_memory_example.py data/samples/cells_0.tif

Needs the cpipc program (scripts/setup.sh; on PATH or in $CPIPC_BIN).
"""

import sys
from pathlib import Path

import cpipc

image = Path(sys.argv[1] if len(sys.argv) > 1 else "data/samples/cells_0.tif")
with cpipc.serve(device="auto") as producer, cpipc.Client(producer.name) as client:
    result = client.segment(image)  # the masks were read from the producer's segment, then released
    out = image.with_name(f"{image.stem}_segmentation.bin")
    result.masks.tofile(out)  # raw C-order bytes; shape and dtype below
    print(f"{image.name}: {result.objects} cells, diameter {result.diameter:.1f} px; "
          f"saved {out} ({result.masks.dtype}, shape {result.masks.shape})")
# Both ends are gone now: the producer removed its socket and unlinked its segment.
