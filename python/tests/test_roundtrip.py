"""Frames cross processes byte for byte, in every dtype a segment holds."""

import multiprocessing
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cpipc
from conftest import DTYPES, frame

PRODUCER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import cpipc
    from conftest import frame
    with cpipc.Publisher({name!r}, shape=(3, 17, 5), dtype={dtype!r}) as pub:
        pub.publish(frame({dtype!r}), meta={{"dtype": {dtype!r}}})
        print("ready", flush=True)
        sys.stdin.readline()  # stay until the test has read the frame
""")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_subprocess_publishes_and_this_process_reads_the_same_bytes(name, dtype):
    import os
    code = PRODUCER.format(tests=os.path.dirname(__file__), name=name, dtype=dtype)
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as child:
        assert child.stdout.readline().strip() == "ready"
        with cpipc.attach(name) as seg:
            got = seg.latest()
            assert seg.info()["latest"]["meta"] == {"dtype": dtype}
        child.stdin.write("done\n")
        child.stdin.close()
        assert child.wait(10) == 0
    want = frame(dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def _read_in_child(name, queue):
    with cpipc.attach(name) as seg:
        queue.put((str(seg.dtype), seg.latest().tobytes()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_this_process_publishes_and_a_multiprocessing_child_reads_the_same_bytes(name, dtype):
    want = frame(dtype, seed=1)
    ctx = multiprocessing.get_context("spawn")
    with cpipc.Publisher(name, shape=want.shape, dtype=want.dtype) as pub:
        pub.publish(want)
        queue = ctx.Queue()
        child = ctx.Process(target=_read_in_child, args=(name, queue))
        child.start()
        got_dtype, got = queue.get(timeout=30)
        child.join(10)
        assert child.exitcode == 0
        assert got_dtype == str(want.dtype) and got == want.tobytes()
        # The child's exit unlinked nothing (no SharedMemory resource tracker).
        with cpipc.attach(name) as seg:
            assert seg.latest().tobytes() == want.tobytes()


def test_a_copy_stays_when_the_producer_moves_on(name):
    with cpipc.Publisher(name, shape=(8,), dtype="uint32", slots=1) as pub, cpipc.attach(name) as seg:
        pub.publish(np.full(8, 1, np.uint32))
        first = seg.latest()
        pub.publish(np.full(8, 2, np.uint32))
        assert first.tolist() == [1] * 8 and first.flags.writeable
        assert seg.latest().tolist() == [2] * 8


def test_nothing_published_yet_reads_as_none(name):
    with cpipc.Publisher(name, shape=(2, 2), dtype="float32") as pub, cpipc.attach(name) as seg:
        assert seg.latest() is None and seg.lease() is None
        assert seg.shape == (2, 2) and seg.dtype == np.float32 and seg.name == pub.name
