"""Turns the rounds of one run_segment_bench.sh run into results.json and results.md.

Reads cpipc-<round>-*.json (Google Benchmark's JSON) and seed-<round>-*.json
(seed_baseline.py) from the run's folder. Every number reported is the median
over the rounds. A ratio is the median over the rounds of cpipc / seed within
the round (the two ran back to back), with its range over the rounds.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import statistics

# The goals: frames/s per reader vs the seed, by frame side; attach median.
FPS_GOALS = {512: 5.0, 2048: 2.0}
ATTACH_GOAL_US = 50.0


def short_name(gbench_name):
    """'fps/lease/512/1/iterations:1/manual_time' -> 'fps/lease/512/1'."""
    return "/".join(p for p in gbench_name.split("/") if ":" not in p and p != "manual_time")


def load_rounds(folder):
    rounds = {}  # round number -> {"results": {name: result}, "seed_context": ..., "cpipc_context": ...}
    for path in sorted(glob.glob(os.path.join(folder, "*-*.json"))):
        side, number = os.path.basename(path).split("-")[:2]
        r = rounds.setdefault(int(number), {"results": {}, "seed_context": {"checksum_us": {}}})
        with open(path) as f:
            data = json.load(f)
        if side == "cpipc":
            r["cpipc_context"] = data["context"]
            for b in data["benchmarks"]:
                if b.get("error_occurred"):
                    raise SystemExit(f"cpipc benchmark {b['name']} failed: {b.get('error_message')}")
                r["results"][short_name(b["name"])] = b
        else:
            for b in data["benchmarks"]:
                r["results"][b["name"]] = b
            r["seed_context"]["checksum_us"].update(data.pop("checksum_us"))
            r["seed_context"].update({k: v for k, v in data.items() if k != "benchmarks"})
    if not rounds:
        raise SystemExit(f"no rounds in {folder}")
    return [rounds[n] for n in sorted(rounds)]


def median(rounds, name, key):
    return statistics.median(r["results"][name][key] for r in rounds)


def machine(gbench_context):
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mhz": gbench_context.get("mhz_per_cpu"),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
    }


def summarize(rounds):
    latency = {}
    for name in ("attach/512", "attach/2048", "wake_latency"):
        latency[name] = {"p50_us": median(rounds, name, "p50_us"), "p99_us": median(rounds, name, "p99_us")}
    latency["check_producer"] = {"mean_us": median(rounds, "check_producer", "real_time")}
    fps = []
    for side in (512, 2048):
        for readers in (1, 8):
            row = {"side": side, "readers": readers}
            for label, name in (
                ("lease", f"fps/lease/{side}/{readers}"),
                ("copy", f"fps/copy/{side}/{readers}"),
                ("seed", f"seed/{side}/{readers}"),
            ):
                for key in ("reader_fps", "reader_fps_min", "producer_fps"):
                    row[f"{label}_{key}"] = median(rounds, name, key)
            for label in ("lease", "copy"):
                ratios = [
                    r["results"][f"fps/{label}/{side}/{readers}"]["reader_fps"]
                    / r["results"][f"seed/{side}/{readers}"]["reader_fps"]
                    for r in rounds
                ]
                row[f"{label}_ratio"] = statistics.median(ratios)
                row[f"{label}_ratio_range"] = [min(ratios), max(ratios)]
                row[f"{label}_ratio_of_medians"] = row[f"{label}_reader_fps"] / row["seed_reader_fps"]
            row["goal_ratio"] = FPS_GOALS[side]
            row["goal_met"] = row["lease_ratio"] >= FPS_GOALS[side]
            row["lease_taken_back_max"] = max(r["results"][f"fps/lease/{side}/{readers}"]["taken_back"] for r in rounds)
            # Both sides must have checksummed the same frame.
            ours = {r["results"][f"fps/lease/{side}/{readers}"]["expected_checksum"] for r in rounds}
            theirs = {r["results"][f"seed/{side}/{readers}"]["expected_checksum"] for r in rounds}
            if ours != theirs or len(ours) != 1:
                raise SystemExit(f"checksums differ at {side}x{side}: cpipc {ours}, seed {theirs}")
            fps.append(row)
    checksum_us = {
        side: {
            "cpipc": median(rounds, f"checksum/{side}", "real_time"),
            "seed": statistics.median(r["seed_context"]["checksum_us"][str(side)] for r in rounds),
        }
        for side in (512, 2048)
    }
    attach_met = all(latency[f"attach/{s}"]["p50_us"] < ATTACH_GOAL_US for s in (512, 2048))
    return {"latency": latency, "fps": fps, "checksum_us": checksum_us, "attach_goal_met": attach_met}


def markdown(report):
    m, s, seed = report["machine"], report["summary"], report["seed_versions"]
    lat = s["latency"]
    yes = lambda met: "**met**" if met else "**NOT met**"
    lines = [
        f"Measured {report['date']} with `{report['command']}`: {report['rounds']} round(s); in each, every case "
        "ran on both sides back to back. Every number is the median over the rounds; a ratio is the median of "
        "the rounds' cpipc / seed ratios (range over the rounds in parentheses).",
        f"Machine: {m['cpu']} ({m['mhz']} MHz), {m['nproc']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average {report['load_before']} before, {report['load_after']} after. "
        f"Seed: Python {seed['python']}, numpy {seed['numpy']}, start method {seed['start_method']}.",
        "",
        "| cpipc latency | median | p99 | goal |",
        "|---|---:|---:|---|",
    ]
    for side in (512, 2048):
        a = lat[f"attach/{side}"]
        lines.append(
            f"| attach + detach, {side}² uint32 segment, 4 slots | {a['p50_us']:.1f} µs | {a['p99_us']:.1f} µs "
            f"| median < {ATTACH_GOAL_US:.0f} µs: {yes(a['p50_us'] < ATTACH_GOAL_US)} |"
        )
    w = lat["wake_latency"]
    lines.append(
        f"| publish → wake-up of a reader blocked in wait_next in another process "
        f"| {w['p50_us']:.1f} µs | {w['p99_us']:.1f} µs | – |"
    )
    check = lat["check_producer"]["mean_us"]
    lines.append(f"| check_producer (wait_next pays it each time it sleeps) | {check:.1f} µs (mean) | – | – |")
    lines += [
        "",
        "| frame (uint32) | readers | cpipc lease fps/reader | cpipc copy fps/reader | seed fps/reader "
        "| lease / seed | copy / seed | goal (lease / seed) | cpipc producer fps (lease) | seed producer fps |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in s["fps"]:
        lines.append(
            f"| {r['side']}² | {r['readers']} | {r['lease_reader_fps']:.0f} | {r['copy_reader_fps']:.0f} "
            f"| {r['seed_reader_fps']:.0f} | {r['lease_ratio']:.2f}x ({r['lease_ratio_range'][0]:.1f}–"
            f"{r['lease_ratio_range'][1]:.1f}) | {r['copy_ratio']:.2f}x "
            f"| ≥ {r['goal_ratio']:.0f}x: {yes(r['goal_met'])} | {r['lease_producer_fps']:.0f} "
            f"| {r['seed_producer_fps']:.0f} |"
        )
    c = s["checksum_us"]
    lines += [
        "",
        "Checksum pass alone (sum of the uint32 elements mod 2³², one read of the frame), per frame: "
        + "; ".join(f"{side}²: C++ loop {c[side]['cpipc']:.0f} µs, numpy {c[side]['seed']:.0f} µs" for side in c)
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the run's folder under benchmarks/results")
    parser.add_argument("--command", required=True, help="the command line that made the run")
    parser.add_argument("--load-before", default="?", help="/proc/loadavg at the start of the run")
    args = parser.parse_args()

    rounds = load_rounds(args.folder)
    with open("/proc/loadavg") as f:
        load_after = " ".join(f.read().split()[:3])
    report = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": args.command,
        "rounds": len(rounds),
        "machine": machine(rounds[0]["cpipc_context"]),
        "load_before": args.load_before,
        "load_after": load_after,
        "seed_versions": {k: rounds[0]["seed_context"][k] for k in ("python", "numpy", "start_method")},
        "summary": summarize(rounds),
        "rounds_raw": rounds,
    }
    table = markdown(report)
    with open(os.path.join(args.folder, "results.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.folder, "results.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
