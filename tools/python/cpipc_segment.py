"""A cpipc segment reader in Python with numpy and mmap alone.

Written from docs/FORMAT.md to show (and test) that the format is enough to
read a segment from another language. Host views only; read-only.

    python3 cpipc_segment.py NAME [OUT.npy]
"""
import mmap, os, stat, struct, sys, time
import numpy as np

DTYPES = {(0, 8): "i1", (0, 16): "<i2", (0, 32): "<i4", (0, 64): "<i8",
          (1, 8): "u1", (1, 16): "<u2", (1, 32): "<u4", (1, 64): "<u8",
          (2, 16): "<f2", (2, 32): "<f4", (2, 64): "<f8", (6, 8): "?"}


def read_latest(name, patience_s=2.0):
    """Returns (array copy, frame_id, meta str) of the latest frame, or None.
    Raises ValueError for an object that is not ours or not a segment, and
    TimeoutError if the latest slot stays mid-write for `patience_s`."""
    path = f"/dev/shm/cpipc.{os.geteuid()}.{name}"
    give_up = time.monotonic() + 0.25  # a segment still being created gets 250 ms
    while True:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            # Another user can plant a file under our name: trust only ours, 0600.
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o7777 != 0o600:
                raise ValueError(f"{path} is owned by uid {st.st_uid} / has mode {st.st_mode & 0o7777:04o}, not ours")
            size = st.st_size
            m = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) if size >= 4096 else None
        if (m is None or m[0:8] == bytes(8)) and time.monotonic() < give_up:
            if m is not None:
                m.close()
            time.sleep(0.005)
            continue
        break
    if m is None:
        raise ValueError(f"{path} is not a cpipc segment")
    try:
        if m[0:8] != b"CPIPCSEG":
            raise ValueError(f"{path} is not a cpipc segment")
        major, total, slots = struct.unpack_from("<H", m, 8)[0], *struct.unpack_from("<QI", m, 16)
        if major != 1 or total != size or not 1 <= slots <= 8:
            raise ValueError(f"{path}: unsupported ABI {major} or bad sizes")
        data_offset, data_stride, frame_bytes = struct.unpack_from("<QQQ", m, 40)
        code, bits, lanes, ndim = struct.unpack_from("<BBHI", m, 64)
        if lanes != 1 or (code, bits) not in DTYPES or ndim > 4:
            raise ValueError(f"{path}: unsupported dtype or ndim")
        shape = struct.unpack_from("<4q", m, 72)[:ndim]
        dtype = np.dtype(DTYPES[(code, bits)])
        if int(np.prod(shape)) * dtype.itemsize != frame_bytes or data_offset + slots * data_stride > size:
            raise ValueError(f"{path}: inconsistent header")
        deadline = time.monotonic() + patience_s
        while True:  # seqlock: copy, then check the slot was not rewritten meanwhile
            latest = struct.unpack_from("<I", m, 204)[0]
            if latest == 0xFFFFFFFF:
                return None
            if latest >= slots:
                raise ValueError(f"{path}: latest_slot out of range")
            rec = 512 + 448 * latest
            seq = struct.unpack_from("<Q", m, rec)[0]
            if seq == 0:
                raise ValueError(f"{path}: latest_slot was never written")
            if seq % 2:  # being written (or we were lapped): retry, but not forever
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the producer of {name} is stuck mid-write")
                time.sleep(0)
                continue
            frame_id = struct.unpack_from("<Q", m, rec + 8)[0]
            flags, count, diameter, meta_len = struct.unpack_from("<IIfI", m, rec + 192)
            # Untrusted bytes: not necessarily UTF-8.
            meta = bytes(m[rec + 208: rec + 208 + min(meta_len, 240)]).decode("utf-8", "backslashreplace")
            start = data_offset + latest * data_stride
            arr = np.frombuffer(m[start:start + frame_bytes], dtype=dtype).reshape(shape)
            if struct.unpack_from("<Q", m, rec)[0] == seq:
                return (arr, frame_id, meta) if flags & 1 else None  # flags 0: an abandoned write
            if time.monotonic() > deadline:
                raise TimeoutError(f"the producer of {name} is stuck mid-write")
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
