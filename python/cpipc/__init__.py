"""cpipc: Cellpose masks (and any tensor) shared between processes, as numpy arrays.

Consumers::

    with cpipc.attach("masks") as seg:
        a = seg.latest()                 # a copy of the latest frame
        with seg.lease() as view:        # read-only, in place, no copy
            total = view.sum()
        f = seg.wait_next(timeout=1.0)   # the next frame, or None

Producers::

    with cpipc.Publisher("frames", shape=(512, 512), dtype="uint16") as pub:
        pub.publish(array, meta={"source": "camera"})

The service (``cpipc serve``)::

    with cpipc.Client("cells") as c:
        r = c.segment(image)             # a numpy array or a path
        r.masks, r.objects, r.diameter

A thin layer over cpipc's C++ segment library (docs/FORMAT.md); the segments
are the CLI's (``cpipc ls``, ``cpipc save``) and never Python SharedMemory
blocks, so no resource tracker can unlink them.
"""

from .client import Client, Future, Result, default_socket_path
from .errors import BadInput, Cancelled, Error, NotFound, OutOfMemory, Overloaded, ProducerGone, TimedOut
from .publisher import Publisher
from .registry import gc, list_segments, remove
from .server import Server, find_binary, serve
from .segment import DeviceView, Lease, Segment, attach

__version__ = "0.1.0"
__all__ = [
    "attach", "Segment", "Lease", "DeviceView", "Publisher", "list_segments", "remove", "gc",
    "Client", "Future", "Result", "default_socket_path", "serve", "Server", "find_binary",
    "Error", "BadInput", "NotFound", "ProducerGone", "Cancelled", "TimedOut", "OutOfMemory", "Overloaded",
]
