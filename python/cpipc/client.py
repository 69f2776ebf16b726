"""The service: send images (numpy arrays or paths) to ``cpipc serve`` and get masks back.

A numpy image travels through an input segment this client publishes (the
producer copies it out; no file, no pickle); the masks come back through
the producer's result segment, copied out and released for you. Several
requests may be open at once (``submit``); whichever thread waits on a
future reads the connection for all of them.
"""

import itertools
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _cpipc
from ._dtypes import to_cpipc, to_numpy
from .errors import BadInput, Cancelled, Error, OutOfMemory, Overloaded, ProducerGone, TimedOut
from .publisher import Publisher

__all__ = ["Client", "Future", "Result", "default_socket_path"]

# The protocol's error codes (docs/PROTOCOL.md) -> the classes of the CLI's exit statuses.
_ERRORS = {
    "bad_request": BadInput, "bad_image": BadInput, "bad_params": BadInput, "forbidden": BadInput,
    "cancelled": Cancelled, "timed_out": TimedOut, "out_of_memory": OutOfMemory,
    "overloaded": Overloaded, "shutting_down": ProducerGone,
}
# How long past a request's own timeout the client waits for the producer to say so.
_GRACE_S = 10.0
# Input segments kept for reuse per (shape, dtype); more are unlinked when free.
_SPARE_INPUTS = 2
_client_ids = itertools.count()


def _percentiles(value: Sequence[float]) -> List[float]:
    """norm_percentile as the protocol takes it: two finite numbers (the producer checks their range)."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise BadInput(f"norm_percentile must be two numbers (low, high), not {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise BadInput(f"norm_percentile must be finite, not {value!r}")
    return [low, high]


def default_socket_path(name: str = "cpipc") -> str:
    """Where ``cpipc serve --name NAME`` listens by default."""
    return _cpipc.default_socket_path(name)


@dataclass
class Result:
    """A finished request: the masks (a numpy array of its own) and what the producer said."""

    masks: np.ndarray
    """uint16 labels (uint32 from 65 536 objects), [H, W] or [Z, H, W] for a z-stack; 0 = background."""
    objects: int
    diameter: float
    """The diameter used, px."""
    diameter_estimated: bool
    """True when the producer estimated it (a request without a diameter, or 0)."""
    timings: Dict[str, float]
    """Seconds: preprocess, network, dynamics, total (the segmentation), request (in the producer:
    reading the image and publishing the masks included), client (in this client: publishing the
    array, sending, copying the masks out)."""
    axes: str
    id: str
    message: Dict[str, Any] = field(repr=False)
    """The producer's whole ``result`` message (docs/PROTOCOL.md)."""


class Future:
    """An open request. ``result(timeout)`` waits for it; ``cancel()`` asks the producer to drop it."""

    def __init__(self, client: "Client", request_id: str, progress: Optional[Callable[[Dict[str, Any]], None]]):
        self._client = client
        self.id = request_id
        self._progress = progress
        self._result: Optional[Result] = None
        self._error: Optional[BaseException] = None
        self._done = False
        self._client_s = 0.0  # time spent in this client: publishing, sending, reading the masks
        self.ahead: Optional[int] = None
        """Requests the producer serves before this one, as it said on accepting it."""

    def done(self) -> bool:
        """True once the result or an error has arrived."""
        return self._done

    def cancel(self) -> bool:
        """Asks the producer to cancel (a running request stops at its next tile batch).

        Returns False when the request had already finished. The future then
        ends with Cancelled, unless its result was on the way.
        """
        if self._done:
            return False
        self._client._cancel(self.id)
        return True

    def result(self, timeout: Optional[float] = None) -> Result:
        """The result, waiting at most ``timeout`` seconds (None: no limit).

        Raises TimedOut when the time passes (the request stays open), or the
        error the request ended with (BadInput, Cancelled, TimedOut,
        OutOfMemory, Overloaded, ProducerGone, Error).
        """
        self._client._wait(self, timeout)
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The error the request ended with, or None if it succeeded."""
        self._client._wait(self, timeout)
        return self._error

    def _finish(self, result: Optional[Result] = None, error: Optional[BaseException] = None) -> None:
        self._result, self._error, self._done = result, error, True

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<cpipc.Future {self.id!r} {state}>"


class Client:
    """A connection to ``cpipc serve``, by stream ``name`` or ``socket`` path.

    Raises NotFound when no producer listens there, BadInput when the socket
    or the process answering it belongs to another user.
    """

    def __init__(self, name: str = "cpipc", *, socket: Optional[str] = None, timeout: float = 10.0):
        self.socket = socket or default_socket_path(name)
        self._conn = _cpipc.Connection(self.socket, timeout)
        self.hello: Dict[str, Any] = json.loads(self._conn.hello())
        """The producer's hello: stream, model, architecture, device, device_views, pid."""
        self._prefix = f"py{os.getpid()}-{next(_client_ids)}-"
        self._ids = itertools.count()
        self._open: Dict[str, Future] = {}
        self._lock = threading.Condition()
        self._pumping = False
        self._gone: Optional[BaseException] = None
        self._inputs: Dict[Tuple, List[Publisher]] = {}  # free input segments by (shape, dtype)
        self._busy: Dict[str, Publisher] = {}  # request id -> its input segment

    # --- requests ------------------------------------------------------------

    def segment(self, image: Union[np.ndarray, str, os.PathLike], *, timeout: Optional[float] = None,
                progress: Optional[Callable[[Dict[str, Any]], None]] = None, **options) -> Result:
        """Segments one image and returns its Result (see ``submit`` for the arguments).

        ``timeout`` (seconds) bounds the request in the producer (its
        ``timeout_s``): past it the request ends with TimedOut.
        """
        future = self.submit(image, timeout=timeout, progress=progress, **options)
        return future.result(None if timeout is None else timeout + _GRACE_S)

    def submit(self, image: Union[np.ndarray, str, os.PathLike], *, diameter: Optional[float] = None,
               channels: Optional[Sequence[int]] = None, channel_axis: Optional[int] = None,
               z_axis: Optional[int] = None, flow_threshold: Optional[float] = None,
               cellprob_threshold: Optional[float] = None, min_size: Optional[int] = None,
               max_size_fraction: Optional[float] = None, niter: Optional[int] = None,
               normalize: Optional[bool] = None, norm_percentile: Optional[Sequence[float]] = None,
               invert: Optional[bool] = None, exclude_on_edges: Optional[bool] = None,
               resample: Optional[bool] = None, augment: Optional[bool] = None,
               do_3d: Optional[bool] = None, stitch_threshold: Optional[float] = None,
               anisotropy: Optional[float] = None,
               flow3d_smooth: Optional[Union[float, Sequence[float]]] = None,
               timeout: Optional[float] = None,
               progress: Optional[Callable[[Dict[str, Any]], None]] = None) -> Future:
        """Sends one image and returns its Future at once.

        ``image``: a numpy array ([Z,] H, W [, C]; integers up to 32 bits or
        floats), published into an input segment of this client, or the path
        of a file the producer can read (TIFF, PNG, JPEG, .npy). Options left
        None take the producer's defaults (``cpipc serve --diameter``,
        ``--channels``), then Cellpose's; no diameter (or 0) is estimated
        per image by the model's size model (``Result.diameter_estimated``). ``channels`` is Cellpose 3's
        (seg, nuc), 1-based, (0, 0) grayscale; ``channel_axis``/``z_axis``
        name the array's axes as Cellpose's do. ``normalize=False``,
        ``norm_percentile=(low, high)``, ``invert``, ``exclude_on_edges``,
        ``resample=False`` and ``augment`` are Cellpose's eval options of the
        same names (docs/PROTOCOL.md). A z-stack ([Z, H, W] or
        [Z, H, W, C], or a file with Z) is segmented in 3-D with ``do_3d=True``
        (``anisotropy``: Z spacing over XY spacing; ``flow3d_smooth``: one
        Gaussian sigma or (z, y, x)), or plane by plane and stitched with
        ``stitch_threshold`` (an IoU); without either, each plane in 2-D.
        ``progress`` is called with each
        progress message (stage, tiles_done, tiles_total) from the thread
        that waits.
        """
        start = time.perf_counter()
        request: Dict[str, Any] = {"type": "submit", "id": self._prefix + str(next(self._ids))}
        for key, value in (("diameter", diameter), ("flow_threshold", flow_threshold),
                           ("cellprob_threshold", cellprob_threshold), ("max_size_fraction", max_size_fraction),
                           ("stitch_threshold", stitch_threshold), ("anisotropy", anisotropy),
                           ("timeout_s", timeout)):
            if value is not None:
                request[key] = float(value)
                if not math.isfinite(request[key]):
                    raise BadInput(f"{'timeout' if key == 'timeout_s' else key} must be a finite number, not {value}")
        for key, value in (("channel_axis", channel_axis), ("z_axis", z_axis), ("min_size", min_size),
                           ("niter", niter)):
            if value is not None:
                request[key] = int(value)
        if channels is not None:
            request["channels"] = [int(c) for c in channels]
        for key, value in (("normalize", normalize), ("invert", invert), ("exclude_on_edges", exclude_on_edges),
                           ("resample", resample), ("augment", augment), ("do_3d", do_3d)):
            if value is not None:
                request[key] = bool(value)
        if flow3d_smooth is not None:
            sigmas = [float(flow3d_smooth)] * 3 if np.isscalar(flow3d_smooth) else [float(v) for v in flow3d_smooth]
            if len(sigmas) != 3 or not all(math.isfinite(v) and v >= 0 for v in sigmas):
                raise BadInput(f"flow3d_smooth must be a sigma >= 0 or three (z, y, x), not {flow3d_smooth!r}")
            request["flow3d_smooth"] = sigmas
        if norm_percentile is not None:
            request["norm_percentile"] = _percentiles(norm_percentile)
        if self._gone is not None:
            raise self._gone
        future = Future(self, request["id"], progress)
        if isinstance(image, np.ndarray):
            request["input"] = self._publish_input(request["id"], image)
        elif isinstance(image, (str, os.PathLike)):
            request["image"] = os.path.abspath(os.fspath(image))  # the producer's working directory is not ours
        else:
            raise BadInput(f"submit takes a numpy array or a path, not {type(image).__name__}")
        with self._lock:
            self._open[future.id] = future
        try:
            self._conn.submit(json.dumps(request))
        except BaseException:
            with self._lock:
                self._open.pop(future.id, None)
            self._free_input(future.id)
            raise
        future._client_s = time.perf_counter() - start
        return future

    # --- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Closes the connection (the producer drops open requests) and unlinks the input segments."""
        with self._lock:
            while self._pumping:  # let the reading thread finish its slice (at most 0.1 s)
                self._lock.wait(0.2)
            self._conn.close()
            pending = list(self._open.values())
            self._open.clear()
            for f in pending:
                f._finish(error=Cancelled("the client was closed"))
            self._lock.notify_all()
        for pubs in self._inputs.values():
            for p in pubs:
                p.close()
        self._inputs.clear()
        for p in self._busy.values():
            p.close()
        self._busy.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"cpipc.Client({self.socket!r}, model={self.hello.get('model')!r}, device={self.hello.get('device')!r})"

    # --- inputs ----------------------------------------------------------------

    def _publish_input(self, request_id: str, image: np.ndarray) -> str:
        # One input segment per open request: the producer reads the latest
        # frame of the segment a request names, when it gets to it.
        if image.dtype.byteorder == ">":
            image = image.astype(image.dtype.newbyteorder("<"))
        image = np.ascontiguousarray(image)
        key = (image.shape, to_cpipc(image.dtype))
        with self._lock:
            free = self._inputs.get(key)
            pub = free.pop() if free else None
        if pub is None:
            name = f"{self._prefix}in{next(self._ids)}"
            pub = Publisher(name, shape=image.shape, dtype=to_numpy(key[1]), slots=2)
        pub.publish(image)
        with self._lock:
            self._busy[request_id] = pub
        return pub.name

    def _free_input(self, request_id: str) -> None:
        with self._lock:
            pub = self._busy.pop(request_id, None)
            if pub is None:
                return
            free = self._inputs.setdefault((pub.shape, to_cpipc(pub.dtype)), [])
            keep = len(free) < _SPARE_INPUTS
            if keep:
                free.append(pub)
        if not keep:
            pub.close()

    # --- the connection, read by whichever thread waits ------------------------

    def _cancel(self, request_id: str) -> None:
        try:
            self._conn.cancel(request_id)
        except ProducerGone:
            pass  # its future ends with ProducerGone when read

    def _wait(self, future: Future, timeout: Optional[float]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not future._done:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimedOut(f"no result for request {future.id!r} within {timeout} s (it is still open)")
                if self._pumping:  # another thread reads the socket: it wakes us when it has read
                    self._lock.wait(left)
                    continue
                self._pumping = True
                self._lock.release()
                try:
                    self._pump_once(0.1 if left is None else min(left, 0.1))
                finally:
                    self._lock.acquire()
                    self._pumping = False
                    self._lock.notify_all()

    def _pump_once(self, timeout: float) -> None:
        try:
            text = self._conn.next(timeout)
        except ProducerGone as e:
            self._fail_all(e)
            return
        except Error as e:
            if self._conn.closed:
                return
            raise
        if text is None:
            return
        start = time.perf_counter()
        message = json.loads(text)
        kind = message.get("type")
        future = self._open.get(message.get("id", ""))
        if kind == "bye":
            self._fail_all(ProducerGone("the producer is stopping (it said bye)"))
        elif kind == "error" and future is None:
            # Not about one request (a refused connection: overloaded, forbidden).
            self._fail_all(_ERRORS.get(message.get("code"), Error)(f"{message.get('code')}: {message.get('message')}"))
        elif future is None:
            return  # pong, or a late message about a request that ended
        elif kind == "accepted":
            future.ahead = message.get("ahead")
        elif kind == "progress":
            if future._progress is not None:
                future._progress(message)
        elif kind == "error":
            code = message.get("code")
            self._end(future, error=_ERRORS.get(code, Error)(f"{code}: {message.get('message')}"))
        elif kind == "result":
            try:
                data, dtype, shape = self._conn.read_masks(text)
                masks = data.view(to_numpy(dtype)).reshape(shape)
            except Error as e:
                self._end(future, error=e)
                return
            finally:
                self._release(future.id)
            t = dict(message.get("timings_s", {}))
            t["client"] = future._client_s + time.perf_counter() - start
            self._end(future, result=Result(masks=masks, objects=int(message["objects"]),
                                            diameter=float(message["diameter"]),
                                            diameter_estimated=bool(message.get("diameter_estimated", False)),
                                            timings=t,
                                            axes=message.get("axes", "YX"), id=future.id, message=message))

    def _release(self, request_id: str) -> None:
        try:
            self._conn.release(request_id)
        except ProducerGone:
            pass

    def _end(self, future: Future, result: Optional[Result] = None, error: Optional[BaseException] = None) -> None:
        with self._lock:
            self._open.pop(future.id, None)
            future._finish(result, error)
        self._free_input(future.id)

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            self._gone = error
            pending = list(self._open.values())
        for f in pending:
            self._end(f, error=error)
