"""wait_next blocks without the GIL and reports a producer that died."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import cpipc


def test_wait_next_in_a_thread_lets_the_main_thread_run(name):
    with cpipc.Publisher(name, shape=(32, 32), dtype="uint8") as pub, cpipc.attach(name) as seg:
        got = []
        waiter = threading.Thread(target=lambda: got.append(seg.wait_next(timeout=10)))
        waiter.start()
        spins, end = 0, time.monotonic() + 0.3
        while time.monotonic() < end:  # this needs the GIL all along
            spins += 1
        assert waiter.is_alive() and spins > 1000
        pub.publish(np.full((32, 32), 7, np.uint8))
        waiter.join(10)
        assert not waiter.is_alive() and (got[0] == 7).all()


def test_wait_next_returns_none_after_its_timeout(name):
    with cpipc.Publisher(name, shape=(1,), dtype="uint8") as pub:
        pub.publish(np.zeros(1, np.uint8))  # published before the attach: not "next"
        seg = cpipc.attach(name)
        start = time.monotonic()
        assert seg.wait_next(timeout=0.2) is None
        assert 0.15 < time.monotonic() - start < 2
        seg.close()


def test_wait_next_returns_each_new_frame_once(name):
    with cpipc.Publisher(name, shape=(1,), dtype="uint32") as pub, cpipc.attach(name) as seg:
        pub.publish(np.array([1], np.uint32))
        assert seg.wait_next(timeout=1)[0] == 1
        assert seg.wait_next(timeout=0.05) is None
        pub.publish(np.array([2], np.uint32))
        assert seg.wait_next(timeout=1)[0] == 2


def test_a_producer_killed_with_sigkill_gives_producer_gone(name):
    code = textwrap.dedent(f"""
        import time, numpy as np, cpipc
        pub = cpipc.Publisher({name!r}, shape=(4,), dtype="uint8")
        pub.publish(np.zeros(4, np.uint8))
        print("ready", flush=True)
        time.sleep(60)
    """)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout.readline().strip() == "ready"
        with cpipc.attach(name) as seg:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            with pytest.raises(cpipc.ProducerGone):
                seg.wait_next(timeout=5)
    # The dead producer could not unlink its segment: gc does.
    assert cpipc.gc([name], min_age=0) == [name]


def test_closing_the_publisher_ends_waits_with_producer_gone(name):
    pub = cpipc.Publisher(name, shape=(1,), dtype="uint8")
    with cpipc.attach(name) as seg:
        threading.Timer(0.1, pub.close).start()
        with pytest.raises(cpipc.ProducerGone):
            seg.wait_next(timeout=5)


def test_wait_gives_the_next_frames_info_without_copying_and_a_lease_reads_it(name):
    with cpipc.Publisher(name, shape=(64, 64), dtype="uint16", slots=4) as pub, cpipc.attach(name) as seg:
        assert seg.wait(timeout=0.05) is None
        pub.publish(np.full((64, 64), 5, np.uint16), meta={"n": 1})
        info = seg.wait(timeout=5)
        assert info["meta"] == {"n": 1} and seg.last_info is info
        with seg.lease() as view:
            assert seg.last_info["frame_id"] == info["frame_id"] and (view == 5).all()
        assert seg.wait(timeout=0.05) is None  # that frame was seen: no next one yet
        pub.publish(np.full((64, 64), 6, np.uint16))
        assert (seg.wait_next(timeout=5) == 6).all() and seg.last_info["frame_id"] == info["frame_id"] + 1
