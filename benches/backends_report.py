#!/usr/bin/env python3
"""Turns one CPU-backend comparison (target/bench-backends) into results JSON and a markdown table.

usage: backends_report.py WORK_DIR OUT_DIR DURATION_S RAW_S
Reads WORK_DIR/raw/BACKEND-MODEL.json (raw_forward lines) and WORK_DIR/k6/BACKEND-MODEL-c16.json;
writes OUT_DIR/backends.json and OUT_DIR/backends.md. Ratios are against plain ndarray in this run.
"""
import glob
import json
import os
import platform
import sys
import time

work, out, dur, raw_s = sys.argv[1:5]
ARCH_NAMES = {"mlp": "MLP (fashion v1)", "cnn": "CNN (fashion v2)", "bert-embedding": "MiniLM-L6"}

raw = {}  # (arch, backend) -> raw_forward line
for path in sorted(glob.glob(os.path.join(work, "raw", "*.json"))):
    r = json.load(open(path))
    raw[(r["architecture"], r["backend"])] = r
served = {}  # (arch, backend) -> k6 summary
for path in sorted(glob.glob(os.path.join(work, "k6", "*.json"))):
    r = json.load(open(path))
    feature, model, _ = r["name"].rsplit("-", 2)
    served[(model, feature)] = r

backends = []
for (_, backend) in raw:
    if backend not in backends:
        backends.append(backend)
order = ["ndarray", "ndarray+simd", "ndarray+openblas", "flex"]
backends.sort(key=lambda b: order.index(b) if b in order else len(order))
features = {"ndarray": "ndarray", "ndarray+simd": "ndarray-simd", "ndarray+openblas": "ndarray-blas", "flex": "flex"}
archs = [a for a in ARCH_NAMES if any(k[0] == a for k in raw)]

f = lambda v, d=0: "-" if v is None else f"{v:,.{d}f}"
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
meta = {
    "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "machine": f"{os.cpu_count()} cores, {cpu_model}, {platform.system()} {platform.release()}",
    "raw_seconds_per_batch": float(raw_s),
    "served_seconds_per_scenario": float(dur),
    "load_generator": "k6 1.1.0 on the same machine, 127.0.0.1, 16 VUs",
}
lines = [
    f"CPU backends — {meta['machine']}; {meta['finished']}",
    "",
    f"In-process forward, items/s ({raw_s} s per cell; ratio to plain ndarray in brackets):",
    "",
    "| model | batch | " + " | ".join(backends) + " |",
    "|---|---|" + "---|" * len(backends),
]
ratios = {}
for arch in archs:
    batches = next(r["items_per_s"] for (a, _), r in raw.items() if a == arch)
    for batch in sorted(batches, key=lambda b: int(b.removeprefix("batch_"))):
        base = raw.get((arch, "ndarray"), {}).get("items_per_s", {}).get(batch)
        cells = []
        for b in backends:
            v = raw.get((arch, b), {}).get("items_per_s", {}).get(batch)
            ratio = v / base if v and base else None
            ratios[f"{arch}/{batch}/{b}"] = ratio
            cells.append(f(v, 1 if v and v < 100 else 0) + ("" if ratio is None or b == "ndarray" else f" ({ratio:.2f}×)"))
        lines.append(f"| {ARCH_NAMES[arch]} | {batch.removeprefix('batch_')} | " + " | ".join(cells) + " |")
lines += [
    "",
    f"Served, k6 16 VUs, {dur} s each: req/s and p99 ms (ratio of req/s to plain ndarray in brackets):",
    "",
    "| model | " + " | ".join(backends) + " |",
    "|---|" + "---|" * len(backends),
]
served_keys = {"mlp": "mlp", "cnn": "cnn", "bert-embedding": "minilm"}
for arch in archs:
    base = served.get((served_keys[arch], "ndarray"), {}).get("req_per_s")
    cells = []
    for b in backends:
        r = served.get((served_keys[arch], features[b]))
        if r is None:
            cells.append("-")
            continue
        ratio = r["req_per_s"] / base if base else None
        ratios[f"served/{arch}/{b}"] = ratio
        extra = "" if ratio is None or b == "ndarray" else f" ({ratio:.2f}×)"
        cells.append(f"{f(r['req_per_s'], 1)} req/s{extra}, p99 {f(r.get('p99_ms'), 1)}")
    lines.append(f"| {ARCH_NAMES[arch]} | " + " | ".join(cells) + " |")

json.dump(
    {
        "meta": meta,
        "raw_forward": {f"{a}/{b}": r for (a, b), r in raw.items()},
        "served": {f"{m}/{b}": r for (m, b), r in served.items()},
        "ratios_to_ndarray": ratios,
    },
    open(os.path.join(out, "backends.json"), "w"),
    indent=2,
)
open(os.path.join(out, "backends.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\nwrote {out}/backends.json and {out}/backends.md")
