"""A cpipc segment reader in Python with numpy and mmap alone.

Written from docs/FORMAT.md to show (and test) that the format is enough to
read a segment from another language. Host views only; read-only.

    python3 cpipc_segment.py NAME [OUT.npy]
"""
import mmap, os, struct, sys, time
import numpy as np

DTYPES = {(0, 8): "i1", (0, 16): "<i2", (0, 32): "<i4", (0, 64): "<i8",
          (1, 8): "u1", (1, 16): "<u2", (1, 32): "<u4", (1, 64): "<u8",
          (2, 16): "<f2", (2, 32): "<f4", (2, 64): "<f8", (6, 8): "?"}


def read_latest(name):
    """Returns (array copy, frame_id, meta json) of the latest frame, or None."""
    path = f"/dev/shm/cpipc.{os.geteuid()}.{name}"
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        m = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    try:
        if size < 4096 or m[0:8] != b"CPIPCSEG":
            raise ValueError(f"{path} is not a cpipc segment")
        major, total, slots = struct.unpack_from("<H", m, 8)[0], *struct.unpack_from("<QI", m, 16)
        if major != 1 or total != size or not 1 <= slots <= 8:
            raise ValueError(f"{path}: unsupported ABI {major} or bad sizes")
        data_offset, data_stride, frame_bytes = struct.unpack_from("<QQQ", m, 40)
        code, bits, lanes, ndim = struct.unpack_from("<BBHI", m, 64)
        shape = struct.unpack_from("<4q", m, 72)[:ndim]
        dtype = np.dtype(DTYPES[(code, bits)])
        if int(np.prod(shape)) * dtype.itemsize != frame_bytes or data_offset + slots * data_stride > size:
            raise ValueError(f"{path}: inconsistent header")
        while True:  # seqlock: copy, then check the slot was not rewritten meanwhile
            latest = struct.unpack_from("<I", m, 204)[0]
            if latest == 0xFFFFFFFF:
                return None
            rec = 512 + 448 * latest
            seq = struct.unpack_from("<Q", m, rec)[0]
            if seq == 0 or seq % 2:
                time.sleep(0)
                continue
            frame_id = struct.unpack_from("<Q", m, rec + 8)[0]
            flags, count, diameter, meta_len = struct.unpack_from("<IIfI", m, rec + 192)
            meta = bytes(m[rec + 208: rec + 208 + min(meta_len, 240)]).decode()
            start = data_offset + latest * data_stride
            arr = np.frombuffer(m[start:start + frame_bytes], dtype=dtype).reshape(shape)
            if struct.unpack_from("<Q", m, rec)[0] == seq and flags & 1:
                return arr, frame_id, meta
    finally:
        m.close()


if __name__ == "__main__":
    got = read_latest(sys.argv[1])
    if got is None:
        sys.exit("no frame published yet")
    arr, frame_id, meta = got
    print(f"frame {frame_id}: {arr.dtype}{list(arr.shape)} meta={meta}")
    if len(sys.argv) > 2:
        np.save(sys.argv[2], arr)
