"""Fixtures: unique segment names, and a check that the tests leave none behind."""

import itertools
import os

import numpy as np
import pytest

_names = itertools.count()
PREFIX = f"pytest-{os.getpid()}-"
DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "bool", "bfloat16"]


def _ours():
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith(f"cpipc.{os.geteuid()}.{PREFIX}"))


@pytest.fixture
def name():
    """A segment name no other test (or test run) uses."""
    return f"{PREFIX}{next(_names)}"


@pytest.fixture(autouse=True, scope="session")
def no_segment_left():
    yield
    left = _ours()
    assert not left, f"segments left in /dev/shm: {left}"


def frame(dtype: str, shape=(3, 17, 5), seed=0) -> np.ndarray:
    """Deterministic test data of every bit pattern a dtype allows (bool: 0/1)."""
    import cpipc._dtypes as d
    dt = d.to_numpy(dtype)
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return np.frombuffer(rng.bytes(int(np.prod(shape)) * dt.itemsize), dtype=dt).reshape(shape).copy()
