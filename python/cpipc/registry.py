"""This user's segments on this machine: list, remove, collect garbage."""

from typing import Any, Dict, List, Sequence

from . import _cpipc
from .segment import _frame_info


def list_segments() -> List[Dict[str, Any]]:
    """Every cpipc segment of this user, as ``cpipc ls --json``: name, total_bytes,
    state (live, closed, replaced, stuck, untrusted, corrupt), dtype, shape,
    producer_pid, frames_published, latest, ..."""
    out = _cpipc.list_segments()
    for d in out:
        if d.get("latest") is not None:
            d["latest"] = _frame_info(d["latest"])
    return out


def remove(name: str) -> None:
    """Unlinks segment ``name``; processes that have it mapped keep it. Raises NotFound."""
    _cpipc.remove(name)


def gc(names: Sequence[str] = (), min_age: float = 10.0) -> List[str]:
    """Removes the segments whose producer is gone (only ``names`` if given) and
    returns their names. Objects that are not ours are left alone."""
    return _cpipc.gc(min_age, list(names))
