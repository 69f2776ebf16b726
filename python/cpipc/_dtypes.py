"""cpipc dtype names <-> numpy dtypes (little-endian, as the segment stores them)."""

import numpy as np

from .errors import BadInput

_NUMPY = {
    "int8": "i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float16": "<f2", "float32": "<f4", "float64": "<f8", "bool": "?",
}


def _bfloat16():
    # numpy has no bfloat16; ml_dtypes' is the one JAX and TensorFlow use.
    try:
        import ml_dtypes
    except ImportError:
        raise BadInput("bfloat16 frames need ml_dtypes: pip install ml_dtypes") from None
    return np.dtype(ml_dtypes.bfloat16)


def to_numpy(name: str) -> np.dtype:
    """The numpy dtype of a cpipc dtype name ("uint16", "bfloat16", ...)."""
    if name == "bfloat16":
        return _bfloat16()
    try:
        return np.dtype(_NUMPY[name])
    except KeyError:
        raise BadInput(f"dtype '{name}' has no numpy equivalent") from None


def to_cpipc(dtype) -> str:
    """The cpipc name of a numpy dtype (or anything np.dtype() takes)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        if str(dtype) == "bfloat16":
            return "bfloat16"
        raise BadInput(f"'{dtype}' is not a dtype") from None
    if dt.name == "bfloat16":
        return "bfloat16"
    if dt.byteorder == ">":
        raise BadInput(f"a segment holds little-endian data, not {dt}: use array.astype('{dt.newbyteorder('<')}')")
    for name, code in _NUMPY.items():
        if np.dtype(code) == dt:
            return name
    raise BadInput(f"a segment cannot hold dtype {dt} (cpipc: (u)int8-64, float16/32/64, bfloat16, bool)")
