"""One ``cpipc serve`` per Dask worker: the model loaded once, blocks passed through shared segments."""

import json
import logging
import os
import subprocess
import threading
import zlib
from typing import Optional, Sequence

from distributed import WorkerPlugin, get_worker

from ..client import Client, Result
from ..errors import Error, ProducerGone
from ..registry import gc, list_segments
from ..server import Server, find_binary, serve

__all__ = ["Producers", "producers_on_this_worker"]

log = logging.getLogger("cpipc.dask")


class Producers(WorkerPlugin):
    """A Dask worker plugin: every worker starts its own ``cpipc serve``
    when the plugin is registered (or when it joins later) and stops it
    when the worker closes or the plugin is removed. The producer holds a
    lifeline to the worker process, so a worker that is killed takes its
    producer with it (socket and segments removed). A producer that dies
    while the worker lives is started again by the next block.

    ``device="auto"``: a worker that sees its own GPU (``CUDA_VISIBLE_DEVICES``,
    as dask-cuda's LocalCUDACluster sets it) uses it; on a node with several
    GPUs visible to every worker, workers take ``cuda:(worker name mod GPUs)``;
    without a GPU, the CPU. Any other value goes to ``cpipc serve --device``.
    """

    def __init__(self, name: str, *, model: Optional[str] = None, device: str = "auto",
                 args: Sequence[str] = (), binary: Optional[str] = None, start_timeout: float = 600.0):
        self.name = name
        self.model = os.fspath(model) if model else None
        self.device = device
        self.args = list(args)
        # Resolved here, on the client: workers started with another PATH find the same program.
        self.binary = binary or find_binary()
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._server: Optional[Server] = None
        self._client: Optional[Client] = None
        self._starts = 0
        self._worker_name = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_lock=None, _server=None, _client=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def setup(self, worker) -> None:
        self._worker_name = worker.name
        _collect_dead_inputs()  # a worker this one replaces may have been killed
        with self._lock:
            self._start()

    def teardown(self, worker) -> None:
        with self._lock:
            self._stop()
        _collect_dead_inputs()

    def _pick_device(self) -> str:
        if self.device != "auto":
            return self.device
        if os.environ.get("CUDA_VISIBLE_DEVICES", "").strip():
            return "auto"  # the worker's own GPU is the first one it sees
        try:
            out = subprocess.run([self.binary, "devices", "--json"], capture_output=True, text=True, timeout=60)
            gpus = len(json.loads(out.stdout)["devices"]) if out.returncode == 0 else 0
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
            gpus = 0
        if gpus <= 1:
            return "auto"
        name = self._worker_name
        k = name if isinstance(name, int) else zlib.crc32(str(name).encode())
        return f"cuda:{k % gpus}"

    def _start(self) -> None:
        self._stop()
        self._starts += 1
        # The same stream on every start: a producer started again after one was
        # killed takes over the socket and segment that the dead one left.
        stream = f"dask{os.getpid()}-{self.name[-6:]}"
        self._server = serve(stream, model=self.model, device=self._pick_device(), args=self.args,
                             binary=self.binary, timeout=self.start_timeout)
        self._client = Client(socket=self._server.socket)
        log.info("cpipc producer %s started for worker %s: %s", stream, self._worker_name, self._server.banner)

    def _stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _producer_died(self) -> bool:
        server = self._server
        if server is None:
            return True
        try:
            server.process.wait(2.0)  # a producer that is going away says so within this
        except subprocess.TimeoutExpired:
            return False
        return True

    def segment(self, image, **options) -> Result:
        """Segments one block with this worker's producer; starts it again
        and retries once if it died (not if it refused the block)."""
        for attempt in (1, 2):
            with self._lock:
                if self._server is None or not self._server.alive():
                    if self._server is not None:
                        log.warning("cpipc producer for worker %s exited with status %s; starting another",
                                    self._worker_name, self._server.process.returncode)
                    self._start()
                client = self._client
            try:
                return client.segment(image, **options)
            except (ProducerGone, Error, OSError):
                if attempt == 2 or not self._producer_died():
                    raise
        raise AssertionError("unreachable")


def _collect_dead_inputs() -> None:
    """Unlinks the input segments of Python clients on this node whose process
    is gone: a worker killed with SIGKILL cannot unlink its own. ``cpipc gc``'s
    rule (the C++ side checks each producer's liveness again), limited to the
    Python clients' input segments (named ``py<pid>-...``)."""
    try:
        dead = [s["name"] for s in list_segments()
                if s["name"].startswith("py") and s.get("producer_alive") is False]
        if dead:
            gc(dead, min_age=0.0)
    except Error as e:  # housekeeping: never a reason to fail a worker
        log.warning("could not collect dead input segments: %s", e)


def producers_on_this_worker(name: str) -> Producers:
    """The plugin of that name on the worker running the calling task."""
    plugins = get_worker().plugins
    if name not in plugins:
        raise Error(f"no cpipc producer plugin {name!r} on this worker: segment_zarr registers it")
    return plugins[name]
