"""Producers: create a segment and publish numpy arrays into it."""

import json
from typing import Any, Dict, Optional, Sequence

import numpy as np

from . import _cpipc
from ._dtypes import to_cpipc, to_numpy
from .errors import BadInput


class Publisher:
    """A segment this process produces: frames of one shape and dtype in a ring of
    ``slots`` slots (1-8). Closing it (or leaving its ``with`` block) marks the
    segment closed, wakes its readers and unlinks the name.

    Raises Error if the name is taken, BadInput for a bad name, shape or dtype.
    """

    def __init__(self, name: str, shape: Sequence[int], dtype: Any, slots: int = 4):
        self._dtype = to_numpy(to_cpipc(dtype))
        self._shape = tuple(int(n) for n in shape)
        self._writer = _cpipc.Writer(name, to_cpipc(dtype), list(self._shape), slots)

    @property
    def name(self) -> str:
        """The segment's name."""
        return self._writer.name

    @property
    def shape(self):
        """The frames' shape."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """The frames' numpy dtype."""
        return self._dtype

    def publish(self, array: np.ndarray, meta: Optional[Dict[str, Any]] = None, *,
                object_count: int = 0, diameter: float = 0.0) -> Dict[str, Any]:
        """Copies ``array`` into the next free slot (GIL released) and publishes it.

        ``array`` must be a C-contiguous numpy array of exactly this segment's
        shape and dtype (BadInput otherwise: nothing is converted behind your
        back). ``meta`` is stored as JSON with the frame (at most 240 bytes).
        Returns the frame's frame_id, slot, seq and publish times.
        """
        if not isinstance(array, np.ndarray):
            raise BadInput(f"publish takes a numpy array, not {type(array).__name__}")
        if array.dtype != self._dtype or array.shape != self._shape:
            raise BadInput(f"segment '{self.name}' holds {self._dtype}{list(self._shape)}, "
                           f"not {array.dtype}{list(array.shape)}")
        if not array.flags.c_contiguous:
            raise BadInput("publish takes a C-contiguous array: use np.ascontiguousarray(array)")
        text = "" if meta is None else json.dumps(meta, separators=(",", ":"))
        info = self._writer.publish(array.reshape(-1).view(np.uint8), text.encode(), object_count, diameter)
        info["meta"] = meta or {}
        return info

    def close(self) -> None:
        """Ends the segment: state closed, readers woken, name unlinked. Idempotent."""
        self._writer.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"cpipc.Publisher({self.name!r}, shape={self._shape}, dtype={self._dtype})"
