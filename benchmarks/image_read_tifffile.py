"""tifffile's side of benchmarks/run_image_read_bench.sh, and the files it reads.

  image_read_tifffile.py make DIR
      Writes the benchmark's 2048 x 2048 uint16 TIFFs into DIR with tifffile:
      deflate.tif (compression='zlib'), deflate_predictor.tif (and
      predictor=True: horizontal differencing) and none.tif (uncompressed).
      The image is a microscope-like field, the same every time (seeded):
      a background of 100, 400 Gaussian cells of 300-3000 counts, Poisson-like
      noise. Prints one JSON line per file (size, strips, rows per strip).

  image_read_tifffile.py time PATH REPEATS [--maxworkers N]
      Times tifffile.imread(PATH) REPEATS times in this process and prints one
      JSON object like bench_image_read's: every run's wall time, the median
      and minimum (ms), shape and dtype, the versions. Without --maxworkers,
      tifffile decodes the strips of one page in a thread pool (its default,
      what a user gets); --maxworkers 1 is one thread.

  image_read_tifffile.py report OUT_DIR
      Reads OUT_DIR/runs.jsonl (one object per timed batch, as the driver
      appends them) and writes OUT_DIR/rows.jsonl and OUT_DIR/results.md:
      per file the medians over all runs of all rounds and the ratio.
"""
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import tifffile

SIZE = 2048


def field():
    rng = np.random.default_rng(20261206)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    img = np.full((SIZE, SIZE), 100.0, np.float32)
    for cy, cx, r, a in zip(rng.uniform(0, SIZE, 400), rng.uniform(0, SIZE, 400), rng.uniform(6, 20, 400),
                            rng.uniform(300, 3000, 400)):
        y0, y1 = int(max(cy - 3 * r, 0)), int(min(cy + 3 * r, SIZE))
        x0, x1 = int(max(cx - 3 * r, 0)), int(min(cx + 3 * r, SIZE))
        img[y0:y1, x0:x1] += a * np.exp(-((y[y0:y1, x0:x1] - cy) ** 2 + (x[y0:y1, x0:x1] - cx) ** 2) / (2 * r * r))
    img += rng.normal(0, 1, img.shape).astype(np.float32) * np.sqrt(img)
    return np.clip(img, 0, 65535).astype(np.uint16)


def make(out):
    os.makedirs(out, exist_ok=True)
    img = field()
    for name, kw in (("deflate", dict(compression="zlib")),
                     ("deflate_predictor", dict(compression="zlib", predictor=True)),
                     ("none", {})):
        path = os.path.join(out, name + ".tif")
        tifffile.imwrite(path, img, **kw)
        with tifffile.TiffFile(path) as t:
            p = t.pages[0]
            assert np.array_equal(p.asarray(), img)
            print(json.dumps({"file": name, "path": path, "bytes": os.path.getsize(path), "shape": list(p.shape),
                              "dtype": str(p.dtype), "compression": p.compression.name, "predictor": int(p.predictor),
                              "strips": len(p.dataoffsets), "rowsperstrip": int(p.rowsperstrip)}))


def time_reads(path, repeats, maxworkers):
    kw = {} if maxworkers is None else {"maxworkers": maxworkers}
    runs = []
    a = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = tifffile.imread(path, **kw)
        t1 = time.perf_counter()
        runs.append((t1 - t0) * 1000)
        del a  # freed outside the timed part, as bench_image_read's result
    try:
        import imagecodecs
        ic = imagecodecs.__version__
    except ImportError:
        ic = None
    s = sorted(runs)
    print(json.dumps({"reader": "tifffile" if maxworkers is None else f"tifffile-{maxworkers}t", "path": path,
                      "repeats": repeats, "median_ms": statistics.median(s), "min_ms": s[0],
                      "maxworkers": maxworkers, "tifffile": tifffile.__version__, "imagecodecs": ic,
                      "numpy": np.__version__, "runs_ms": runs}))


def report(out):
    runs = [json.loads(line) for line in open(os.path.join(out, "runs.jsonl")) if line.strip()]
    files = [json.loads(line) for line in open(os.path.join(out, "files.jsonl")) if line.strip()]
    rows = []
    for f in files:
        def med(reader):
            xs = [t for r in runs if r["file"] == f["file"] and r["reader"] == reader for t in r["runs_ms"]]
            return (statistics.median(xs), len(xs)) if xs else (None, 0)
        ours, n = med("cpipc")
        theirs, _ = med("tifffile")
        one, _ = med("tifffile-1t")
        rows.append({"case": f["file"], "bytes": f["bytes"], "strips": f["strips"], "cpipc_ms": ours,
                     "tifffile_ms": theirs, "tifffile_1thread_ms": one, "runs_each": n,
                     "ratio": ours / theirs if ours and theirs else None,
                     "met": bool(ours and theirs and ours <= theirs)})
    with open(os.path.join(out, "rows.jsonl"), "w") as w:
        for r in rows:
            w.write(json.dumps(r) + "\n")
    meta = next((r for r in runs if r["reader"] == "tifffile"), {})
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC with `benchmarks/run_image_read_bench.sh`"
             f" on {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; tifffile {meta.get('tifffile')},"
             f" imagecodecs {meta.get('imagecodecs')}. 2048 x 2048 uint16, medians of every run of every round"
             " (each side run alternately, in its own process, the file in the page cache).",
             "Goal (issue 14): cpipc no slower than tifffile (its default thread pool).", "",
             "| file | size | strips | cpipc | tifffile | tifffile, 1 thread | cpipc / tifffile | met? |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    def ms(v):
        return f"{v:.2f} ms" if v is not None else "-"
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['case']} | {r['bytes'] / 1024:.0f} KiB | {r['strips']} | {ms(r['cpipc_ms'])} |"
                     f" {ms(r['tifffile_ms'])} | {ms(r['tifffile_1thread_ms'])} | {ratio} |"
                     f" {'yes' if r['met'] else 'no'} |")
    with open(os.path.join(out, "results.md"), "w") as w:
        w.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        return make(sys.argv[2])
    if len(sys.argv) >= 4 and sys.argv[1] == "time":
        mw = None
        if len(sys.argv) == 6 and sys.argv[4] == "--maxworkers":
            mw = int(sys.argv[5])
        return time_reads(sys.argv[2], int(sys.argv[3]), mw)
    if len(sys.argv) == 3 and sys.argv[1] == "report":
        return report(sys.argv[2])
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
