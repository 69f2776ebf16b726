"""The block grid: the region of the image each task segments, and the part of it that it keeps."""

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import BadInput


@dataclass(frozen=True)
class Block:
    """One task's share of the image, in spatial coordinates (no channel axis)."""

    index: Tuple[int, ...]
    """Position in the block grid."""
    core: Tuple[slice, ...]
    """The region whose labels this block writes: blocks' cores tile the image without overlapping."""
    crop: Tuple[slice, ...]
    """The core and up to ``overlap`` px of context on every side, clipped to the image: what the network sees."""

    @property
    def inner(self) -> Tuple[slice, ...]:
        """The core, in the crop's coordinates."""
        return tuple(slice(c.start - k.start, c.stop - k.start) for c, k in zip(self.core, self.crop))


def per_axis(value: Any, ndim: int, what: str) -> Tuple[int, ...]:
    """One int for every spatial axis, from an int or a sequence of them."""
    values = [value] * ndim if np.isscalar(value) else list(value)
    if len(values) != ndim:
        raise BadInput(f"{what} needs {ndim} values (one per spatial axis), not {value!r}")
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise BadInput(f"{what} must be whole numbers, not {value!r}") from None
    if any(o != v for o, v in zip(out, values)):
        raise BadInput(f"{what} must be whole numbers, not {value!r}")
    return out


def grid_shape(shape: Sequence[int], blocksize: Sequence[int]) -> Tuple[int, ...]:
    return tuple(math.ceil(s / b) for s, b in zip(shape, blocksize))


def make_blocks(shape: Sequence[int], blocksize: Sequence[int], overlap: Sequence[int],
                foreground: Optional[Any] = None) -> List[Block]:
    """Every block of the grid, in C order; with ``foreground`` (a boolean
    array over the same field of view, at any resolution) only the blocks
    whose core holds some foreground."""
    blocks = []
    for index in np.ndindex(*grid_shape(shape, blocksize)):
        core = tuple(slice(i * b, min((i + 1) * b, s)) for i, b, s in zip(index, blocksize, shape))
        crop = tuple(slice(max(0, c.start - o), min(s, c.stop + o)) for c, o, s in zip(core, overlap, shape))
        if foreground is not None and not has_foreground(foreground, shape, core):
            continue
        blocks.append(Block(tuple(int(i) for i in index), core, crop))
    return blocks


def has_foreground(foreground: Any, shape: Sequence[int], core: Tuple[slice, ...]) -> bool:
    """Whether the mask region that covers ``core`` holds any foreground
    (scaled to the mask's grid, rounding outwards so nothing is missed)."""
    region = []
    for c, s, m in zip(core, shape, foreground.shape):
        start = int(math.floor(c.start * m / s))
        stop = max(start + 1, int(math.ceil(c.stop * m / s)))
        region.append(slice(start, min(stop, m)))
    return bool(np.any(np.asarray(foreground[tuple(region)])))
