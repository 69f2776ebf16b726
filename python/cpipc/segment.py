"""Consumers: attach to a segment, copy frames out, lease them in place."""

import json
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _cpipc
from ._dtypes import to_numpy


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

    def lease(self, duration: float = 2.0) -> Optional[Lease]:
        """A Lease on the latest frame for ``duration`` seconds, or None if nothing
        was published yet. Raises Error when every lease entry is taken.
        """
        lease = self._reader.lease_latest(duration)
        return None if lease is None else Lease(lease, self._dtype, self._shape)

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
