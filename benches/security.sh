#!/usr/bin/env bash
# The cost of the security edges (tenant key check, quota, body deadline), loopback only and
# bounded: the release binary serving the identity model (784 floats in and out: the runtime
# with no compute) without tenants and with one tenant whose key every request carries and whose
# quota admits it, A B B A at 64 VUs for DURATION_S each (default 10). OLD_BIN=PATH adds another
# build (e.g. one from before the gates) as a third server, run between the two rounds.
# Writes benches/results/security.json: req/s, p50/p99 and server CPU µs per request.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DURATION_S:-10}
work=target/bench-security
rm -rf "$work"
mkdir -p "$work/k6"
k6=$(bash scripts/install-k6.sh)
source benches/lib.sh
cargo build --release --quiet --bin burnserve
bin=target/release/burnserve
write_identity_echo "$work/repo"
key=bench-tenant-key-0123456789
server_config "$work/repo" echo:1 > "$work/open.toml"
{ cat "$work/open.toml"
  printf '[[tenants]]\nname = "bench"\napi_key = "%s"\nrequests_per_second = 1000000\nmax_inflight = 1000\n' "$key"
} > "$work/tenant.toml"

# run NAME CONFIG BINARY [API_KEY]
run() {
  port=$(free_port); base="http://127.0.0.1:$port"
  start_server "$1" /ready env BURNSERVE__SERVER__PORT="$port" "$3" --config "$2"
  API_KEY=${4:-} k6_run "$1" /v1/models/echo/predict 64
  stop_server
}
run open-r1 "$work/open.toml" "$bin"
run tenant-r1 "$work/tenant.toml" "$bin" "$key"
if [ -n "${OLD_BIN:-}" ]; then
  run old-r1 "$work/open.toml" "$OLD_BIN"
  run old-r2 "$work/open.toml" "$OLD_BIN"
fi
run tenant-r2 "$work/tenant.toml" "$bin" "$key"
run open-r2 "$work/open.toml" "$bin"

python3 - "$work" <<'PY'
import glob, json, os, sys
work = sys.argv[1]
runs = {json.load(open(p))["name"]: json.load(open(p)) for p in glob.glob(f"{work}/k6/*.json")}
out = {}
for name in ("old", "open", "tenant"):
    rounds = [runs[f"{name}-r{i}"] for i in (1, 2) if f"{name}-r{i}" in runs]
    if not rounds:
        continue
    rps = sum(r["req_per_s"] for r in rounds) / len(rounds)
    cpu = sum(r["server_cpu_cores"] / r["req_per_s"] * 1e6 for r in rounds) / len(rounds)
    out[name] = {
        "req_per_s": round(rps, 1),
        "p50_ms": round(sum(r["p50_ms"] for r in rounds) / len(rounds), 3),
        "p99_ms": round(sum(r["p99_ms"] for r in rounds) / len(rounds), 3),
        "server_cpu_us_per_request": round(cpu, 1),
        "failed_rate": max(r["failed_rate"] for r in rounds),
    }
if "open" in out and "tenant" in out:
    out["tenant_vs_open_cpu_ratio"] = round(
        out["tenant"]["server_cpu_us_per_request"] / out["open"]["server_cpu_us_per_request"], 3)
if "old" in out and "open" in out:
    out["open_vs_old_cpu_ratio"] = round(
        out["open"]["server_cpu_us_per_request"] / out["old"]["server_cpu_us_per_request"], 3)
out["note"] = "64 VUs of k6 on the same 2 cores: k6 saturates first; compare CPU us per request"
json.dump(out, open("benches/results/security.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PY
