"""Segment.device_view(): a frame's device buffer through DLPack, without a copy.

Without a GPU (or in a module built without CUDA) only the errors can be
checked; the rest needs a visible CUDA device and a producer of device
views: the C++ tests' cpipc_device_peer (tests/device_peer.cu), found
through $CPIPC_DEVICE_PEER or the repository's build directories.
"""

import ctypes
import glob
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cpipc
from cpipc import _cpipc
from cpipc.segment import DeviceView, _stream_handle

ROOT = Path(__file__).resolve().parents[2]
SIDE = 512  # tests/device_pattern.hpp: kPatternSide


def _device_peer():
    given = os.environ.get("CPIPC_DEVICE_PEER")
    if given:
        return given
    found = sorted(glob.glob(str(ROOT / "build*" / "tests" / "cpipc_device_peer")))
    return found[0] if found else None


def _gpu_skip_reason():
    if not _cpipc.built_with_cuda():
        return "this cpipc module was built without CUDA"
    if _cpipc.cuda_device_count() == 0:
        return "no CUDA device visible"
    if _device_peer() is None:
        return "no cpipc_device_peer (build the C++ tests with CUDA, or set CPIPC_DEVICE_PEER)"
    return None


needs_gpu = pytest.mark.skipif(_gpu_skip_reason() is not None, reason=str(_gpu_skip_reason()))


def pattern(frame_id: int) -> np.ndarray:
    """tests/device_pattern.hpp's device_pattern over one [512, 512] frame."""
    i = np.arange(SIDE * SIDE, dtype=np.uint64)
    a = np.uint64((frame_id * 2654435761) & 0xFFFFFFFF)
    b = (i * np.uint64(40503) + np.uint64(1)) & np.uint64(0xFFFFFFFF)
    return (a ^ b).astype(np.uint32).reshape(SIDE, SIDE)


# --- without a GPU ------------------------------------------------------------


def test_a_host_only_segment_has_no_device_view(name):
    with cpipc.Publisher(name, shape=(8, 8), dtype="uint16") as pub, cpipc.attach(name) as seg:
        pub.publish(np.zeros((8, 8), np.uint16))
        if _cpipc.built_with_cuda():
            with pytest.raises(cpipc.BadInput, match="host views only"):
                seg.device_view()
        else:
            with pytest.raises(cpipc.NotFound, match="built without CUDA"):
                seg.device_view()
        assert seg.latest() is not None  # the host view still works


def test_a_closed_segment_says_so(name):
    with cpipc.Publisher(name, shape=(4,), dtype="uint32"):
        seg = cpipc.attach(name)
        seg.close()
        with pytest.raises(cpipc.BadInput, match="closed"):
            seg.device_view()


def test_streams_are_checked_before_cuda_is_asked(name):
    with cpipc.Publisher(name, shape=(4,), dtype="uint32"), cpipc.attach(name) as seg:
        with pytest.raises(cpipc.BadInput, match="stream"):
            seg.device_view(stream="default")
        with pytest.raises(cpipc.BadInput, match="stream"):
            seg.device_view(stream=-1)


def test_stream_handles():
    class TorchLike:
        cuda_stream = 0x1234

    class CupyLike:
        ptr = 0x5678

    assert _stream_handle(None) == 0
    assert _stream_handle(1) == 0  # cudaStreamLegacy is the default stream
    assert _stream_handle(2) == 2  # cudaStreamPerThread
    assert _stream_handle(TorchLike()) == 0x1234
    assert _stream_handle(CupyLike()) == 0x5678


class FakeLease:
    """_cpipc.DeviceLease's interface over a host array: DeviceView's own logic, without a GPU."""

    device = 0

    def __init__(self):
        self.ordered = []
        self.released = False

    def array(self):
        return np.arange(4, dtype=np.uint32)

    def info(self):
        return {"frame_id": 7, "meta": b'{"k": 1}'}

    def valid(self):
        return not self.released

    def release(self):
        self.released = True

    def order_on(self, stream):
        self.ordered.append(stream)


def test_dlpack_orders_only_a_consumer_stream_other_than_the_leases():
    lease = FakeLease()
    dv = DeviceView(lease, np.dtype(np.uint32), (4,), stream=0)
    assert dv.info == {"frame_id": 7, "meta": {"k": 1}}
    assert dv.__dlpack_device__() == (2, 0) and dv.shape == (4,) and dv.dtype == np.uint32
    dv.__dlpack__()  # None, 1 (legacy default) and -1 (no ordering) need no wait
    dv.__dlpack__(stream=1, max_version=(1, 0))
    dv.__dlpack__(stream=-1)
    assert lease.ordered == []
    dv.__dlpack__(stream=2)
    dv.__dlpack__(stream=0xABC)
    assert lease.ordered == [2, 0xABC]
    with pytest.raises(BufferError):
        dv.__dlpack__(copy=True)
    with pytest.raises(BufferError):
        dv.__dlpack__(dl_device=(1, 0))
    with dv:
        assert dv.valid()
    assert not dv.valid()
    with pytest.raises(cpipc.BadInput, match="released"):
        dv.__dlpack__()


def test_the_module_says_whether_it_has_cuda():
    assert isinstance(_cpipc.built_with_cuda(), bool)
    n = _cpipc.cuda_device_count()
    assert n >= 0 and (n == 0 or _cpipc.built_with_cuda())


# --- with a GPU ---------------------------------------------------------------


@pytest.fixture
def device_segment(name):
    """A segment of 3 uint32 [512, 512] frames on GPU 0, written by cpipc_device_peer."""
    peer = subprocess.Popen([_device_peer(), "produce", name, "3", "4", "0", "10"], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in peer.stdout:
            lines.append(line.strip())
            if line.startswith("exports=0"):
                pytest.skip(f"the producer exports no device views here: {line.strip()}")
            if line.strip() == "done":
                break
        assert lines and lines[-1] == "done", f"device_peer said {lines}, exit status {peer.poll()}"
        yield name
    finally:
        peer.send_signal(signal.SIGTERM)
        peer.wait(timeout=10)


def _cudart():
    # The libcudart this module loaded: one runtime, one current device.
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libcudart.so" in line}
    assert paths, "the module did not load libcudart"
    return ctypes.CDLL(sorted(paths)[0])


def _data_pointer(capsule) -> int:
    # DLManagedTensor starts with DLTensor, whose first field is `void* data`.
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return ctypes.c_void_p.from_address(get(capsule, b"dltensor")).value


@needs_gpu
def test_a_device_view_reads_the_latest_frame_through_cudart(device_segment):
    with cpipc.attach(device_segment) as seg, seg.device_view() as dv:
        assert dv.__dlpack_device__() == (2, dv.device)
        assert dv.shape == (SIDE, SIDE) and dv.dtype == np.uint32
        assert dv.info["frame_id"] == 3
        out = np.empty((SIDE, SIDE), np.uint32)
        # cudaMemcpy runs on the legacy default stream, the one the view was ordered on.
        st = _cudart().cudaMemcpy(ctypes.c_void_p(out.ctypes.data), ctypes.c_void_p(_data_pointer(dv.__dlpack__())),
                                  ctypes.c_size_t(out.nbytes), 2)  # cudaMemcpyDeviceToHost
        assert st == 0
        assert dv.valid()
        np.testing.assert_array_equal(out, pattern(3))


@needs_gpu
def test_torch_takes_a_device_view_without_a_copy(device_segment):
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "uint32"):
        pytest.skip("this torch has no uint32 (2.3 and later do)")
    with cpipc.attach(device_segment) as seg, seg.device_view() as dv:
        t = torch.from_dlpack(dv)
        assert t.is_cuda and t.device.index == dv.device and t.dtype == torch.uint32
        assert t.data_ptr() == torch.from_dlpack(dv).data_ptr()  # both alias the producer's buffer
        # Another consumer stream: __dlpack__ orders it after the producer's write too.
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            u = torch.from_dlpack(dv).clone()
        s.synchronize()
        np.testing.assert_array_equal(u.cpu().numpy(), pattern(dv.info["frame_id"]))
        assert dv.valid()


@needs_gpu
def test_cupy_takes_a_device_view_without_a_copy(device_segment):
    cupy = pytest.importorskip("cupy")
    with cpipc.attach(device_segment) as seg, seg.device_view() as dv:
        a = cupy.from_dlpack(dv)
        assert a.shape == (SIDE, SIDE) and a.dtype == np.uint32
        np.testing.assert_array_equal(cupy.asnumpy(a), pattern(dv.info["frame_id"]))


@needs_gpu
def test_a_released_device_view_refuses_dlpack(device_segment):
    with cpipc.attach(device_segment) as seg:
        dv = seg.device_view(stream=2)  # ordered on the per-thread default stream
        capsule = dv.__dlpack__(stream=2, max_version=(1, 0))
        assert capsule is not None
        with pytest.raises(BufferError):
            dv.__dlpack__(copy=True)
        with pytest.raises(BufferError):
            dv.__dlpack__(dl_device=(1, 0))
        dv.release()
        assert not dv.valid()
        with pytest.raises(cpipc.BadInput, match="released"):
            dv.__dlpack__()
