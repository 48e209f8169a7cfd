#!/usr/bin/env bash
# Do our latency buckets resolve a sub-millisecond model? Serves the identity model (the runtime
# with no compute) from the release build on 127.0.0.1, drives it with k6 at 1 and 8 VUs for
# DURATION_S seconds each (default 10), and compares the p50 and p99 that Prometheus would read
# from `inference_latency_seconds` (the bucket deltas of the run, interpolated as
# histogram_quantile does) with k6's (`http_req_duration`): each pair must fall in the same
# bucket or in neighbouring ones. k6 measures the HTTP round trip as well, so its figures sit
# above the histogram's. Writes target/bench-quantiles/quantiles.json; --record copies it to
# benches/results/quantiles.json. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DURATION_S:-10}
work=target/bench-quantiles
rm -rf "$work"
mkdir -p "$work/repo" "$work/k6"
k6=$(bash scripts/install-k6.sh)
source benches/lib.sh
cargo build --release --quiet --bins
bin=target/release/burnserve
write_identity_echo "$work/repo"
server_config "$work/repo" echo:1 > "$work/serve.toml"

port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve /ready env BURNSERVE__SERVER__PORT="$port" "$bin" --config "$work/serve.toml"
for vus in 1 8; do
  curl -sf "$base/metrics" > "$work/before-$vus.txt"
  k6_run "echo-c$vus" /v1/models/echo/predict "$vus"
  curl -sf "$base/metrics" > "$work/after-$vus.txt"
done
stop_server

python3 - "$work" "${1:-}" <<'PY'
import json, math, re, sys
work, record = sys.argv[1], sys.argv[2] == "--record"

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
for vus in (1, 8):
    before, after = buckets(f"{work}/before-{vus}.txt"), buckets(f"{work}/after-{vus}.txt")
    delta = {b: after[b] - before.get(b, 0.0) for b in after}
    bounds = sorted(b for b in delta if b != math.inf)
    k6 = json.load(open(f"{work}/k6/echo-c{vus}.json"))
    run = {"vus": vus, "requests_in_histogram": delta[math.inf], "k6_requests": k6["requests"]}
    for q, key in ((0.5, "p50_ms"), (0.99, "p99_ms")):
        ours = quantile(q, delta) * 1000
        theirs = k6[key]
        apart = abs(bucket_index(ours / 1000, bounds) - bucket_index(theirs / 1000, bounds))
        run[key] = {"histogram": round(ours, 3), "k6": round(theirs, 3), "buckets_apart": apart}
        run["ok"] = run.get("ok", True) and apart <= 1
    result["ok"] = result["ok"] and run["ok"]
    result["runs"].append(run)
    print(f"{vus} VU(s): p50 histogram {run['p50_ms']['histogram']} ms vs k6 {run['p50_ms']['k6']} ms "
          f"({run['p50_ms']['buckets_apart']} bucket(s) apart); p99 {run['p99_ms']['histogram']} ms vs "
          f"k6 {run['p99_ms']['k6']} ms ({run['p99_ms']['buckets_apart']} apart)")
json.dump(result, open(f"{work}/quantiles.json", "w"), indent=2)
if record:
    json.dump(result, open("benches/results/quantiles.json", "w"), indent=2)
if not result["ok"]:
    print("quantiles: a histogram quantile is more than one bucket from k6's", file=sys.stderr)
    sys.exit(1)
print("quantiles: every histogram p50/p99 within one bucket of k6's")
PY
