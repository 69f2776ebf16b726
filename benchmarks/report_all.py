"""One report for benchmarks/run_all.sh: report.json, report.md, report.png.

    ~/.cache/cpipc/bench-venv/bin/python benchmarks/report_all.py RUN_DIR [--command TEXT]

Reads RUN_DIR/status.txt (one line per benchmark: name, exit status, its
results folder, seconds[, why it was skipped]) and each benchmark's own output:
segment: results.json (report.py); dynamics: rows.jsonl (run_dynamics_bench.sh);
model: results.json (model_report.py); service: results.json (service_bench.py);
gpu: rows.jsonl (tools/gpu/dynamics_vs_cellpose.sh --json-out). Reports only
what those files hold; a benchmark that failed or was skipped says so.
"""

import argparse
import datetime
import json
import os
import platform

OK = "**met**"
NOT = "**NOT met**"


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def row(case, ours, baseline, ratio, goal="–", met=None, unit=""):
    return {"case": case, "ours": ours, "baseline": baseline, "ratio": ratio, "goal": goal, "met": met, "unit": unit}


def segment(folder):
    r = read_json(os.path.join(folder, "results.json"))
    s = r["summary"]
    rows = []
    for side in (512, 2048):
        a = s["latency"][f"attach/{side}"]
        rows.append(row(f"attach + detach, {side}² uint32 segment (median)", a["p50_us"], None, None, "< 50 µs",
                        a["p50_us"] < 50, "µs"))
    w = s["latency"]["wake_latency"]
    rows.append(row("publish → reader's wake-up (median)", w["p50_us"], None, None, unit="µs"))
    plot = {"ours": {}, "baseline": {}}
    for f in s["fps"]:
        rows.append(row(f"{f['side']}² uint32, {f['readers']} reader(s): frames/s per reader (lease vs seed)",
                        f["lease_reader_fps"], f["seed_reader_fps"], f["lease_ratio"], f"≥ {f['goal_ratio']:g}x",
                        f["goal_met"], "fps"))
        if f["readers"] == 1:  # per-frame hand-over time, for the plot
            plot["ours"][f["side"]] = 1e3 / f["lease_reader_fps"]
            plot["baseline"][f["side"]] = 1e3 / f["seed_reader_fps"]
    meta = {"machine": r["machine"], "date": r["date"], "command": r["command"], "rounds": r["rounds"],
            "load": {"before": r["load_before"], "after": r["load_after"]}}
    return rows, meta, {"title": "segment: ms per frame, 1 reader (cpipc lease vs seed)", "series": plot}


def dynamics(folder, baseline_name="Cellpose"):
    rows, plot = [], {"ours qc": {}, "baseline qc": {}, "ours noqc": {}, "baseline noqc": {}}
    for d in read_jsonl(os.path.join(folder, "rows.jsonl")):
        size = int(d["case"].replace("dense", ""))
        goal, met = "–", None
        if d["qc"] == "qc":
            goal, met = "≥ 20x", d["speedup"] >= 20
            if size == 1024:
                goal, met = "≥ 20x and < 150 ms", d["speedup"] >= 20 and d["cpipc_ms"] < 150
        rows.append(row(f"{size}² {d['qc']} (masks identical: {'yes' if d['identical'] else 'NO'}, "
                        f"{d['cpipc_objects']} objects)", d["cpipc_ms"], d["cellpose_ms"], d["speedup"], goal, met,
                        "ms"))
        plot[f"ours {d['qc']}"][size] = d["cpipc_ms"]
        plot[f"baseline {d['qc']}"][size] = d["cellpose_ms"]
    md = os.path.join(folder, "results.md")
    meta = {"header": open(md).readline().strip()} if os.path.exists(md) else {}
    return rows, meta, {"title": f"dynamics: ms (cpipc vs {baseline_name})", "series": plot}


def model(folder):
    r = read_json(os.path.join(folder, "results.json"))
    rows, plot = [], {"ours": {}, "baseline": {}, "ours one-image process": {}, "baseline one-image process": {}}
    for d in r["rows"]:
        ratio = d["ratio_total"]["median"]  # issue 17: >= 2x Cellpose's eval per image at 512² and 1024²
        rows.append(row(f"{d['size']}² s/image, warm (AP@0.5 vs Cellpose {d['ap50']:.3f})", d["cpipc_s"],
                        d["cellpose_s"], ratio, goal="≥ 2x", met=ratio >= 2, unit="s"))
        rows.append(row(f"{d['size']}² one-image process (start, load, segment)", d["cpipc_once_wall_s"],
                        d["cellpose_once_wall_s"], d["ratio_once_wall"]["median"], unit="s"))
        plot["ours"][d["size"]] = d["cpipc_s"] * 1e3
        plot["baseline"][d["size"]] = d["cellpose_s"] * 1e3
        plot["ours one-image process"][d["size"]] = d["cpipc_once_wall_s"] * 1e3
        plot["baseline one-image process"][d["size"]] = d["cellpose_once_wall_s"] * 1e3
    return rows, r.get("meta", {}), {"title": "model: ms per image (cpipc segment vs Cellpose eval)", "series": plot}


def service(folder):
    r = read_json(os.path.join(folder, "results.json"))
    rows, plot = [], {}
    for c in r["cases"]:
        m = c["medians"]
        tag = f"{c['size']}², {c['clients']} client(s) × {c['requests']}"
        rows.append(row(f"{tag}: requests/s vs standalone Cellpose per client", m["cpipc"]["rps"],
                        m["standalone"]["rps"], c["rps_ratio_standalone"]["median"], unit="req/s"))
        rows.append(row(f"{tag}: requests/s vs seed server (new block per call)", m["cpipc"]["rps"], m["seed"]["rps"],
                        c["rps_ratio_seed"]["median"], unit="req/s"))
        rows.append(row(f"{tag}: latency p50 vs standalone", m["cpipc"]["p50_ms"] / 1e3,
                        m["standalone"]["p50_ms"] / 1e3, c["p50_ratio_standalone"]["median"], unit="s"))
        rows.append(row(f"{tag}: latency p99 vs standalone", m["cpipc"]["p99_ms"] / 1e3,
                        m["standalone"]["p99_ms"] / 1e3, m["standalone"]["p99_ms"] / m["cpipc"]["p99_ms"], unit="s"))
        rows.append(row(f"{tag}: latency p50 vs seed", m["cpipc"]["p50_ms"] / 1e3, m["seed"]["p50_ms"] / 1e3,
                        c["p50_ratio_seed"]["median"], unit="s"))
        rows.append(row(f"{tag}: latency p99 vs seed", m["cpipc"]["p99_ms"] / 1e3, m["seed"]["p99_ms"] / 1e3,
                        m["seed"]["p99_ms"] / m["cpipc"]["p99_ms"], unit="s"))
        fb_ours, fb_seed = m["cpipc"]["first_byte_us_p50"], m["seed"]["first_byte_us_p50"]
        if fb_ours is not None and fb_seed is not None:
            rows.append(row(f"{tag}: result → consumer's first byte p50", fb_ours, fb_seed, fb_seed / fb_ours,
                            unit="µs"))
        for side in ("cpipc", "standalone", "seed"):
            plot.setdefault(f"{side} C={c['clients']}", {})[c["size"]] = m[side]["p50_ms"]
    meta = {"machine": r["machine"], "date": r["date"], "command": r["command"], "options": r["options"],
            "load": {"before": r["load_before"], "after": r["load_after"], "quiet_wait": r.get("quiet")}}
    return rows, meta, {"title": "service: p50 latency ms (submit → masks copied)", "series": plot}


READERS = {"segment": segment, "dynamics": dynamics, "model": model, "service": service,
           "gpu": lambda f: dynamics(f, "Cellpose on the GPU")}
BASELINES = {
    "segment": "the seed's pattern: a new multiprocessing.shared_memory block per frame (seed_baseline.py)",
    "dynamics": "Cellpose 4.2.1.1 compute_masks + fill_holes_and_remove_small_masks, torch CPU",
    "model": "Cellpose 3.1.1.2's own eval on the same TorchScript weights, CPU",
    "service": "each client process runs Cellpose 3.1.1.2 itself (standalone); a Python Cellpose server that "
               "returns each result in a new shared block (seed)",
    "gpu": "Cellpose 4.2.1.1's own GPU dynamics on the same GPU",
}
RATIO = {"segment": "cpipc / seed", "dynamics": "Cellpose / cpipc", "model": "Cellpose / cpipc",
         "service": "baseline / cpipc for times, cpipc / baseline for req/s", "gpu": "Cellpose / cpipc"}


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 2**20
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"cpu": cpu, "nproc": os.cpu_count(), "memory_gib": round(mem, 1), "kernel": platform.release(),
            "hostname": platform.node(), "load_at_report": load}


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.3g}"


def plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(n, b["plot"]) for n, b in report["benchmarks"].items() if b.get("plot")]
    if not panels:
        return False
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
    for ax, (name, p) in zip(axes.flat, panels):
        for label, pts in sorted(p["series"].items()):
            if not pts:
                continue
            xs = sorted(int(k) for k in pts)
            ys = [pts[k] if k in pts else pts[str(k)] for k in xs]
            style = "-o" if label.startswith(("ours", "cpipc")) else "--s"
            ax.plot(xs, ys, style, label=label, markersize=4)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("image side (px)")
        ax.set_ylabel("ms")
        ax.set_title(p["title"], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"cpipc benchmarks, {report['date']} ({report['machine']['cpu']}, {report['machine']['nproc']} cores)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--command", default="benchmarks/run_all.sh")
    a = ap.parse_args()
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": a.command, "machine": machine(), "benchmarks": {}}
    with open(os.path.join(a.run, "status.txt")) as f:
        status = [line.split(maxsplit=4) for line in f if line.strip()]
    for name, rc, folder, secs, *why in status:
        b = {"exit_status": rc, "results_dir": folder, "seconds": int(secs)}
        if rc == "skipped":
            b["status"] = "skipped: " + (why[0].strip() if why else "")
        elif rc != "0" or folder == "none":
            b["status"] = f"failed (exit {rc}); see log.txt"
        else:
            try:
                rows, meta, p = READERS[name](folder)
                b.update(status="ok", rows=rows, meta=meta, plot=p)
            except (OSError, KeyError, ValueError) as e:
                b["status"] = f"ran, but its results could not be read: {e!r}"
        report["benchmarks"][name] = b
    with open(os.path.join(a.run, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    has_png = plot(report, os.path.join(a.run, "report.png"))

    m = report["machine"]
    out = [f"# Benchmarks, {report['date']}", "",
           f"`{report['command']}` on {m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
           f"load average at the end {' '.join(m['load_at_report'])}. Every number comes from the benchmark's own "
           "results file (folder named in each section); ratios > 1 mean cpipc is better.", ""]
    if has_png:
        out += ["![latency against image size](report.png)", ""]
    for name, b in report["benchmarks"].items():
        out.append(f"## {name}")
        out.append("")
        if b["status"] != "ok":
            out += [f"{b['status']}.", ""]
            continue
        meta = b["meta"]
        if meta.get("header"):
            extra = meta["header"]
        elif meta.get("load_average_before_after"):  # model_report.py's meta
            extra = (f"measured {meta.get('measured')}, {meta.get('rounds')} rounds; load average per round, before → "
                     "after: " + "; ".join(f"{x} → {y}" for x, y in meta["load_average_before_after"]))
        elif meta:
            load = meta.get("load", {})
            extra = (f"`{meta.get('command', '')}`, measured {meta.get('date', '')}; load average "
                     f"{load.get('before')} before, {load.get('after')} after"
                     + (f"; waited for a quiet machine: {load['quiet_wait']}" if load.get("quiet_wait") else ""))
        else:
            extra = ""
        out += [f"Results: `{b['results_dir']}` ({b['seconds']} s). Baseline: {BASELINES[name]}. "
                f"Ratio: {RATIO[name]}.", ""]
        if extra:
            out += [f"<sub>{extra}</sub>", ""]
        out += ["| case | ours | baseline | ratio | goal | met? |", "|---|---:|---:|---:|---|---|"]
        for r in b["rows"]:
            unit = f" {r['unit']}" if r["unit"] else ""
            ours = fmt(r["ours"]) + unit
            base = fmt(r["baseline"]) + unit if r["baseline"] is not None else "–"
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "–"
            met = "–" if r["met"] is None else (OK if r["met"] else NOT)
            out.append(f"| {r['case']} | {ours} | {base} | {ratio} | {r['goal']} | {met} |")
        out.append("")
    with open(os.path.join(a.run, "report.md"), "w") as f:
        f.write("\n".join(out))
    print("\n".join(out))
    print(f"wrote {a.run}/report.json, report.md" + (", report.png" if has_png else ""))


if __name__ == "__main__":
    main()
