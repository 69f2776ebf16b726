"""Checks that libtiff itself (the library issue 14's reader uses) decodes
every fixture in tests/data/images to the same bytes tifffile decodes, page by
page: strips with TIFFReadEncodedStrip, tiles with TIFFReadEncodedTile
assembled, JPEG with TIFFTAG_JPEGCOLORMODE = RGB. So an expectation there is
no tifffile-only quirk. The refused rows are listed with what libtiff hands
back for them (1-bit and 12-bit pages come back packed). Uses libtiff.so.6
through ctypes; run with the fixtures venv (tifffile, numpy):
  ~/.cache/cpipc/fixtures-venv/bin/python tools/io/check_image_fixtures_libtiff.py [dir]
Exit 1 when a pixel fixture differs. Checked 2026-12-06 with Debian 12's
libtiff 4.5.0: every pixel fixture equal.
"""
import ctypes
import json
import os
import sys

import numpy as np
import tifffile

TIFFTAG_IMAGEWIDTH, TIFFTAG_IMAGELENGTH, TIFFTAG_BITSPERSAMPLE = 256, 257, 258
TIFFTAG_SAMPLESPERPIXEL, TIFFTAG_TILEWIDTH, TIFFTAG_TILELENGTH = 277, 322, 323
TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB = 65538, 1
COMPRESSION_JPEG = 7


def load_libtiff():
    lt = ctypes.CDLL("libtiff.so.6")
    vp, u32, ssz = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_ssize_t
    lt.TIFFOpen.restype, lt.TIFFOpen.argtypes = vp, [ctypes.c_char_p, ctypes.c_char_p]
    for f in ("TIFFReadEncodedStrip", "TIFFReadEncodedTile"):
        getattr(lt, f).restype, getattr(lt, f).argtypes = ssz, [vp, u32, vp, ssz]
    for f in ("TIFFStripSize", "TIFFTileSize"):
        getattr(lt, f).restype, getattr(lt, f).argtypes = ssz, [vp]
    for f in ("TIFFNumberOfStrips", "TIFFNumberOfTiles"):
        getattr(lt, f).restype, getattr(lt, f).argtypes = u32, [vp]
    for f in ("TIFFIsTiled", "TIFFReadDirectory", "TIFFClose"):
        getattr(lt, f).argtypes = [vp]
    lt.TIFFSetField.argtypes = [vp, u32, ctypes.c_int]
    lt.TIFFGetField.argtypes = [vp, u32, vp]
    return lt


lt = load_libtiff()


def field(t, tag, ctype):
    v = ctype(0)
    lt.TIFFGetField(t, tag, ctypes.byref(v))
    return v.value


def read_segments(t, tiled):
    """Every strip or tile of the current directory, decoded; None on an error."""
    count, size, read = ((lt.TIFFNumberOfTiles, lt.TIFFTileSize, lt.TIFFReadEncodedTile) if tiled else
                         (lt.TIFFNumberOfStrips, lt.TIFFStripSize, lt.TIFFReadEncodedStrip))
    n, sz = count(t), size(t)
    out = []
    for i in range(n):
        buf = ctypes.create_string_buffer(sz)
        got = read(t, i, buf, sz)
        if got < 0:
            return None
        out.append(buf.raw[:got])
    return out


def page_as_libtiff_decodes(t, ref, planar):
    """The current directory as an array shaped like tifffile's `ref` page."""
    tiled = lt.TIFFIsTiled(t)
    segments = read_segments(t, tiled)
    if segments is None:
        return None, "decode error"
    bits = field(t, TIFFTAG_BITSPERSAMPLE, ctypes.c_uint16) or 1
    if ref.dtype == bool or bits != ref.dtype.itemsize * 8:
        return None, f"{bits}-bit: {sum(map(len, segments))} bytes"
    dt = ref.dtype.newbyteorder("=")
    if not tiled:
        data = b"".join(segments)
        return (np.frombuffer(data, dt).reshape(ref.shape) if len(data) == ref.nbytes else None), None
    w, h = field(t, TIFFTAG_IMAGEWIDTH, ctypes.c_uint32), field(t, TIFFTAG_IMAGELENGTH, ctypes.c_uint32)
    tw, th = field(t, TIFFTAG_TILEWIDTH, ctypes.c_uint32), field(t, TIFFTAG_TILELENGTH, ctypes.c_uint32)
    spp = field(t, TIFFTAG_SAMPLESPERPIXEL, ctypes.c_uint16) or 1
    planes = spp if planar == 2 else 1
    ty, tx = -(-h // th), -(-w // tw)
    full = np.zeros((planes, ty * th, tx * tw), dt)  # gray or planar tiles only (what the fixtures have)
    for i, seg in enumerate(segments):
        p, rest = divmod(i, ty * tx)
        yy, xx = divmod(rest, tx)
        full[p, yy * th:(yy + 1) * th, xx * tw:(xx + 1) * tw] = np.frombuffer(seg, dt).reshape(th, tw)
    return full[:, :h, :w].reshape(ref.shape), None


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data",
                                                           "images")
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    bad = 0
    for row in manifest["fixtures"]:
        path = os.path.join(d, row["file"])
        with tifffile.TiffFile(path) as tf:
            pages = [(p.asarray(), p.planarconfig) for p in tf.pages]
            jpeg = int(tf.pages[0].compression) == COMPRESSION_JPEG
        t = lt.TIFFOpen(path.encode(), b"r")
        if not t:
            print(f"{row['name']:32s} libtiff cannot open it")
            bad += 1
            continue
        k, result = 0, "equal"
        while True:
            if jpeg:
                lt.TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB)
            ref, planar = pages[k]
            got, why = page_as_libtiff_decodes(t, ref, planar)
            k += 1
            if why:
                result = why
            elif got is None or not np.array_equal(got, ref.astype(ref.dtype.newbyteorder("="))):
                result = "DIFFERENT"
            if result != "equal" or not lt.TIFFReadDirectory(t):
                break
        lt.TIFFClose(t)
        if result != "equal" and "refused" not in row:
            bad += 1
        refused = f"  (refused: {row['refused']})" if "refused" in row else ""
        print(f"{row['name']:32s} pages {k}/{len(pages)} {result}{refused}")
    print(f"{bad} pixel fixture(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
