"""cpipc.Client against a real `cpipc serve` (the embedded network, on the CPU)."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import cpipc

from producer import REPO, cpipc_binary, producer as start_producer

PIL = pytest.importorskip("PIL.Image", reason="Pillow reads cpipc segment's mask PNGs (scripts/setup.sh installs it)")
SAMPLE = REPO / "data" / "samples" / "cells_0.tif"


def sample() -> np.ndarray:
    return np.array(PIL.open(SAMPLE))


def crop() -> np.ndarray:
    """A quarter of the sample, for tests that need any image (4x faster to segment)."""
    return np.ascontiguousarray(sample()[:192, :192])


@pytest.fixture(scope="module")
def producer(tmp_path_factory):
    p = start_producer(f"pytest-{os.getpid()}-serve", tmp_path_factory.mktemp("serve"))
    yield p
    assert p.stop() == 0
    assert not os.path.exists(p.socket), "cpipc serve left its socket"


def cli_masks(image_path, out_dir, *args) -> np.ndarray:
    """`cpipc segment IMAGE` on the CPU: its _cp_masks.png as an array."""
    subprocess.run([cpipc_binary(), "segment", str(image_path), "--device", "cpu", "-o", str(out_dir), *args],
                   check=True, capture_output=True)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    return np.array(PIL.open(out_dir / f"{stem}_cp_masks.png"))


def test_an_array_segments_bit_for_bit_as_cpipc_segment_of_its_file(producer, tmp_path):
    image = sample()
    expected = cli_masks(SAMPLE, tmp_path, "--diameter", "0")  # a request without one estimates
    with cpipc.Client(socket=producer.socket) as c:
        r = c.segment(image)
        from_path = c.segment(SAMPLE)
    assert r.masks.dtype == np.uint16 and r.masks.shape == image.shape
    assert r.objects == expected.max() > 10
    np.testing.assert_array_equal(r.masks, expected)
    np.testing.assert_array_equal(from_path.masks, expected)
    assert r.diameter > 0 and r.axes == "YX"
    assert r.timings["total"] > 0 and r.timings["request"] >= r.timings["total"]


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_other_dtypes_and_options_match_the_cli(producer, tmp_path, dtype):
    image = crop().astype(np.float32)
    if dtype == "uint8":
        image = (image / image.max() * 255).astype(np.uint8)
    image = image.astype(dtype)
    np.save(tmp_path / "img.npy", image)
    expected = cli_masks(tmp_path / "img.npy", tmp_path, "--diameter", "24", "--flow-threshold", "0.6")
    with cpipc.Client(socket=producer.socket) as c:
        r = c.segment(image, diameter=24, flow_threshold=0.6)
    np.testing.assert_array_equal(r.masks, expected)
    assert r.diameter == 24


# Cellpose's eval options, each against the CLI flag of the same meaning.
IMAGE_OPTIONS = [
    ({"normalize": False}, ["--no-norm"]),
    ({"norm_percentile": (10, 90)}, ["--norm-percentile", "10", "90"]),
    ({"invert": True}, ["--invert"]),
    ({"exclude_on_edges": True}, ["--exclude-on-edges"]),
    ({"resample": False}, ["--no-resample"]),
    ({"augment": True}, ["--augment"]),
]


@pytest.mark.parametrize("options,flags", IMAGE_OPTIONS, ids=[next(iter(o)) for o, _ in IMAGE_OPTIONS])
def test_cellpose_eval_options_match_the_cli(producer, tmp_path, options, flags):
    image = crop()
    np.save(tmp_path / "img.npy", image)
    expected = cli_masks(tmp_path / "img.npy", tmp_path, "--diameter", "24", *flags)
    with cpipc.Client(socket=producer.socket) as c:
        r = c.segment(image, diameter=24, **options)
        plain = c.segment(image, diameter=24)
    np.testing.assert_array_equal(r.masks, expected)
    assert not np.array_equal(r.masks, plain.masks), f"{options} changed nothing: was it sent?"


def read_stack(path) -> np.ndarray:
    """A multi-page TIFF (cpipc's [Z, H, W] masks) as an array."""
    from PIL import ImageSequence
    with PIL.open(path) as im:
        return np.stack([np.array(page) for page in ImageSequence.Iterator(im)])


@pytest.mark.parametrize("options,flags", [({"do_3d": True}, ["--do-3d"]),
                                           ({"stitch_threshold": 0.5}, ["--stitch-threshold", "0.5"])],
                         ids=["do_3d", "stitch_threshold"])
def test_a_z_stack_in_3d_matches_the_cli(producer, tmp_path, options, flags):
    base = crop()[:96, :96]
    stack = np.stack([np.roll(base, 2 * z, axis=1) for z in range(5)])  # cells drift across planes
    np.save(tmp_path / "stack.npy", stack)
    subprocess.run([cpipc_binary(), "segment", str(tmp_path / "stack.npy"), "--device", "cpu", "-o", str(tmp_path),
                    "--z-axis", "0", "--diameter", "24", *flags], check=True, capture_output=True)
    expected = read_stack(tmp_path / "stack_cp_masks.tif")
    with cpipc.Client(socket=producer.socket) as c:
        r = c.segment(stack, z_axis=0, diameter=24, **options)
        with pytest.raises(cpipc.BadInput, match="z-stack"):
            c.segment(base, diameter=24, **options)
    assert r.axes == "ZYX" and r.masks.shape == stack.shape
    assert r.objects == expected.max() > 3
    np.testing.assert_array_equal(r.masks, expected)


def test_a_bad_norm_percentile_is_bad_input(producer):
    with cpipc.Client(socket=producer.socket) as c:
        for bad in [(1,), "ab", (float("nan"), 99)]:
            with pytest.raises(cpipc.BadInput, match="norm_percentile"):
                c.submit(crop(), norm_percentile=bad)
        with pytest.raises(cpipc.BadInput, match="norm_percentile"):
            c.segment(crop(), norm_percentile=(99, 1))  # the producer checks the range
        assert c.segment(crop(), diameter=24).objects > 0


def test_channels_of_an_rgb_array(producer, tmp_path):
    gray = crop()
    rgb = np.zeros(gray.shape + (3,), np.uint16)
    rgb[..., 1] = gray  # cells in green: channels (2, 0)
    np.save(tmp_path / "rgb.npy", rgb)
    expected = cli_masks(tmp_path / "rgb.npy", tmp_path, "--channels", "2,0", "--diameter", "0")
    with cpipc.Client(socket=producer.socket) as c:
        r = c.segment(rgb, channels=(2, 0))
    np.testing.assert_array_equal(r.masks, expected)


def test_futures_run_side_by_side_and_keep_their_own_inputs(producer):
    image = crop()
    with cpipc.Client(socket=producer.socket) as c:
        small = image[:96, :96].copy()
        futures = [c.submit(a) for a in (image, small, np.ascontiguousarray(image[:, ::-1]))]
        results = [f.result(120) for f in futures]
        assert all(f.done() for f in futures)
        assert [r.masks.shape for r in results] == [(192, 192), (96, 96), (192, 192)]
        # Each request read its own array, not the one submitted after it.
        mirrored = np.ascontiguousarray(image[:, ::-1])
        np.testing.assert_array_equal(results[2].masks, c.segment(mirrored).masks)
        assert not np.array_equal(results[0].masks, results[2].masks)
        # The input segments are this client's and are unlinked when it closes.
        ours = [d["name"] for d in cpipc.list_segments() if d["name"].startswith(f"py{os.getpid()}-")]
        assert ours
    left = [d["name"] for d in cpipc.list_segments() if d["name"] in ours]
    assert not left


def test_results_can_be_awaited_from_several_threads(producer):
    image = crop()
    with cpipc.Client(socket=producer.socket) as c:
        futures = [c.submit(image) for _ in range(3)]
        out = [None] * 3

        def wait(i):
            out[i] = futures[i].result(120).objects

        threads = [threading.Thread(target=wait, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(130)
        assert out[0] == out[1] == out[2] > 0


def test_progress_reaches_the_callback(producer):
    seen = []
    with cpipc.Client(socket=producer.socket) as c:
        c.segment(crop(), progress=seen.append)
    assert seen and {m["stage"] for m in seen} >= {"network"}
    assert all(m["type"] == "progress" for m in seen)


def test_a_cancelled_request_is_cancelled(producer):
    image = crop()
    with cpipc.Client(socket=producer.socket) as c:
        first, second = c.submit(image), c.submit(image)
        assert second.cancel()
        with pytest.raises(cpipc.Cancelled):
            second.result(120)
        assert first.result(120).objects > 0
        assert not first.cancel()  # already done


def test_bad_requests_are_bad_input_and_the_client_stays_usable(producer, tmp_path):
    with cpipc.Client(socket=producer.socket) as c:
        with pytest.raises(cpipc.BadInput, match="bad_image: no file"):
            c.segment(tmp_path / "absent.tif")
        (tmp_path / "text.png").write_text("not a PNG\n")
        with pytest.raises(cpipc.BadInput, match="bad_image"):
            c.segment(tmp_path / "text.png")
        with pytest.raises(cpipc.BadInput, match="bad_image"):
            c.segment(np.zeros((16, 16), np.int64))  # images are integers up to 32 bits or floats
        with pytest.raises(cpipc.BadInput):
            c.segment(np.zeros((8, 8), np.complex64))  # a segment cannot hold it: refused here
        with pytest.raises(cpipc.BadInput, match="diameter"):
            c.segment(crop(), diameter=-3)  # refused before it is sent
        with pytest.raises(cpipc.BadInput, match="finite"):
            c.segment(crop(), diameter=float("nan"))
        with pytest.raises(cpipc.BadInput, match="fewer than two image axes"):
            c.segment(np.zeros(10, np.uint8))
        with pytest.raises(cpipc.BadInput):
            c.segment([[1, 2], [3, 4]])
        assert c.segment(crop()).masks.shape == (192, 192)


def test_no_producer_is_not_found(tmp_path):
    with pytest.raises(cpipc.NotFound):
        cpipc.Client(socket=str(tmp_path / "nobody.sock"))
    with pytest.raises(cpipc.NotFound):
        cpipc.Client(f"pytest-{os.getpid()}-nobody")


def test_a_request_past_its_timeout_is_timed_out(producer):
    big = np.tile(crop(), (3, 3))  # several tile batches: the deadline passes between two
    with cpipc.Client(socket=producer.socket) as c:
        with pytest.raises(cpipc.TimedOut):
            c.segment(big, timeout=0.05)
        f = c.submit(big)
        with pytest.raises(cpipc.TimedOut, match="still open"):
            f.result(timeout=0.01)  # the wait ran out, not the request
        assert f.result(300).masks.shape == big.shape


def test_a_killed_producer_is_producer_gone(tmp_path):
    p = start_producer(f"pytest-{os.getpid()}-killed", tmp_path)
    try:
        with cpipc.Client(socket=p.socket) as c:
            f = c.submit(np.tile(sample(), (2, 2)))
            time.sleep(0.5)
            p.process.kill()
            with pytest.raises(cpipc.ProducerGone):
                f.result(60)
            with pytest.raises(cpipc.ProducerGone):
                c.submit(crop())
    finally:
        p.stop()
        subprocess.run([cpipc_binary(), "rm", p.name], capture_output=True)  # the segment a killed producer leaves


def test_a_stopping_producer_ends_open_requests_with_producer_gone(tmp_path):
    p = start_producer(f"pytest-{os.getpid()}-stopping", tmp_path)
    with cpipc.Client(socket=p.socket) as c:
        futures = [c.submit(crop()) for _ in range(3)]
        time.sleep(0.3)
        p.process.terminate()
        for f in futures:
            try:
                f.result(60)
            except cpipc.ProducerGone:
                pass  # queued and running requests: shutting_down, or bye
    assert p.stop() == 0


def test_a_producer_with_no_room_says_overloaded(tmp_path):
    p = start_producer(f"pytest-{os.getpid()}-full", tmp_path, "--max-clients", "1")
    try:
        with cpipc.Client(socket=p.socket):
            with pytest.raises(cpipc.Overloaded):
                with cpipc.Client(socket=p.socket) as second:
                    second.segment(crop())
    finally:
        assert p.stop() == 0


def test_an_image_larger_than_the_producers_memory_is_out_of_memory(tmp_path):
    probe = start_producer(f"pytest-{os.getpid()}-vm", tmp_path)
    with open(f"/proc/{probe.pid}/status") as status:
        vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    probe.stop()
    p = start_producer(f"pytest-{os.getpid()}-small", tmp_path, shell=f"ulimit -v {vm_kib + 1600000}")
    try:
        with cpipc.Client(socket=p.socket) as c:
            with pytest.raises(cpipc.OutOfMemory, match="out_of_memory"):
                c.segment(np.zeros((6000, 6000), np.uint8))
            assert c.segment(crop()).objects > 0  # and it keeps serving
    finally:
        assert p.stop() == 0


def test_the_producer_recreates_its_segment_after_pythons_shared_memory_unlinked_it(producer):
    """The seed's trap: SharedMemory(name=...) on the result segment; its close + unlink (or its
    resource tracker at exit) removes the name. The producer notices and publishes under it again."""
    from multiprocessing import shared_memory
    with cpipc.Client(socket=producer.socket) as c:
        first = c.segment(crop())
        shm = shared_memory.SharedMemory(name=f"cpipc.{os.geteuid()}.{producer.name}")
        shm.close()
        shm.unlink()
        again = c.segment(crop())
        np.testing.assert_array_equal(again.masks, first.masks)
        with cpipc.attach(producer.name) as seg:  # a new reader finds the segment by its name
            np.testing.assert_array_equal(seg.latest(), first.masks)


def test_a_producer_outlives_no_python_parent_even_one_killed_with_sigkill(tmp_path):
    """cpipc.serve() hands the producer a lifeline: when the Python process that
    started it dies (here SIGKILL, no cleanup of any kind), the producer stops
    by itself and removes its socket and segment."""
    name = f"pytest-{os.getpid()}-orphan"
    socket = tmp_path / "orphan.sock"
    script = ("import sys, time, cpipc\n"
              f"s = cpipc.serve({name!r}, device='cpu', socket={str(socket)!r}, binary={cpipc_binary()!r})\n"
              "print(s.pid, flush=True)\n"
              "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        serve_pid = int(parent.stdout.readline())
        assert os.path.exists(socket)
        with cpipc.Client(socket=str(socket)) as c:
            assert c.segment(crop()).objects > 0
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{serve_pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{serve_pid}"), "the producer outlived its parent"
        assert not os.path.exists(socket)
        assert not os.path.exists(f"/dev/shm/cpipc.{os.geteuid()}.{name}")
    finally:
        parent.kill()
        subprocess.run([cpipc_binary(), "rm", name], capture_output=True)
