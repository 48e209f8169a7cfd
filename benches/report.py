#!/usr/bin/env python3
"""Turns one bench run (target/bench-run) into results JSON and a markdown table.

usage: report.py WORK_DIR OUT_DIR MODE DURATION_S
Reads WORK_DIR/k6/*.json (one per scenario) and WORK_DIR/raw-*.json; writes OUT_DIR/bench.json
and OUT_DIR/bench.md. Ratios are computed within this one run only.
"""
import glob
import json
import os
import platform
import sys
import time

work, out, mode, dur = sys.argv[1:5]
runs = {}
for path in sorted(glob.glob(os.path.join(work, "k6", "*.json"))):
    r = json.load(open(path))
    runs[r["name"]] = r
raw = json.load(open(os.path.join(work, "raw-fashion-mlp.json")))


def rate(name):
    """req/s of a scenario; for an A B B A pair, the mean of its two rounds."""
    rounds = [runs[n]["req_per_s"] for n in (f"{name}-r1", f"{name}-r2") if n in runs]
    if rounds:
        return sum(rounds) / len(rounds)
    return runs.get(name, {}).get("req_per_s")


def cpu_us(name):
    """Server CPU microseconds per request of a scenario (both rounds of a pair together)."""
    rounds = [runs[n] for n in (f"{name}-r1", f"{name}-r2") if n in runs] or ([runs[name]] if name in runs else [])
    requests = sum(r["requests"] for r in rounds)
    if not requests:
        return None
    return sum(r["server_cpu_cores"] * r["duration_s"] for r in rounds) * 1e6 / requests


def ratio(a, b):
    return None if not a or not b else a / b


fastapi = max((r for n, r in runs.items() if n.startswith("fastapi")), key=lambda r: r["req_per_s"], default=None)
# Our MLP served at the highest concurrency run: the batching-on rounds (mean req/s, worst p99).
ours_name = "batching-on-c64" if "batching-on-c64-r1" in runs else "batching-on-c8"
ours_rounds = [runs[n] for n in (f"{ours_name}-r1", f"{ours_name}-r2") if n in runs]
ours_fashion = {"req_per_s": rate(ours_name), "p99_ms": max(r["p99_ms"] for r in ours_rounds)} if ours_rounds else None
ratios = {
    "served_over_raw": ratio(ours_fashion and ours_fashion["req_per_s"], raw["best_items_per_s"]),
    "ours_echo_over_bare_actix_echo": ratio(rate("ours-echo-c64"), rate("bare-echo-c64")),
    "batching_gain_c64": ratio(rate("batching-on-c64"), rate("batching-off-c64")),
    "batching_gain_c8": ratio(rate("batching-on-c8"), rate("batching-off-c8")),
    "batching_gain_c1": ratio(rate("batching-on-c1"), rate("batching-off-c1")),
    "cnn_batching_gain_c64": ratio(rate("cnn-batching-on-c64"), rate("cnn-batching-off-c64")),
    "cnn_batching_gain_c8": ratio(rate("cnn-batching-on-c8"), rate("cnn-batching-off-c8")),
    "cnn_batching_gain_c1": ratio(rate("cnn-batching-on-c1"), rate("cnn-batching-off-c1")),
    # The same gains in server CPU per request (off / on): what batching saves the server when
    # k6, on the same cores, is what limits req/s.
    "cnn_batching_cpu_saving_c64": ratio(cpu_us("cnn-batching-off-c64"), cpu_us("cnn-batching-on-c64")),
    "cnn_batching_cpu_saving_c8": ratio(cpu_us("cnn-batching-off-c8"), cpu_us("cnn-batching-on-c8")),
    "minilm_batching_gain_c64": ratio(rate("minilm-batching-on-c64"), rate("minilm-batching-off-c64")),
    "minilm_batching_gain_c8": ratio(rate("minilm-batching-on-c8"), rate("minilm-batching-off-c8")),
    "minilm_batching_gain_c1": ratio(rate("minilm-batching-on-c1"), rate("minilm-batching-off-c1")),
    "minilm_batching_cpu_saving_c64": ratio(cpu_us("minilm-batching-off-c64"), cpu_us("minilm-batching-on-c64")),
    "metrics_on_over_off": ratio(rate("metrics-on-c64"), rate("metrics-off-c64")),
    "metrics_cpu_us_per_request_on": cpu_us("metrics-on-c64"),
    "metrics_cpu_us_per_request_off": cpu_us("metrics-off-c64"),
    "metrics_cpu_per_request_on_over_off": ratio(cpu_us("metrics-on-c64"), cpu_us("metrics-off-c64")),
    "throughput_over_fastapi": ratio(ours_fashion and ours_fashion["req_per_s"], fastapi and fastapi["req_per_s"]),
    "fastapi_p99_over_ours": ratio(fastapi and fastapi["p99_ms"], ours_fashion and ours_fashion["p99_ms"]),
}
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
meta = {
    "mode": mode,
    "seconds_per_scenario": float(dur),
    "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "machine": f"{os.cpu_count()} cores, {cpu_model}, {platform.system()} {platform.release()}",
    "load_generator": "k6 1.1.0 on the same machine, 127.0.0.1",
    "pinned": os.environ.get("PINNED") == "1",
}
json.dump({"meta": meta, "raw_forward": raw, "scenarios": runs, "ratios": ratios}, open(os.path.join(out, "bench.json"), "w"), indent=2)

f = lambda v, d=1: "-" if v is None else f"{v:,.{d}f}"
lines = [
    f"Bench run ({mode}, {dur} s per scenario) — {meta['machine']}; {meta['load_generator']}"
    + ("; server on CPU 0, k6 on CPU 1" if meta["pinned"] else "; not pinned")
    + f"; {meta['finished']}",
    "",
    "| scenario | server | VUs | req/s | p50 ms | p95 ms | p99 ms | failed | server CPU (cores) | server CPU µs/request | server peak RSS MiB |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
for name, r in runs.items():
    if name == "ramp":
        continue
    lines.append(
        f"| {name} | {r.get('server', '?')} | {r['vus']} | {f(r['req_per_s'])} | {f(r.get('p50_ms'), 2)} | {f(r.get('p95_ms'), 2)} "
        f"| {f(r.get('p99_ms'), 2)} | {f(100 * r.get('failed_rate', 0), 2)}% | {f(r.get('server_cpu_cores'), 2)} | {f(cpu_us(name))} | {f(r.get('server_peak_rss_mib'))} |"
    )
if "ramp" in runs:
    lines += ["", "Ramp to saturation (fashion v1 MLP):", "", "| VUs | req/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    lines += [f"| {s['vus']} | {f(s['req_per_s'])} | {f(s['p50_ms'], 2)} | {f(s['p99_ms'], 2)} |" for s in runs["ramp"]["steps"]]
lines += [
    "",
    f"Raw in-process forward, fashion v1 MLP: {', '.join(f'{k} {f(v)}' for k, v in raw['items_per_s'].items())} items/s (best: batch {raw['best_batch']}).",
    "",
    "| ratio (this run) | value |",
    "|---|---|",
]
lines += [f"| {k} | {f(v, 3)} |" for k, v in ratios.items()]
open(os.path.join(out, "bench.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\nwrote {out}/bench.json and {out}/bench.md")
