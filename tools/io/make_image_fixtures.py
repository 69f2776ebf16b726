"""Makes the TIFF fixtures of tests/io_image_table_test.cpp in tests/data/images:
one NAME.tif per row of the reader's table (issue 14), written by tifffile as
microscopists' tools write them, and what cpipc::io::read_image_file must
return for it, in cpipc's order [Z,] Y, X [, C], as NAME.expect.npy (one
frame) or NAME.expect0.npy, NAME.expect1.npy, ... (one per time point), plus
manifest.json: per fixture the file, the frames' axes, their dtype and shape,
the expectation files, the axes tifffile gives the series (for the reader's
author: stored_axes as tifffile sees them), or "refused": a substring of the
one-line error read_image_file must throw (Error invalid_argument, exit 2).

Every expectation is tifffile's own array of the file (tifffile.TiffFile
.series[i].asarray(), or .asarray() per page) put in cpipc's order by the
rules of include/cpipc/io/image.hpp: the file's axes where its metadata
(ImageJ, OME-XML, tifffile's shaped description, a page's samples) names
them, else Cellpose 4's guess (transforms.convert_image: 3 axes -> channels
first when shape[0] < shape[-1], else last). The script checks that every
expectation equals tifffile's array rearranged and prints tifffile's view of
each file (pages, series axes and shape, compression, predictor, the
ImageDescription's first characters).

Pixel values follow formulas of the row (r) and column (c) index, so a
transposed or shifted read shows: see the functions below. Nothing is random.

Needs tifffile with imagecodecs (LZW, Zstd, JPEG, PackBits):
  python3 -m venv ~/.cache/cpipc/fixtures-venv
  ~/.cache/cpipc/fixtures-venv/bin/pip install numpy tifffile imagecodecs
  ~/.cache/cpipc/fixtures-venv/bin/python tools/io/make_image_fixtures.py [out_dir]
(default tests/data/images). Made with tifffile 2026.3.3, imagecodecs
2026.3.6, numpy 2.4.6; JPEG's expectation is what that imagecodecs decodes.
A second run gives the same bytes except in the two OME-TIFFs, whose OME-XML
carries a fresh UUID each time. tools/io/check_image_fixtures_libtiff.py
checks that libtiff decodes every page as tifffile does.
"""
import json
import os
import sys

import numpy as np
import tifffile

Y, X = 40, 48  # most images: not square, so a transposed read shows


def grid(h=Y, w=X):
    return np.mgrid[0:h, 0:w]


def gray(dtype, h=Y, w=X, k=0):
    """A [h, w] image of `dtype`; k shifts it (another channel, slice, frame)."""
    r, c = grid(h, w)
    r = r.astype(np.int64)
    c = c.astype(np.int64)
    dt = np.dtype(dtype)
    if dt == np.uint8:
        v = (3 * r + 5 * c + 37 * k) % 256
    elif dt == np.uint16:
        v = (1031 * r + 7 * c + 5003 * k) % 65536  # the high byte varies: a byte swap shows
    elif dt == np.int16:
        v = (1031 * r + 7 * c + 5003 * k) % 65536 - 32768  # negative and positive
    elif dt == np.uint32:
        v = 70000 + 100003 * r + 7 * c + 1000 * k  # past 65535 and 2^24
    elif dt in (np.float32, np.float64):
        return ((r - 20.5) * 0.25 + c * 1e-3 + k * 100.0 + (1 / 3)).astype(dt)  # negative, fractional
    else:
        raise ValueError(dtype)
    return v.astype(dt)


def to_native(a):
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a


class Fixtures:
    def __init__(self, out):
        self.out = out
        self.rows = []

    def path(self, name):
        return os.path.join(self.out, name + ".tif")

    def add(self, name, frames, axes, note, stored=None, decided_by=None):
        """Records NAME.tif's expectation: `frames` (arrays in cpipc's order),
        their `axes`; `stored` is tifffile's array (or list of per-series
        arrays) that the frames must equal rearranged, already checked by the
        caller's lambda."""
        files = []
        for i, f in enumerate(frames):
            fn = f"{name}.expect.npy" if len(frames) == 1 else f"{name}.expect{i}.npy"
            np.save(os.path.join(self.out, fn), to_native(f))
            files.append(fn)
        row = {"name": name, "file": name + ".tif", "frames": len(frames), "axes": [axes] * len(frames),
               "dtype": [str(to_native(f).dtype) for f in frames], "shape": [list(f.shape) for f in frames],
               "expect": files}
        self.finish(row, name, note, decided_by)

    def refuse(self, name, substring, note):
        row = {"name": name, "file": name + ".tif", "refused": substring}
        self.finish(row, name, note, None)

    def finish(self, row, name, note, decided_by):
        with tifffile.TiffFile(self.path(name)) as t:
            s = t.series[0]
            p = t.pages[0]
            row["tifffile"] = {"pages": len(t.pages), "series": len(t.series), "series_axes": s.axes,
                               "series_shape": list(s.shape), "dtype": str(s.dtype),
                               "compression": p.compression.name, "predictor": int(p.predictor),
                               "bigtiff": t.is_bigtiff, "byteorder": t.byteorder,
                               "tiled": p.is_tiled, "imagej": t.is_imagej, "ome": t.is_ome, "shaped": t.is_shaped}
            desc = p.description
        if decided_by:
            row["decided_by"] = decided_by
        row["note"] = note
        self.rows.append(row)
        size = os.path.getsize(self.path(name))
        tf = row["tifffile"]
        print(f"{name:28s} {size:7d} B  pages={tf['pages']:3d} series {tf['series_axes']:6s} {str(tuple(tf['series_shape'])):18s}"
              f" {tf['dtype']:9s} {tf['compression']:10s} pred={tf['predictor']}"
              f" -> {row.get('axes', ['-'])[0] if 'axes' in row else 'refused: ' + row['refused']}"
              f" {row.get('shape', '')}  desc={desc[:60]!r}")

    def write_manifest(self):
        with open(os.path.join(self.out, "manifest.json"), "w") as f:
            json.dump({"about": "Fixtures of tests/io_image_table_test.cpp, made by tools/io/make_image_fixtures.py "
                               "with tifffile " + tifffile.__version__ + "; axes are cpipc's order per frame "
                               "([Z,] Y, X [, C]); 'tifffile' is tifffile's view of the file, for information",
                       "fixtures": self.rows}, f, indent=1)
            f.write("\n")


def series_array(path, i=0):
    with tifffile.TiffFile(path) as t:
        return t.series[i].asarray(), t.series[i].axes


def check(path, frames, rearrange):
    """Asserts that `frames` equal tifffile's series 0 array rearranged."""
    a, axes = series_array(path)
    got = rearrange(a, axes)
    if not isinstance(got, list):
        got = [got]
    assert len(got) == len(frames), (path, len(got), len(frames))
    for g, f in zip(got, frames):
        assert g.dtype == f.dtype and g.shape == f.shape and np.array_equal(g, f), (path, g.shape, f.shape)


def same(a, axes):
    return a


def chan_last(a, axes):  # [C, Y, X] -> [Y, X, C]
    return np.moveaxis(a, 0, -1)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data",
                                                             "images")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f.endswith((".tif", ".npy")) or f == "manifest.json":
            os.remove(os.path.join(out, f))
    fx = Fixtures(out)
    print(f"tifffile {tifffile.__version__}, numpy {np.__version__}")

    # Gray [Y, X] of each dtype.
    for dt in ("uint8", "uint16", "int16", "uint32", "float32", "float64"):
        name = f"gray_{dt}"
        a = gray(dt)
        tifffile.imwrite(fx.path(name), a)
        check(fx.path(name), [a], same)
        fx.add(name, [a], "YX", f"one page {dt} [40, 48], tifffile's shaped description")

    # RGB, contiguous samples.
    for dt in ("uint8", "uint16"):
        name = f"rgb_{dt}"
        a = np.stack([gray(dt, k=k) for k in range(3)], -1)
        tifffile.imwrite(fx.path(name), a, photometric="rgb")
        check(fx.path(name), [a], same)
        fx.add(name, [a], "YXC", f"one page RGB {dt} [40, 48, 3], PlanarConfiguration contig")

    # Two channels in one page: minisblack with an extra sample.
    a2 = np.stack([gray("uint16", k=0), gray("uint16", k=1)], -1)
    name = "c2_contig_uint16"
    tifffile.imwrite(fx.path(name), a2, photometric="minisblack", planarconfig="contig")
    with tifffile.TiffFile(fx.path(name)) as t:
        assert len(t.pages) == 1 and t.pages[0].samplesperpixel == 2, "one page of 2 samples"
    check(fx.path(name), [a2], same)
    fx.add(name, [a2], "YXC", "one page, SamplesPerPixel 2 (ExtraSamples unspecified), contig: series YXS")

    # The same array without planarconfig: tifffile 2026 writes 40 pages of
    # [48, 2] and a shaped description {"shape": [40, 48, 2]}.
    name = "c2_shaped_pages_uint16"
    tifffile.imwrite(fx.path(name), a2)
    with tifffile.TiffFile(fx.path(name)) as t:
        assert len(t.pages) == Y and t.pages[0].shape == (X, 2), "40 pages [48, 2]"
    check(fx.path(name), [a2], same)
    fx.add(name, [a2], "YXC",
           "imwrite of [40, 48, 2] without photometric/planarconfig: 40 pages [48, 2] of one sample, "
           "description {\"shape\": [40, 48, 2]}; tifffile's series QYX [40, 48, 2]; Cellpose 4's guess "
           "(40 >= 2: channels last) gives [40, 48, 2]",
           decided_by="guessed as Cellpose 4 does")

    # Planar channels, 2, 3 and 4.
    for n in (2, 3, 4):
        name = f"c{n}_planar_uint16"
        planes = np.stack([gray("uint16", k=k) for k in range(n)])
        tifffile.imwrite(fx.path(name), planes, photometric="minisblack", planarconfig="separate")
        with tifffile.TiffFile(fx.path(name)) as t:
            assert len(t.pages) == 1 and t.pages[0].samplesperpixel == n and t.pages[0].planarconfig == 2
        e = np.moveaxis(planes, 0, -1).copy()
        check(fx.path(name), [e], chan_last)
        fx.add(name, [e], "YXC", f"one page, SamplesPerPixel {n}, PlanarConfiguration separate: series SYX")

    # Channels first without axes: the shaped description {"shape": [2, 40, 48]}
    # (tifffile's series QYX), and metadata=None (no description: series IYX).
    for name, meta in (("c2_first_shaped_uint16", {}), ("c2_first_nometa_uint16", None)):
        planes = np.stack([gray("uint16", k=0), gray("uint16", k=1)])
        tifffile.imwrite(fx.path(name), planes, metadata=meta)
        e = np.moveaxis(planes, 0, -1).copy()
        check(fx.path(name), [e], chan_last)
        fx.add(name, [e], "YXC",
               "two pages [40, 48], " + ("description {\"shape\": [2, 40, 48]}" if meta is not None else "no description")
               + "; Cellpose 4's guess: 2 < 48, channels first", decided_by="guessed as Cellpose 4 does")

    # A plain multi-page stack [3, 40, 48] without metadata. tifffile 2026
    # writes imwrite(f, a[3, 40, 48], metadata=None) as ONE page of planar
    # RGB (PhotometricInterpretation RGB, SamplesPerPixel 3, separate); with
    # photometric='minisblack' it is 3 pages. Both: [40, 48, 3].
    st = np.stack([gray("uint16", k=k) for k in range(3)])
    e = np.moveaxis(st, 0, -1).copy()
    name = "stack3_nometa_uint16"
    tifffile.imwrite(fx.path(name), st, photometric="minisblack", metadata=None)
    with tifffile.TiffFile(fx.path(name)) as t:
        assert len(t.pages) == 3
    check(fx.path(name), [e], chan_last)
    fx.add(name, [e], "YXC", "three pages [40, 48], no description: Cellpose 4's guess, 3 < 48, channels first",
           decided_by="guessed as Cellpose 4 does")
    name = "stack3_nometa_rgbplanar_uint16"
    tifffile.imwrite(fx.path(name), st, metadata=None)
    with tifffile.TiffFile(fx.path(name)) as t:
        assert len(t.pages) == 1 and t.pages[0].photometric == 2 and t.pages[0].planarconfig == 2
    check(fx.path(name), [e], chan_last)
    fx.add(name, [e], "YXC",
           "imwrite of [3, 40, 48] with metadata=None and no photometric: tifffile writes ONE page of planar RGB "
           "(Photometric RGB, SamplesPerPixel 3, PlanarConfiguration separate), not 3 pages")

    # Many pages of a small image, no metadata: [70, 32, 48] uint8. Cellpose's
    # rule: 70 >= 48, so the LAST axis is channels: Y = 70, X = 32, C = 48.
    name = "stack70_nometa_uint8"
    r70 = np.stack([gray("uint8", 32, 48, k=k) for k in range(70)])
    tifffile.imwrite(fx.path(name), r70, photometric="minisblack", metadata=None)
    check(fx.path(name), [r70], same)
    fx.add(name, [r70], "ZYX",
           "70 pages [32, 48], no description. Cellpose 4's guess for 3 axes (channels first only when shape[0] < "
           "shape[-1]) would read it channels LAST, Y=70, X=32, C=48; but a TIFF page is known to be Y x X, so "
           "cpipc reads the page axis as channels when there are fewer pages than columns, else as Z: "
           "[70, 32, 48] ZYX, the same bytes",
           decided_by="guessed as Cellpose 4 does")

    # ImageJ hyperstacks.
    z5 = np.stack([gray("uint16", k=k) for k in range(5)])
    name = "imagej_zyx_uint16"
    tifffile.imwrite(fx.path(name), z5, imagej=True, metadata={"axes": "ZYX"})
    check(fx.path(name), [z5], same)
    fx.add(name, [z5], "ZYX", "ImageJ hyperstack slices=5: 5 pages", decided_by="ImageJ metadata")

    zc = np.stack([np.stack([gray("uint16", k=10 * z + c) for c in range(2)]) for z in range(3)])  # [3, 2, Y, X]
    e = np.moveaxis(zc, 1, -1).copy()  # [3, Y, X, 2]
    name = "imagej_zcyx_uint16"
    tifffile.imwrite(fx.path(name), zc, imagej=True, metadata={"axes": "ZCYX"})
    check(fx.path(name), [e], lambda a, ax: np.moveaxis(a, 1, -1))
    fx.add(name, [e], "ZYXC", "ImageJ hyperstack slices=3 channels=2: 6 pages, C fastest",
           decided_by="ImageJ metadata")

    tzc = np.stack([np.stack([np.stack([gray("uint16", k=30 * t + 10 * z + c) for c in range(2)]) for z in range(3)])
                    for t in range(2)])  # [2, 3, 2, Y, X]
    es = [np.moveaxis(tzc[t], 1, -1).copy() for t in range(2)]
    name = "imagej_tzcyx_uint16"
    tifffile.imwrite(fx.path(name), tzc, imagej=True, metadata={"axes": "TZCYX"})
    check(fx.path(name), es, lambda a, ax: [np.moveaxis(a[t], 1, -1) for t in range(a.shape[0])])
    fx.add(name, es, "ZYXC", "ImageJ hyperstack frames=2 slices=3 channels=2: 12 pages; T becomes 2 frames",
           decided_by="ImageJ metadata")

    # OME-TIFF, ZCYX and CZYX.
    name = "ome_zcyx_uint16"
    tifffile.imwrite(fx.path(name), zc, ome=True, metadata={"axes": "ZCYX"})
    check(fx.path(name), [e], lambda a, ax: np.moveaxis(a, 1, -1))
    fx.add(name, [e], "ZYXC", "OME-TIFF, DimensionOrder XYCZT (C before Z): 6 pages", decided_by="OME-XML")
    cz = np.ascontiguousarray(np.moveaxis(zc, 1, 0))  # [2, 3, Y, X], same values as zc
    name = "ome_czyx_uint16"
    tifffile.imwrite(fx.path(name), cz, ome=True, metadata={"axes": "CZYX"})
    check(fx.path(name), [e], lambda a, ax: np.moveaxis(a, 0, -1))
    fx.add(name, [e], "ZYXC", "OME-TIFF, DimensionOrder XYZCT (Z before C): 6 pages; the same values as "
                              "ome_zcyx_uint16", decided_by="OME-XML")

    # Compressions and layouts: the same values as uncompressed.
    u16 = gray("uint16")
    for name, kw in (("lzw_uint16", dict(compression="lzw")),
                     ("lzw_predictor_uint16", dict(compression="lzw", predictor=True)),
                     ("deflate_uint16", dict(compression="zlib")),
                     ("deflate_predictor_uint16", dict(compression="zlib", predictor=True)),
                     ("zstd_uint16", dict(compression="zstd")),
                     ("packbits_uint16", dict(compression="packbits")),
                     ("bigtiff_uint16", dict(bigtiff=True)),
                     ("bigendian_uint16", dict(byteorder=">")),
                     ("bigendian_deflate_uint16", dict(byteorder=">", compression="zlib", predictor=True)),
                     ("strips4_deflate_uint16", dict(compression="zlib", rowsperstrip=4))):
        tifffile.imwrite(fx.path(name), u16, **kw)
        check(fx.path(name), [u16], lambda a, ax: to_native(a))
        fx.add(name, [u16], "YX", f"uint16 [40, 48], {kw}")
    f32 = gray("float32")
    name = "deflate_fpredictor_float32"
    tifffile.imwrite(fx.path(name), f32, compression="zlib", predictor=True)
    with tifffile.TiffFile(fx.path(name)) as t:
        assert int(t.pages[0].predictor) == 3, "floating-point predictor"
    check(fx.path(name), [f32], same)
    fx.add(name, [f32], "YX", "float32 [40, 48], Deflate with the floating-point predictor (Predictor 3)")
    name = "bigendian_float32"
    tifffile.imwrite(fx.path(name), f32, byteorder=">")
    check(fx.path(name), [f32], lambda a, ax: to_native(a))
    fx.add(name, [f32], "YX", "float32 [40, 48], big-endian ('MM')")

    # JPEG, uint8 RGB: the expectation is what tifffile (imagecodecs) decodes.
    r, c = grid()
    rgb8 = np.stack([2 * r + 3 * c, 200 - 3 * r + c, 3 * r + 2 * c + 20], -1).astype(np.uint8)  # smooth, no wrap
    name = "jpeg_rgb_uint8"
    tifffile.imwrite(fx.path(name), rgb8, photometric="rgb", compression="jpeg")
    dec, _ = series_array(fx.path(name))
    fx.add(name, [dec], "YXC", "RGB uint8 [40, 48, 3], JPEG; tifffile writes it as Photometric YCbCr with 2x2 "
                               "chroma subsampling (libtiff 4.5 with JPEGCOLORMODE_RGB decodes the same bytes as "
                               "tifffile). Lossy: the expectation is tifffile's decoding, "
                               f"max |diff| from the source {int(np.abs(dec.astype(int) - rgb8).max())})")

    # Tiled 256 x 256, past one tile both ways, with partial edge tiles.
    r, c = grid(300, 520)
    t8 = ((r // 4 + c // 8 + (r * c) % 7) % 256).astype(np.uint8)
    r2, c2 = grid(272, 300)
    t8s = ((r2 // 4 + c2 // 8 + (r2 * c2) % 7) % 256).astype(np.uint16)
    name = "tiled_deflate_uint8"
    tifffile.imwrite(fx.path(name), t8, tile=(256, 256), compression="zlib")
    with tifffile.TiffFile(fx.path(name)) as t:
        assert t.pages[0].is_tiled and len(t.pages[0].dataoffsets) == 6, "2 x 3 tiles"
    check(fx.path(name), [t8], same)
    fx.add(name, [t8], "YX", "uint8 [300, 520], 256x256 tiles (2 x 3, the last row and column partial), Deflate")
    t16 = np.stack([(t8s * 257 + k) for k in range(2)])  # [2, 272, 300]
    name = "tiled_planar_zstd_uint16"
    tifffile.imwrite(fx.path(name), t16, tile=(256, 256), compression="zstd", photometric="minisblack",
                     planarconfig="separate")
    e = np.moveaxis(t16, 0, -1).copy()
    check(fx.path(name), [e], chan_last)
    fx.add(name, [e], "YXC", "uint16 [2, 272, 300] planar separate, 256x256 tiles (2 x 2 per plane), Zstd: [272, 300, 2]")

    # Refused: what cannot be returned exactly.
    name = "complex64"
    tifffile.imwrite(fx.path(name), (gray("float32") + 1j * gray("float32").T.copy().reshape(Y, X)).astype(np.complex64))
    fx.refuse(name, "complex", "SampleFormat 6 (complex IEEE float), 64 bits: refused, exit 2")
    name = "bilevel_1bit"
    r, c = grid()
    tifffile.imwrite(fx.path(name), ((r + c) % 3 == 0))
    with tifffile.TiffFile(fx.path(name)) as t:
        assert t.pages[0].bitspersample == 1
    fx.refuse(name, "1-bit", "imwrite of a bool array: BitsPerSample 1 (the tag left out: its default), "
                             "Photometric MinIsWhite: refused, exit 2")
    name = "packed_12bit"
    p12 = ((r * 48 + c) * 7 % 4096).astype(np.uint16)
    tifffile.imwrite(fx.path(name), p12, bitspersample=12)
    with tifffile.TiffFile(fx.path(name)) as t:
        assert t.pages[0].bitspersample == 12 and t.pages[0].databytecounts[0] == Y * X * 12 // 8
        assert np.array_equal(t.asarray(), p12)
    fx.refuse(name, "12-bit", "uint16 values < 4096 written with bitspersample=12: 12-bit packed, 2880 bytes "
                              "for 40x48: refused, exit 2")

    fx.write_manifest()
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{len(fx.rows)} fixtures, {total} bytes in {out}")


if __name__ == "__main__":
    main()
