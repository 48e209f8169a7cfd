# Shared by the bench scripts (sourced, not run): start/stop a server on loopback, and run one k6
# scenario against it with the server's CPU time and peak RSS. Callers set $work (output folder),
# $dur (seconds per scenario) and $k6 (the k6 binary); start_server sets $base's server.
# Every server a bench starts keeps its job store in the bench's folder, not in data/jobs.
case $work in
  /*) export BURNSERVE__JOBS__PATH="$work/jobs" ;;
  *) export BURNSERVE__JOBS__PATH="$PWD/$work/jobs" ;;
esac
# ... and their gRPC listener on a free port unless the bench sets one.
export BURNSERVE__GRPC__PORT="${BURNSERVE__GRPC__PORT:-0}"
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
  server_usage "$work/k6/$name.json" "$before" "$after"
}

# load_run NAME MODE ADDR [MODEL] [VUS]: one scenario of the native load generator
# (examples/load_client.rs, closed loop, one connection per user) against ADDR (host:port of the
# HTTP or the gRPC listener), with the server's CPU use, written as k6_run writes it. Runs under
# $load_prefix (e.g. taskset) when set, from $bin (default target/release); $LOAD_ARGS adds
# arguments (the input, its shape, extra inputs).
load_run() {
  local name=$1 mode=$2 addr=$3 model=${4:-fashion} vus=${5:-64}
  local before after
  before=$(cpu_ticks)
  ${load_prefix:-} "${bin:-target/release}/examples/load_client" --mode "$mode" --addr "$addr" --model "$model" \
    --connections "$vus" --duration-s "$dur" --name "$name" --results "$work/k6/$name.json" \
    ${LOAD_ARGS:-}
  after=$(cpu_ticks)
  server_usage "$work/k6/$name.json" "$before" "$after"
}
# server_usage RESULTS BEFORE AFTER: adds the server's CPU cores (ticks BEFORE..AFTER over $dur)
# and peak RSS to a scenario's results file.
server_usage() {
  python3 - "$1" "$2" "$3" "$dur" "$server_name" "$server_pid" <<'PY'
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

# server_config REPO ENTRY...: a server config on stdout with warn-level logs, serving each
# ENTRY, written NAME:VERSIONS[:DEVICE] (VERSIONS comma-separated, the first is the default;
# DEVICE defaults to cpu). An empty REPO keeps the default repository.
server_config() {
  local repo=$1 entry name versions device
  shift
  [ -n "$repo" ] && printf '[repository]\npath = "%s"\n' "$repo"
  printf '[log]\nlevel = "warn"\n'
  for entry in "$@"; do
    IFS=: read -r name versions device <<< "$entry"
    printf '[[models]]\nname = "%s"\nversions = ["%s"]\ndefault_version = "%s"\ndevice = "%s"\n' \
      "$name" "${versions//,/\", \"}" "${versions%%,*}" "${device:-cpu}"
  done
}

# write_identity_echo DIR: DIR/echo/1/model.toml, the identity model (784 floats in and out: the
# runtime with no compute), batched as the benches run it.
write_identity_echo() {
  mkdir -p "$1/echo/1"
  cat > "$1/echo/1/model.toml" <<'TOML'
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
}
