#!/usr/bin/env bash
# Do our latency buckets resolve a sub-millisecond model? Serves the identity model (the runtime
# with no compute) from the release build on 127.0.0.1 and compares the p50 and p99 that
# Prometheus would read from `inference_latency_seconds` (the bucket deltas of each run,
# interpolated as histogram_quantile does) with k6's (`http_req_duration`): each pair must fall in
# the same bucket or in neighbouring ones. The server is pinned to CPU 0 and k6 to CPU 1
# (`taskset`), so k6's own scheduling stays out of the server's figures and the other way round.
# BUCKETS (comma-separated bounds) overrides metrics.latency_buckets. Runs, DURATION_S seconds each (default 10):
#   c1        one user sending back to back (closed loop): k6 and the server never wait for each
#             other's CPU, so k6's clock measures the server. Judged.
#   r<RATE>   an open loop at RATE requests/s (default 1000: a fifth of the c1 throughput), the
#             way clients arrive at a server that is not saturated. Reported, not judged: its k6
#             p99 is k6's own jitter, as the next run shows;
#   floor     the same open loop on GET /health, which does no work: the round trip k6 and
#             loopback add to a request whatever the server does (its p99 is itself above the
#             histogram's 0.5 ms bucket). Reported;
#   c8        eight users back to back: the server's core saturated. Reported, not judged: the
#             time a request waits in the socket before the server reads it is on k6's clock and
#             on no in-process timer (ours, Triton's or any), so k6's p99 sits above the
#             histogram's by that wait.
# Writes target/bench-quantiles/quantiles.json; --record copies it to
# benches/results/quantiles.json. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DURATION_S:-10}
rate=${RATE:-1000}
work=target/bench-quantiles
rm -rf "$work"
mkdir -p "$work/repo" "$work/k6"
k6_bin=$(bash scripts/install-k6.sh)
# k6 on CPU 1 (a wrapper, as k6_run calls "$k6").
k6=$work/k6-pinned
printf '#!/bin/sh\nexec taskset -c 1 %s "$@"\n' "$k6_bin" > "$k6"
chmod +x "$k6"
source benches/lib.sh
cargo build --release --quiet --bins
bin=target/release/burnserve
write_identity_echo "$work/repo"
server_config "$work/repo" echo:1 > "$work/serve.toml"
# BUCKETS="0.0001, 0.00025, ..." tries other bucket bounds (metrics.latency_buckets).
[ -n "${BUCKETS:-}" ] && printf '[metrics]\nlatency_buckets = [%s]\n' "$BUCKETS" >> "$work/serve.toml"

port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve /ready taskset -c 0 env BURNSERVE__SERVER__PORT="$port" "$bin" --config "$work/serve.toml"
run() { # NAME VUS [RATE]
  curl -sf "$base/metrics" > "$work/before-$1.txt"
  DISCARD_BODIES=1 RATE=${3:-0} k6_run "$1" /v1/models/echo/predict "$2"
  curl -sf "$base/metrics" > "$work/after-$1.txt"
}
run c1 1
run "r$rate" 16 "$rate"
run c8 8
METHOD=GET DISCARD_BODIES=1 RATE=$rate k6_run floor /health 16
stop_server

python3 - "$work" "$rate" "${1:-}" <<'PY'
import json, math, re, sys
work, rate, record = sys.argv[1], sys.argv[2], sys.argv[3] == "--record"

def buckets(path):
    """Cumulative counts of inference_latency_seconds_bucket for echo/1, by upper bound."""
    out = {}
    for line in open(path):
        if not line.startswith("inference_latency_seconds_bucket{"):
            continue
        if 'model="echo"' not in line or 'version="1"' not in line:
            continue
        le = re.search(r'le="([^"]+)"', line).group(1)
        bound = math.inf if le == "+Inf" else float(le)
        out[bound] = out.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return out

def quantile(q, cumulative):
    """Prometheus's histogram_quantile: linear within the bucket the rank falls in."""
    bounds = sorted(cumulative)
    total = cumulative[math.inf]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = cumulative[upper]
        if count >= rank:
            if upper == math.inf:
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower

def bucket_index(value, bounds):
    for i, upper in enumerate(bounds):
        if value <= upper:
            return i
    return len(bounds)

result = {"runs": [], "ok": True}
for name, judged in (("c1", True), (f"r{rate}", False), ("c8", False)):
    before, after = buckets(f"{work}/before-{name}.txt"), buckets(f"{work}/after-{name}.txt")
    delta = {b: after[b] - before.get(b, 0.0) for b in after}
    bounds = sorted(b for b in delta if b != math.inf)
    k6 = json.load(open(f"{work}/k6/{name}.json"))
    run = {"run": name, "vus": k6["vus"], "rate": k6.get("rate"), "judged": judged,
           "requests_in_histogram": delta[math.inf], "k6_requests": k6["requests"],
           "k6_dropped_iterations": k6.get("dropped_iterations", 0),
           "server_cpu_cores": round(k6["server_cpu_cores"], 3)}
    for q, key in ((0.5, "p50_ms"), (0.99, "p99_ms")):
        ours = quantile(q, delta) * 1000
        theirs = k6[key]
        apart = abs(bucket_index(ours / 1000, bounds) - bucket_index(theirs / 1000, bounds))
        run[key] = {"histogram": round(ours, 3), "k6": round(theirs, 3), "buckets_apart": apart}
        run["ok"] = run.get("ok", True) and apart <= 1
    if judged:
        result["ok"] = result["ok"] and run["ok"]
    result["runs"].append(run)
    print(f"{name}{'' if judged else ' (not judged)'}: p50 histogram {run['p50_ms']['histogram']} ms vs k6 {run['p50_ms']['k6']} ms "
          f"({run['p50_ms']['buckets_apart']} bucket(s) apart); p99 {run['p99_ms']['histogram']} ms vs "
          f"k6 {run['p99_ms']['k6']} ms ({run['p99_ms']['buckets_apart']} apart)")
floor = json.load(open(f"{work}/k6/floor.json"))
result["k6_floor_get_health"] = {"rate": floor.get("rate"), "p50_ms": round(floor["p50_ms"], 3),
                                 "p99_ms": round(floor["p99_ms"], 3)}
print(f"floor (GET /health at {floor.get('rate')}/s, not judged): k6 p50 {floor['p50_ms']:.3f} ms, "
      f"p99 {floor['p99_ms']:.3f} ms")
json.dump(result, open(f"{work}/quantiles.json", "w"), indent=2)
if record:
    json.dump(result, open("benches/results/quantiles.json", "w"), indent=2)
if not result["ok"]:
    print("quantiles: a histogram quantile is more than one bucket from k6's", file=sys.stderr)
    sys.exit(1)
print("quantiles: every histogram p50/p99 within one bucket of k6's")
PY
