"""3-D dynamics: cpipc's masks_from_flows_3d (`cpipc masks` on a [4, Z, Y, X]
flows .npy, CPU, OpenMP) against Cellpose 4's compute_masks(do_3D=True) +
fill_holes_and_remove_small_masks (torch on the CPU) on the same flows: a
64 x 512 x 512 stack of ~700 ellipsoids (tools/dynamics/make_fixtures.py's
`bench3d` case). Medians of N runs each; prints one markdown row (and the
table header with --header), and whether the masks are identical.

    ~/.cache/cpipc/cellpose-venv/bin/python benchmarks/dynamics3d_bench.py \\
        [--cpipc build-release/cpipc] [--repeats 3] [--cellpose-repeats N] [--work DIR] [--header]

Cellpose takes minutes a run at this size: --cellpose-repeats (default
--repeats) can ask for fewer of its runs.

Run it with the Cellpose venv's python (it imports cellpose and torch).
"""
import argparse, json, os, platform, subprocess, sys, time
import numpy as np

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cellpose_run(flows):
    import torch
    from cellpose import dynamics, utils
    masks = dynamics.compute_masks(flows[:3], flows[3], niter=200, cellprob_threshold=0.0, do_3D=True,
                                   max_size_fraction=0.4, device=torch.device("cpu"))
    return utils.fill_holes_and_remove_small_masks(masks, min_size=15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpipc", default=os.path.join(repo, "build-release", "cpipc"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cellpose-repeats", type=int, default=None)
    ap.add_argument("--work", default=os.path.join(repo, "benchmarks", "results", "dynamics3d"))
    ap.add_argument("--header", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    flows_path = os.path.join(args.work, "bench3d_flows.npy")
    if not os.path.exists(flows_path):
        subprocess.run([sys.executable, os.path.join(repo, "tools", "dynamics", "make_fixtures.py"), args.work,
                        "--cases", "bench3d"], check=True, stdout=subprocess.DEVNULL)
    flows = np.load(flows_path).astype(np.float32)

    out = os.path.join(args.work, "bench3d_cpipc.npy")
    r = subprocess.run([args.cpipc, "masks", "--flows", flows_path, "-o", out, "--json", "--repeat",
                        str(args.repeats)], check=True, capture_output=True, text=True)
    ours = json.loads(r.stdout)

    import torch
    times = []
    for _ in range(args.cellpose_repeats or args.repeats):
        t0 = time.perf_counter()
        theirs = cellpose_run(flows)
        times.append(time.perf_counter() - t0)
    cellpose_ms = 1000 * float(np.median(times))
    mine = np.load(out)
    identical = mine.shape == theirs.shape and np.array_equal(mine.astype(np.uint32), theirs.astype(np.uint32))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    if args.header:
        print(f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC with `benchmarks/dynamics3d_bench.py "
              f"--repeats {args.repeats} --cellpose-repeats {args.cellpose_repeats or args.repeats}` on {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; medians; "
              f"Cellpose on torch CPU ({torch.get_num_threads()} threads), cpipc with OpenMP.\n")
        print("| stack | foreground voxels | Cellpose 3-D | cpipc 3-D | speed-up | objects (Cellpose / cpipc) "
              "| identical masks |")
        print("|---|---:|---:|---:|---:|---|---|")
    shape = "x".join(str(v) for v in flows.shape[1:])
    fg = int((flows[3] > 0).sum())
    print(f"| {shape} | {fg} | {cellpose_ms:.0f} ms | {ours['dynamics_ms']:.0f} ms | "
          f"{cellpose_ms / ours['dynamics_ms']:.1f}x | {int(theirs.max())} / {ours['objects']} | "
          f"{'yes' if identical else 'no'} |")


if __name__ == "__main__":
    sys.exit(main())
