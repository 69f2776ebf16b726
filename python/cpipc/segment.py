"""Consumers: attach to a segment, copy frames out, lease them in place."""

import json
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _cpipc
from ._dtypes import to_numpy
from .errors import BadInput


def _frame_info(d: Dict[str, Any]) -> Dict[str, Any]:
    # The producer's metadata is untrusted bytes: a JSON object when it is
    # one, else the text with undecodable bytes escaped (as `cpipc info`).
    raw = d["meta"]
    text = raw.decode("utf-8", errors="backslashreplace")
    try:
        d["meta"] = json.loads(text) if text else {}
    except ValueError:
        d["meta"] = text
    return d


class Lease:
    """A zero-copy, read-only view of one frame, in place in the segment.

    Use it as a context manager: ``with seg.lease() as view: ...``. While it
    is held the producer writes other slots when it has any; it never waits
    for a reader, so after a long hold (or with one slot) it may take the
    slot back: check ``valid()`` after reading, like a seqlock. Leaving the
    block gives the slot back; the view stays mapped (reading it never
    crashes) but its bytes may then change.
    """

    def __init__(self, lease: "_cpipc.Lease", dtype: np.dtype, shape: Tuple[int, ...]):
        self._lease = lease
        self._view = lease.view().view(dtype).reshape(shape)
        self.info: Dict[str, Any] = _frame_info(lease.info())
        """The leased frame's frame_id, slot, publish times, object_count, diameter, meta."""

    @property
    def view(self) -> np.ndarray:
        """The frame as a read-only numpy array over the shared memory (no copy)."""
        return self._view

    def valid(self) -> bool:
        """True while the frame has not been overwritten (nor the lease released)."""
        return self._lease.valid()

    def renew(self, duration: float) -> None:
        """Extends the lease to ``duration`` seconds from now."""
        self._lease.renew(duration)

    def release(self) -> None:
        """Gives the slot back to the producer (idempotent)."""
        self._lease.release()

    def __enter__(self) -> np.ndarray:
        return self._view

    def __exit__(self, *exc) -> None:
        self.release()


def _stream_handle(stream: Any) -> int:
    # A cudaStream_t as an integer: None is the legacy default stream (0),
    # as are 0 and DLPack's 1 (cudaStreamLegacy); 2 is cudaStreamPerThread.
    if stream is None:
        return 0
    for attr in ("cuda_stream", "ptr"):  # torch.cuda.Stream, cupy.cuda.Stream
        if not isinstance(stream, int) and hasattr(stream, attr):
            stream = getattr(stream, attr)
    if not isinstance(stream, int) or isinstance(stream, bool) or stream < 0:
        raise BadInput(f"stream must be None, a cudaStream_t as an int, or a torch/cupy stream, not {stream!r}")
    return 0 if stream == 1 else stream


class DeviceView:
    """The latest frame's device buffer on the producer's GPU, leased in place:
    pass it to ``torch.from_dlpack`` or ``cupy.from_dlpack`` (no copy).

    Read-only by contract: the memory is the producer's (CUDA IPC), and a
    write would corrupt the frame for every reader. Like a Lease, it holds
    the frame's slot until ``release()`` (or the end of a ``with`` block);
    the producer never waits for it, so check ``valid()`` after reading. A
    tensor made from it keeps the mapping alive, not the lease: after
    ``release()`` its bytes may change.

    Streams: the view is ordered after the producer's write on the stream
    given to ``Segment.device_view`` (cudaStreamWaitEvent). ``__dlpack__``
    orders the consumer's stream too when it is another one (DLPack's
    ``stream``: None or 1 the legacy default stream, 2 the per-thread one,
    an int a cudaStream_t, -1 no ordering), so ``torch.from_dlpack(view)``
    on torch's current stream reads the finished frame.
    """

    def __init__(self, lease: "_cpipc.DeviceLease", dtype: np.dtype, shape: Tuple[int, ...], stream: int):
        self._lease = lease
        self._array = lease.array()
        self._device = lease.device
        self._stream = stream
        self._released = False
        self._dtype = dtype
        self._shape = shape
        self.info: Dict[str, Any] = _frame_info(lease.info())
        """The leased frame's frame_id, slot, publish times, object_count, diameter, meta."""

    @property
    def shape(self) -> Tuple[int, ...]:
        """The frame's shape."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """The frame's dtype, as numpy names it."""
        return self._dtype

    @property
    def device(self) -> int:
        """The CUDA device index (this process's numbering) the frame lives on."""
        return self._device

    def valid(self) -> bool:
        """True while the frame has not been overwritten (nor the lease released)."""
        return self._lease.valid()

    def release(self) -> None:
        """Gives the slot back to the producer (idempotent)."""
        self._released = True
        self._lease.release()

    def __dlpack__(self, *, stream: Any = None, max_version: Optional[Tuple[int, int]] = None,
                   dl_device: Optional[Tuple[int, int]] = None, copy: Optional[bool] = None) -> Any:
        """A DLPack capsule of the frame (kDLCUDA, no copy), ordered on ``stream``."""
        if self._released:
            raise BadInput("the device view was released")
        if copy:
            raise BufferError("a cpipc device view is zero-copy: copy=True is not supported")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"the frame is on {self.__dlpack_device__()}, not {tuple(dl_device)}")
        if stream != -1:
            handle = _stream_handle(stream)
            if handle != self._stream:
                self._lease.order_on(handle)
        # nanobind's ndarray makes the capsule (versioned when max_version
        # allows); a consumer retries without max_version on TypeError.
        return self._array.__dlpack__() if max_version is None else self._array.__dlpack__(max_version=max_version)

    def __dlpack_device__(self) -> Tuple[int, int]:
        """(2, device): kDLCUDA and the device index."""
        return (2, self._device)

    def __enter__(self) -> "DeviceView":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return (f"cpipc.DeviceView(frame_id={self.info['frame_id']}, shape={self._shape}, dtype={self._dtype}, "
                f"device=cuda:{self._device})")


class Segment:
    """A segment attached by name (``cpipc.attach``); detaches on close, never unlinks."""

    def __init__(self, name: str):
        self._reader = _cpipc.Reader(name)
        self._dtype = to_numpy(self._reader.dtype)
        self._shape = tuple(self._reader.shape)
        latest = self._reader.status()["latest"]
        # wait_next() returns frames newer than the last one this object saw.
        self._seen = latest["frame_id"] if latest else 0
        self.last_info: Optional[Dict[str, Any]] = None
        """The frame latest() or wait_next() returned last: frame_id, slot, publish times,
        object_count, diameter, meta (for `cpipc serve`: {"id", "source"})."""
        self._device: Optional["_cpipc.DeviceReader"] = None  # opened on the first device_view

    @property
    def name(self) -> str:
        """The segment's name."""
        return self._reader.name

    @property
    def shape(self) -> Tuple[int, ...]:
        """The frames' shape."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """The frames' numpy dtype."""
        return self._dtype

    def _array(self, got) -> Optional[np.ndarray]:
        if got is None:
            return None
        data, info = got
        self._seen = max(self._seen, info["frame_id"])
        self.last_info = _frame_info(info)
        return data.view(self._dtype).reshape(self._shape)

    def latest(self) -> Optional[np.ndarray]:
        """A copy of the latest frame (never torn), or None if nothing was published yet.

        Raises TimedOut if the producer stays stopped mid-write, BadInput if
        the segment was truncated under us.
        """
        return self._array(self._reader.copy_latest())

    def wait_next(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        """A copy of the next frame: the first one newer than any this object returned
        (or the latest at attach). Blocks without the GIL; None after ``timeout``
        seconds (None: no limit). Raises ProducerGone when the producer ends or dies.
        """
        return self._array(self._reader.wait_next(self._seen, timeout))

    def wait(self, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """Waits as ``wait_next`` does, without copying: the next frame's info (frame_id,
        slot, publish times, object_count, diameter, meta), or None after ``timeout``.
        Read it in place with ``lease()`` (the latest frame: a newer one if the producer
        published again meanwhile; compare ``lease.info["frame_id"]``).
        """
        info = self._reader.wait_next(self._seen, timeout, False)
        if info is None:
            return None
        self._seen = max(self._seen, info["frame_id"])
        self.last_info = _frame_info(info)
        return self.last_info

    def lease(self, duration: float = 2.0) -> Optional[Lease]:
        """A Lease on the latest frame for ``duration`` seconds, or None if nothing
        was published yet. Raises Error when every lease entry is taken.
        """
        lease = self._reader.lease_latest(duration)
        return None if lease is None else Lease(lease, self._dtype, self._shape)

    def device_view(self, stream: Any = None, duration: float = 2.0) -> Optional[DeviceView]:
        """A DeviceView of the latest frame's device buffer, leased for ``duration``
        seconds, or None if nothing with a device copy was published yet.

        The lease is ordered after the producer's write on ``stream`` (None:
        the legacy default stream; an int cudaStream_t, or a torch/cupy
        stream); ``__dlpack__`` orders the consumer's stream when it differs.
        The first call opens the segment's CUDA IPC handles (once per slot).
        Raises BadInput for a host-only segment (its producer exported no
        device buffers), NotFound when its GPU is not visible to this process
        or this module was built without CUDA.
        """
        handle = _stream_handle(stream)
        if self._device is None:
            self._device = _cpipc.DeviceReader.open(self._reader)
        lease = self._device.lease_latest(handle, duration)
        return None if lease is None else DeviceView(lease, self._dtype, self._shape, handle)

    def info(self) -> Dict[str, Any]:
        """The fields of ``cpipc info --json``: name, dtype, shape, slots, state,
        producer_pid, producer_alive, frames_published, latest (a dict or None), ...
        """
        d = self._reader.status()
        if d["latest"] is not None:
            d["latest"] = _frame_info(d["latest"])
        return d

    def close(self) -> None:
        """Detaches (the mapping goes once no lease view uses it). Idempotent."""
        self._device = None  # its handles close once no DeviceView uses them
        self._reader.close()

    def __enter__(self) -> "Segment":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"cpipc.Segment({self.name!r}, shape={self._shape}, dtype={self._dtype})"


def attach(name: str) -> Segment:
    """Attaches to segment ``name``. Raises NotFound, or BadInput for a bad name or
    an object that is not a segment of ours."""
    return Segment(name)
