#!/usr/bin/env bash
# What each data path costs the server: the MLP (fashion v1, one 28x28 image a request) at 64
# connections through KServe v2 JSON infer, v2 binary tensors, gRPC with raw contents, and the
# HTTP floor (GET /v2/health/live, a route that does no work), rounds A B C D D C B A of
# DURATION_S/2 seconds each (default 10 s per path), then the bare actix-web JSON echo for scale.
# The load comes from examples/load_client.rs, our native generator in the manner of ghz (closed
# loop, one connection per user, pre-encoded requests, one thread), on every path alike: it
# drives the server to its capacity, so the server's CPU per request is its cost at full load,
# the same for every path. The same paths through k6 follow (k6's gRPC module encodes each call
# through JSON and caps near 7k req/s, the server at 0.2 cores: its figure is mostly the idle
# server's wake-ups), and JSON and gRPC through k6 at one fixed rate.
# Then dynamic batching on / off for the CNN (fashion v2) through v2 binary tensors, rounds
# A B B A, with the native generator (and k6 for comparison): with the payload's parsing gone the
# forward pass is most of a request, and the server's capacity on its core (1 s / CPU per
# request) is the figure.
# The server is pinned to CPU 0 and the load generators to CPU 1 (PIN=0 turns it off), so the
# server's CPU per request (from /proc) is the figure, not req/s. Writes
# target/bench-protocols/protocols.{json,md}; --record copies them to benches/results/.
# benches/run.sh (full) runs it last and appends the summary to its report. Loopback only, bounded.
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
load_prefix=""
if [ "$pin" = 1 ]; then
  k6=$work/k6-pinned
  printf '#!/bin/sh\nexec taskset -c 1 %s "$@"\n' "$k6_bin" > "$k6"
  chmod +x "$k6"
  server_cpu=(taskset -c 0)
  load_prefix="taskset -c 1"
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
echo "== each path through the native load generator (examples/load_client.rs), 64 connections"
for round in 1 2; do
  modes="json binary grpc live"
  [ $round = 2 ] && modes="live grpc binary json"
  for mode in $modes; do
    addr="127.0.0.1:$port"
    [ $mode = grpc ] && addr="127.0.0.1:$grpc_port"
    load_run "$mode-native-r$round" "$mode" "$addr"
  done
done
echo "== each path through k6, 64 VUs"
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
echo "== CNN (fashion v2) through v2 binary tensors: batching on / off (native generator, then k6)"
for model in cnn cnn-nobatch cnn-nobatch cnn; do
  round=1
  [ -f "$work/k6/$model-native-r1.json" ] && round=2
  load_run "$model-native-r$round" binary "127.0.0.1:$port" "$model"
done
for model in cnn cnn-nobatch cnn-nobatch cnn; do
  round=1
  [ -f "$work/k6/$model-binary-c64-r1.json" ] && round=2
  MODE=binary MODEL=$model VERSION=1 \
    k6_run "$model-binary-c64-r$round" "/v2/models/$model/versions/1/infer" 64 benches/k6/v2.js
done
stop_server
echo "== metrics on / off: the simple JSON predict of the MLP, native generator, rounds A B B A A B B A"
# Two servers side by side on the same core (the idle one costs nothing measurable), so the
# rounds alternate without restarts.
declare -A metrics_pid metrics_port
trap 'kill ${metrics_pid[on]:-} ${metrics_pid[off]:-} 2>/dev/null; stop_server' EXIT
for side in on off; do
  enabled=true
  [ $side = off ] && enabled=false
  port=$(free_port)
  base="http://127.0.0.1:$port"
  start_server "metrics-$side" /ready "${server_cpu[@]}" env BURNSERVE__SERVER__PORT="$port" \
    BURNSERVE__METRICS__ENABLED=$enabled BURNSERVE__JOBS__PATH="$PWD/$work/jobs-$side" \
    "$bin/burnserve" --config "$work/serve.toml"
  metrics_pid[$side]=$server_pid
  metrics_port[$side]=$port
done
for round in 1 2 3 4; do
  sides="on off"
  [ $((round % 2)) = 0 ] && sides="off on"
  for side in $sides; do
    server_pid=${metrics_pid[$side]}
    server_name=metrics-$side
    load_run "metrics-$side-native-r$round" predict "127.0.0.1:${metrics_port[$side]}"
  done
done
for side in on off; do
  server_pid=${metrics_pid[$side]}
  stop_server
done
trap stop_server EXIT
echo "== bare actix-web JSON echo (the same 784 floats through serde, no model)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
start_server bare-echo /v1/models/echo/predict "${server_cpu[@]}" "$bin/examples/bare_echo" "$port"
dur=$half
load_run bare-echo-native predict "127.0.0.1:$port" echo
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
def summarize(runs):
    return {
        "requests": sum(r["requests"] for r in runs),
        "req_per_s": round(sum(r["req_per_s"] for r in runs) / len(runs), 1),
        "p99_ms": round(max(r["p99_ms"] or 0 for r in runs), 2),
        "failed_rate": max(r["failed_rate"] for r in runs),
        "server_cpu_cores": round(sum(r["server_cpu_cores"] for r in runs) / len(runs), 3),
        "server_cpu_us_per_request": round(cpu_us(runs), 1),
        "rounds_us_per_request": [round(cpu_us([r]), 1) for r in runs],
    }
def paths(suffix, echo_name):
    out = {mode: summarize([load(f"{mode}-{suffix}-r{r}") for r in (1, 2)])
           for mode in ("json", "binary", "grpc", "live")}
    out["bare_actix_json_echo"] = summarize([load(echo_name)])
    return out
def ratios(p):
    floor = p["live"]["server_cpu_us_per_request"]
    json_us = p["json"]["server_cpu_us_per_request"]
    out = {}
    for mode in ("binary", "grpc"):
        us = p[mode]["server_cpu_us_per_request"]
        out[f"{mode}_vs_json_cpu_per_request"] = round(us / json_us, 3)
        out[f"{mode}_vs_json_net_of_http_floor"] = round((us - floor) / max(json_us - floor, 1e-9), 3)
    return out
result = {
    "pinned": pin,
    "connections": 64,
    "model": "fashion/1 (MLP), one 28x28 image",
    "generator": "examples/load_client.rs (native, closed loop, one connection per user)",
    "paths": paths("native", "bare-echo-native"),
}
result.update(ratios(result["paths"]))
result["k6"] = {"paths": paths("c64", "bare-echo-c64")}
result["k6"].update(ratios(result["k6"]["paths"]))
rated = {}
for mode in ("json", "grpc"):
    runs = [load(f"{mode}-rate-r{r}") for r in (1, 2)]
    rated[mode] = {
        "req_per_s": round(sum(r["req_per_s"] for r in runs) / 2, 1),
        "dropped": sum(r.get("dropped", 0) for r in runs),
        "server_cpu_us_per_request": round(cpu_us(runs), 1),
    }
result["k6"]["equal_rate"] = {
    "json": rated["json"],
    "grpc": rated["grpc"],
    "grpc_vs_json_cpu_per_request": round(
        rated["grpc"]["server_cpu_us_per_request"] / rated["json"]["server_cpu_us_per_request"], 3
    ),
}
def batching(suffix):
    b = {model: summarize([load(f"{model}-{suffix}-r{r}") for r in (1, 2)]) for model in ("cnn", "cnn-nobatch")}
    on, off = b["cnn"], b["cnn-nobatch"]
    for side in (on, off):
        side["capacity_req_per_s_per_core"] = round(1e6 / side["server_cpu_us_per_request"], 1)
    return {
        "on": on,
        "off": off,
        "req_per_s_on_vs_off": round(on["req_per_s"] / off["req_per_s"], 3),
        "capacity_on_vs_off": round(off["server_cpu_us_per_request"] / on["server_cpu_us_per_request"], 3),
    }
result["cnn_binary_batching"] = batching("native")
metrics = {side: summarize([load(f"metrics-{side}-native-r{r}") for r in (1, 2, 3, 4)]) for side in ("on", "off")}
on_us, off_us = metrics["on"]["server_cpu_us_per_request"], metrics["off"]["server_cpu_us_per_request"]
result["metrics_on_off"] = {
    "on": metrics["on"],
    "off": metrics["off"],
    "cpu_per_request_on_over_off": round(on_us / off_us, 4),
    "recording_us_per_request": round(on_us - off_us, 2),
}
result["k6"]["cnn_binary_batching"] = batching("binary-c64")
failed = {
    name: r["failed_rate"]
    for name, r in list(result["paths"].items()) + list(result["k6"]["paths"].items())
    + [(f"metrics-{side}", metrics[side]) for side in ("on", "off")]
    if r["failed_rate"] > 0
}
lines = ["native load generator, 64 connections:"]
def path_lines(p, r):
    out = [
        f"{mode:>22}: {v['req_per_s']} req/s, {v['server_cpu_us_per_request']} us server CPU per request"
        f" (rounds {' / '.join(map(str, v['rounds_us_per_request']))}), {v['server_cpu_cores']} cores"
        for mode, v in p.items()
    ]
    out.append(
        f"binary / JSON: {r['binary_vs_json_cpu_per_request']} ({r['binary_vs_json_net_of_http_floor']} net of the HTTP floor); "
        f"gRPC / JSON: {r['grpc_vs_json_cpu_per_request']} ({r['grpc_vs_json_net_of_http_floor']} net of the HTTP floor)"
    )
    return out
def batching_line(b):
    on, off = b["on"], b["off"]
    return (
        f"CNN binary, batching on / off: {on['req_per_s']} / {off['req_per_s']} req/s ({b['req_per_s_on_vs_off']}x), "
        f"{on['server_cpu_us_per_request']} / {off['server_cpu_us_per_request']} us server CPU per request "
        f"(capacity {b['capacity_on_vs_off']}x)"
    )
lines += path_lines(result["paths"], result)
lines.append(batching_line(result["cnn_binary_batching"]))
m = result["metrics_on_off"]
lines.append(
    f"metrics on / off (simple JSON predict): {m['on']['server_cpu_us_per_request']} / {m['off']['server_cpu_us_per_request']} us "
    f"server CPU per request ({m['cpu_per_request_on_over_off']}x, {m['recording_us_per_request']} us a request; rounds on "
    f"{' / '.join(map(str, m['on']['rounds_us_per_request']))}, off {' / '.join(map(str, m['off']['rounds_us_per_request']))})"
)
lines.append("k6, 64 VUs (the generator is the limit: the server's CPU per request includes its idle wake-ups):")
lines += path_lines(result["k6"]["paths"], result["k6"])
e = result["k6"]["equal_rate"]
lines.append(
    f"at one rate ({e['json']['req_per_s']} / {e['grpc']['req_per_s']} req/s; dropped {e['json']['dropped']} / "
    f"{e['grpc']['dropped']}): JSON {e['json']['server_cpu_us_per_request']} us, gRPC "
    f"{e['grpc']['server_cpu_us_per_request']} us server CPU per request: gRPC / JSON {e['grpc_vs_json_cpu_per_request']}"
)
lines.append(batching_line(result["k6"]["cnn_binary_batching"]))
if failed:
    lines.append(f"FAILED requests (rate): {failed}")
print("\n".join(lines))
# The same lines for benches/run.sh's report (and benches/results/ with --record).
summary = (
    f"Server {'pinned to CPU 0, load generators to CPU 1' if pin else 'not pinned'}; the MLP "
    "(fashion v1) per path, the CNN (fashion v2) through binary tensors batching on / off.\n\n"
    "```\n" + "\n".join(lines) + "\n```\n"
)
json.dump(result, open(f"{work}/protocols.json", "w"), indent=2)
open(f"{work}/protocols.md", "w").write(summary)
if record:
    json.dump(result, open("benches/results/protocols.json", "w"), indent=2)
    open("benches/results/protocols.md", "w").write(summary)
if failed:
    sys.exit("requests failed: " + json.dumps(failed))
PY
