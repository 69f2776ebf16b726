"""cpipc's TIFFs as tifffile (and so Cellpose, Fiji's readers, napari) reads
them: `cpipc publish` a .npy in the background, `cpipc save NAME out.tif`,
then tifffile reads out.tif back and compares:

  (a) uint32 labels past 65 535 [40, 56] (Cellpose's masks from 65 536
      objects on): the same values, dtype uint32, one page;
  (b) a uint16 [Z, Y, X] = [5, 40, 56] stack (a 3-D segmentation's masks):
      the same values, tifffile's series axes 'ZYX', and an ImageJ
      hyperstack description (ImageJ=..., images=5, slices=5), as Cellpose's
      io.imsave (tifffile.imwrite(..., imagej=True)) would leave it for Fiji.

Usage: python tests/tiff_roundtrip_check.py BUILD_DIR_OR_CPIPC_BINARY
Needs numpy and tifffile (scripts/setup.sh puts them in the tools venv,
~/.cache/cpipc/tools-venv); without them it exits 77, which ctest reports as
skipped. Exit 1 on any mismatch, with one line per failed check.
"""
import os
import signal
import subprocess
import sys
import tempfile

SKIP = 77

try:
    import numpy as np
    import tifffile
except ImportError as e:  # ctest: SKIP_RETURN_CODE 77
    print(f"skipped: {e}; this check needs numpy and tifffile (run scripts/setup.sh: the tools venv)")
    sys.exit(SKIP)


def cpipc_binary(arg):
    return os.path.join(arg, "cpipc") if os.path.isdir(arg) else arg


class Published:
    """`cpipc publish FILE NAME` until stop(): its own process, like a user's."""

    def __init__(self, cpipc, file, name):
        self.p = subprocess.Popen([cpipc, "publish", file, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        line = self.p.stdout.readline()
        if not line.startswith("published"):
            self.p.kill()
            out, err = self.p.communicate(timeout=10)
            raise RuntimeError(f"cpipc publish {file} {name} did not start: {line}{out}{err}".strip())

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def publish_and_save(cpipc, tmp, array, name, out_name):
    """Publishes `array` (written as .npy), saves it to out_name with `cpipc
    save`; returns (save's exit status, its stderr, the .tif path)."""
    src = os.path.join(tmp, name + ".npy")
    np.save(src, array)
    seg = f"tifrt-{os.getpid()}-{name}"
    pub = Published(cpipc, src, seg)
    try:
        out = os.path.join(tmp, out_name)
        r = subprocess.run([cpipc, "save", seg, out], capture_output=True, text=True, timeout=60)
    finally:
        status = pub.stop()
    if status != 0:
        raise RuntimeError(f"cpipc publish of {name} ended with {status}")
    return r.returncode, (r.stderr or r.stdout).strip(), out


def main():
    if len(sys.argv) != 2:
        print("usage: tiff_roundtrip_check.py BUILD_DIR_OR_CPIPC_BINARY", file=sys.stderr)
        return 2
    cpipc = cpipc_binary(sys.argv[1])
    failures = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="cpipc-tiff-rt-") as tmp:
        # (a) uint32 labels past 65 535: 70000 + 7 * i where i % 5, else 0.
        i = np.arange(40 * 56, dtype=np.uint32)
        labels = np.where(i % 5 != 0, 70000 + 7 * i, 0).astype(np.uint32).reshape(40, 56)
        rc, err, out = publish_and_save(cpipc, tmp, labels, "labels32", "labels32.tif")
        check(rc == 0, f"(a) cpipc save of uint32 labels up to {labels.max()} to .tif exits 0 ({err})")
        if rc == 0:
            with tifffile.TiffFile(out) as t:
                back = t.asarray()
                check(len(t.pages) == 1, f"(a) one page (got {len(t.pages)})")
            check(back.dtype == np.uint32, f"(a) tifffile reads dtype uint32 (got {back.dtype})")
            check(back.shape == labels.shape and np.array_equal(back, labels),
                  f"(a) tifffile reads the same labels (shape {back.shape})")

        # (b) a [Z, Y, X] uint16 stack: 1000 * z + 10 * y + x (mod 65536).
        z, y, x = np.mgrid[0:5, 0:40, 0:56]
        stack = ((1000 * z + 10 * y + x) % 65536).astype(np.uint16)
        rc, err, out = publish_and_save(cpipc, tmp, stack, "stack", "stack.tif")
        check(rc == 0, f"(b) cpipc save of a uint16 [5, 40, 56] stack to .tif exits 0 ({err})")
        if rc == 0:
            with tifffile.TiffFile(out) as t:
                s = t.series[0]
                back = s.asarray()
                desc = t.pages[0].description
                check(s.axes == "ZYX", f"(b) tifffile's series axes are 'ZYX' (got '{s.axes}' {s.shape})")
                check(t.is_imagej and desc.startswith("ImageJ=") and "slices=5" in desc,
                      f"(b) an ImageJ hyperstack description with slices=5 (got {desc[:80]!r})")
            check(back.dtype == np.uint16 and back.shape == stack.shape and np.array_equal(back, stack),
                  f"(b) tifffile reads the same stack (got {back.dtype} {back.shape})")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
