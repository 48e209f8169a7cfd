#!/usr/bin/env bash
# What each data path costs the server: the MLP (fashion v1, one 28x28 image a request) at 64 k6
# VUs through KServe v2 JSON infer, v2 binary tensors, gRPC with raw contents, and the HTTP floor
# (GET /v2/health/live, a route that does no work), rounds A B C D D C B A of DURATION_S/2
# seconds each (default 10 s per path), then the bare actix-web JSON echo of run.sh for scale.
# Then dynamic batching on / off for the CNN (fashion v2) through v2 binary tensors, rounds
# A B B A: with the payload's parsing gone the forward pass is most of a request, and the
# server's capacity on its core (1 s / CPU per request) is the figure k6 cannot hide.
# The server is pinned to CPU 0 and k6 to CPU 1 (PIN=0 turns it off): k6 saturates before the
# server does on two shared cores, so the server's CPU per request (from /proc) is the figure,
# not req/s. Writes target/bench-protocols/protocols.{json,md}; --record copies them to
# benches/results/. benches/run.sh (full) runs it last and appends the summary to its report.
# Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DURATION_S:-10}
pin=${PIN:-1}
work=target/bench-protocols
rm -rf "$work"
mkdir -p "$work/k6"
k6_bin=$(bash scripts/install-k6.sh)
k6=$k6_bin
server_cpu=()
if [ "$pin" = 1 ]; then
  k6=$work/k6-pinned
  printf '#!/bin/sh\nexec taskset -c 1 %s "$@"\n' "$k6_bin" > "$k6"
  chmod +x "$k6"
  server_cpu=(taskset -c 0)
fi
source benches/lib.sh
cargo build --release --quiet --bins --examples
bin=target/release
# The CNN twice: as shipped, and with batching off (one image a pass, no wait).
mkdir -p "$work/repo/fashion" "$work/repo/cnn" "$work/repo/cnn-nobatch"
cp -r models/repository/fashion/1 "$work/repo/fashion/1"
cp -r models/repository/fashion/2 "$work/repo/cnn/1"
cp -r models/repository/fashion/2 "$work/repo/cnn-nobatch/1"
sed -i 's/^max_batch_size = .*/max_batch_size = 1/; s/^max_batch_delay_ms = .*/max_batch_delay_ms = 0.0/' \
  "$work/repo/cnn-nobatch/1/model.toml"
server_config "$work/repo" fashion:1 cnn:1 cnn-nobatch:1 > "$work/serve.toml"
read -r port grpc_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
base="http://127.0.0.1:$port"
start_server burnserve /ready "${server_cpu[@]}" env BURNSERVE__SERVER__PORT="$port" \
  BURNSERVE__GRPC__PORT="$grpc_port" "$bin/burnserve" --config "$work/serve.toml"
half=$(python3 -c "print(max(1, $dur / 2))")
full=$dur
dur=$half
for round in 1 2; do
  modes="json binary grpc live"
  [ $round = 2 ] && modes="live grpc binary json"
  for mode in $modes; do
    MODE=$mode GRPC_ADDR="127.0.0.1:$grpc_port" VERSION=1 \
      k6_run "$mode-c64-r$round" /v2/models/fashion/versions/1/infer 64 benches/k6/v2.js
  done
done
# gRPC and JSON again at one fixed rate, 60% of what k6's gRPC client reached above (k6's
# arrival-rate executor costs it more than back-to-back VUs, and at 90% it dropped a third), rounds
# A B B A: at 64 VUs each path runs as fast as k6 drives it, and the server's CPU per request
# falls as the rate rises (each wake-up serves more requests), so gRPC, which k6 drives slowest,
# pays for k6 too.
rate=$(python3 -c "
import json
runs = [json.load(open('$work/k6/grpc-c64-r%d.json' % r)) for r in (1, 2)]
print(int(0.6 * sum(r['req_per_s'] for r in runs) / 2 / 100) * 100)")
echo "== JSON and gRPC at $rate req/s"
for mode in json grpc grpc json; do
  round=1
  [ -f "$work/k6/$mode-rate-r1.json" ] && round=2
  RATE=$rate MODE=$mode GRPC_ADDR="127.0.0.1:$grpc_port" VERSION=1 \
    k6_run "$mode-rate-r$round" /v2/models/fashion/versions/1/infer 64 benches/k6/v2.js
done
echo "== CNN (fashion v2) through v2 binary tensors: batching on / off"
for model in cnn cnn-nobatch cnn-nobatch cnn; do
  round=1
  [ -f "$work/k6/$model-binary-c64-r1.json" ] && round=2
  MODE=binary MODEL=$model VERSION=1 \
    k6_run "$model-binary-c64-r$round" "/v2/models/$model/versions/1/infer" 64 benches/k6/v2.js
done
stop_server
echo "== bare actix-web JSON echo (the same 784 floats through serde, no model)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
start_server bare-echo /v1/models/echo/predict "${server_cpu[@]}" "$bin/examples/bare_echo" "$port"
dur=$full
k6_run bare-echo-c64 /v1/models/echo/predict 64
stop_server

python3 - "$work" "$pin" "${1:-}" <<'PY'
import json, sys
work, pin, record = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "--record"
def load(name):
    return json.load(open(f"{work}/k6/{name}.json"))
def cpu_us(runs):
    cpu = sum(r["server_cpu_cores"] * r["duration_s"] for r in runs)
    return cpu * 1e6 / max(sum(r["requests"] for r in runs), 1)
result = {"pinned": pin, "vus": 64, "model": "fashion/1 (MLP), one 28x28 image", "paths": {}}
for mode in ("json", "binary", "grpc", "live"):
    runs = [load(f"{mode}-c64-r{r}") for r in (1, 2)]
    result["paths"][mode] = {
        "requests": sum(r["requests"] for r in runs),
        "req_per_s": round(sum(r["req_per_s"] for r in runs) / 2, 1),
        "p99_ms": round(max(r["p99_ms"] for r in runs), 2),
        "failed_rate": max(r["failed_rate"] for r in runs),
        "server_cpu_cores": round(sum(r["server_cpu_cores"] for r in runs) / 2, 3),
        "server_cpu_us_per_request": round(cpu_us(runs), 1),
    }
echo = load("bare-echo-c64")
result["paths"]["bare_actix_json_echo"] = {
    "req_per_s": round(echo["req_per_s"], 1),
    "server_cpu_us_per_request": round(cpu_us([echo]), 1),
}
p = result["paths"]
floor = p["live"]["server_cpu_us_per_request"]
json_us = p["json"]["server_cpu_us_per_request"]
for mode in ("binary", "grpc"):
    us = p[mode]["server_cpu_us_per_request"]
    result[f"{mode}_vs_json_cpu_per_request"] = round(us / json_us, 3)
    result[f"{mode}_vs_json_net_of_http_floor"] = round((us - floor) / max(json_us - floor, 1e-9), 3)
rated = {}
for mode in ("json", "grpc"):
    runs = [load(f"{mode}-rate-r{r}") for r in (1, 2)]
    rated[mode] = {
        "req_per_s": round(sum(r["req_per_s"] for r in runs) / 2, 1),
        "dropped": sum(r.get("dropped", 0) for r in runs),
        "server_cpu_us_per_request": round(cpu_us(runs), 1),
    }
result["equal_rate"] = {
    "json": rated["json"],
    "grpc": rated["grpc"],
    "grpc_vs_json_cpu_per_request": round(
        rated["grpc"]["server_cpu_us_per_request"] / rated["json"]["server_cpu_us_per_request"], 3
    ),
}
batching = {}
for model in ("cnn", "cnn-nobatch"):
    runs = [load(f"{model}-binary-c64-r{r}") for r in (1, 2)]
    us = cpu_us(runs)
    batching[model] = {
        "req_per_s": round(sum(r["req_per_s"] for r in runs) / 2, 1),
        "p99_ms": round(max(r["p99_ms"] for r in runs), 2),
        "server_cpu_cores": round(sum(r["server_cpu_cores"] for r in runs) / 2, 3),
        "server_cpu_us_per_request": round(us, 1),
        "capacity_req_per_s_per_core": round(1e6 / us, 1),
    }
on, off = batching["cnn"], batching["cnn-nobatch"]
result["cnn_binary_batching"] = {
    "on": on,
    "off": off,
    "req_per_s_on_vs_off": round(on["req_per_s"] / off["req_per_s"], 3),
    "capacity_on_vs_off": round(off["server_cpu_us_per_request"] / on["server_cpu_us_per_request"], 3),
}
lines = [
    f"{mode:>22}: {r.get('req_per_s')} req/s, {r['server_cpu_us_per_request']} us server CPU per request"
    for mode, r in p.items()
]
lines.append(
    f"binary / JSON: {result['binary_vs_json_cpu_per_request']} ({result['binary_vs_json_net_of_http_floor']} net of the floor); "
    f"gRPC / JSON: {result['grpc_vs_json_cpu_per_request']} ({result['grpc_vs_json_net_of_http_floor']} net of the HTTP floor)"
)
e = result["equal_rate"]
lines.append(
    f"at one rate ({e['json']['req_per_s']} / {e['grpc']['req_per_s']} req/s; dropped {e['json']['dropped']} / "
    f"{e['grpc']['dropped']}): JSON {e['json']['server_cpu_us_per_request']} us, gRPC "
    f"{e['grpc']['server_cpu_us_per_request']} us server CPU per request: gRPC / JSON {e['grpc_vs_json_cpu_per_request']}"
)
b = result["cnn_binary_batching"]
lines.append(
    f"CNN binary, batching on / off: {on['req_per_s']} / {off['req_per_s']} req/s ({b['req_per_s_on_vs_off']}x), "
    f"{on['server_cpu_us_per_request']} / {off['server_cpu_us_per_request']} us server CPU per request "
    f"(capacity {b['capacity_on_vs_off']}x)"
)
print("\n".join(lines))
# The same lines for benches/run.sh's report (and benches/results/ with --record).
summary = (
    f"Server {'pinned to CPU 0, k6 to CPU 1' if pin else 'not pinned'}; 64 VUs; the MLP "
    "(fashion v1) per path, the CNN (fashion v2) through binary tensors batching on / off.\n\n"
    "```\n" + "\n".join(lines) + "\n```\n"
)
json.dump(result, open(f"{work}/protocols.json", "w"), indent=2)
open(f"{work}/protocols.md", "w").write(summary)
if record:
    json.dump(result, open("benches/results/protocols.json", "w"), indent=2)
    open("benches/results/protocols.md", "w").write(summary)
PY
