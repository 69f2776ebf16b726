"""Checks that docs/FORMAT.md is enough: a segment published by the real
`cpipc publish` reads back, bit for bit, with cpipc_segment.py (numpy + mmap).

    python3 test_cpipc_segment.py PATH/TO/cpipc
"""
import os, signal, subprocess, sys, tempfile
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpipc_segment import read_latest  # noqa: E402


def check(cpipc, array, name):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.npy")
        np.save(src, array)
        proc = subprocess.Popen([cpipc, "publish", src, name], stdout=subprocess.PIPE, text=True)
        try:
            ready = proc.stdout.readline()
            assert ready.startswith("published"), f"publish did not start: {ready!r}"
            got, frame_id, meta = read_latest(name)
            assert frame_id == 1, frame_id
            assert got.dtype == array.dtype and got.shape == array.shape, (got.dtype, got.shape)
            assert np.array_equal(got, array), "frame bytes differ"
            assert '"frame":1' in meta, meta
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, "publish did not exit 0 on SIGTERM"
        assert not os.path.exists(f"/dev/shm/cpipc.{os.geteuid()}.{name}"), "segment left behind"


def check_planted(cpipc, name):
    """A copy of a live segment with mode 0666 (what another user could
    leave under our name) is refused, not read."""
    array = np.arange(64, dtype=np.uint16).reshape(8, 8)
    planted = f"/dev/shm/cpipc.{os.geteuid()}.{name}-planted"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.npy")
        np.save(src, array)
        proc = subprocess.Popen([cpipc, "publish", src, name], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().startswith("published")
            with open(f"/dev/shm/cpipc.{os.geteuid()}.{name}", "rb") as f:
                data = f.read()
            fd = os.open(planted, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.write(fd, data)
            os.fchmod(fd, 0o666)
            os.close(fd)
            try:
                read_latest(name + "-planted")
                raise AssertionError("read an object with mode 0666")
            except ValueError as e:
                assert "mode 0666" in str(e), e
        finally:
            if os.path.exists(planted):
                os.unlink(planted)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0


def main():
    cpipc = sys.argv[1]
    rng = np.random.default_rng(7)
    cases = {
        "uint16 labels": rng.integers(0, 65535, size=(300, 211), dtype=np.uint16),
        "float32 4-D": rng.standard_normal((2, 3, 17, 5)).astype(np.float32),
        "uint8 gray": rng.integers(0, 255, size=(64, 64), dtype=np.uint8),
    }
    passed = failed = 0
    for i, (label, array) in enumerate(cases.items()):
        try:
            check(cpipc, array, f"pyreader-{os.getpid()}-{i}")
            passed += 1
            print(f"ok: {label}")
        except Exception as e:  # report every case, then fail
            failed += 1
            print(f"FAILED: {label}: {e}")
    try:
        check_planted(cpipc, f"pyreader-{os.getpid()}-planted")
        passed += 1
        print("ok: a planted object is refused")
    except Exception as e:
        failed += 1
        print(f"FAILED: a planted object is refused: {e}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
