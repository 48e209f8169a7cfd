#!/usr/bin/env bash
# SIGTERM under steady k6 load, RUNS times (default 5; loopback only, ~8 s a run): each run
# starts burnserve serving the bundled CNN (drain_grace_ms = 1500), puts 16 k6 VUs on it (each
# checking /ready every 200 ms, as a load balancer's health check would, and sending nothing
# more once it is not 200), polls /ready every 10 ms, sends SIGTERM after 2 s, and checks that
# /ready answered 503 before the port closed, that no request k6 sent failed, and that the exit
# code is 0. READY_CHECK_MS=0 turns the VUs' checks off (clients that ignore readiness: a
# connection that reaches the listener in the instant it closes is reset; not checked).
# Writes target/bench-drain/drain.json (the per-run figures); --record copies it to
# benches/results/drain.json.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
work=target/bench-drain
rm -rf "$work"
mkdir -p "$work/k6"
k6=$(bash scripts/install-k6.sh)
source benches/lib.sh
cargo build --quiet --bins
bin=target/debug/burnserve

for run in $(seq 1 "$runs"); do
  port=$(free_port); base="http://127.0.0.1:$port"
  cat > "$work/serve.toml" <<TOML
[server]
port = $port
drain_grace_ms = 1500
shutdown_timeout_ms = 20000
[log]
level = "warn"
[[models]]
name = "fashion"
versions = ["2"]
TOML
  start_server "burnserve-$run" /ready "$bin" --config "$work/serve.toml"
  python3 - "$port" "$work/ready-$run.json" <<'PY' &
# Polls /ready every 10 ms until the port refuses connections (at most 30 s): the times of the
# first 503 and of the first refusal, relative to the start of polling.
import json, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
start = time.monotonic()
first_503 = refused_at = None
while time.monotonic() - start < 30:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = s.recv(64)
        s.close()
        if reply.startswith(b"HTTP/1.1 503") and first_503 is None:
            first_503 = time.monotonic() - start
    except ConnectionRefusedError:
        refused_at = time.monotonic() - start
        break
    except OSError:
        pass
    time.sleep(0.01)
json.dump({"first_503_s": first_503, "refused_s": refused_at}, open(out, "w"))
PY
  watcher=$!
  BASE_URL=$base VUS=16 DURATION_S=6 READY_CHECK_MS=${READY_CHECK_MS:-200} RESULTS="$work/k6/run-$run.json" \
    "$k6" run --quiet --no-usage-report benches/k6/drain.js 2>"$work/k6/run-$run.log" &
  k6_pid=$!
  sleep 2
  kill -TERM "$server_pid"
  code=0
  wait "$server_pid" || code=$?
  server_pid=""
  wait "$watcher" || true
  wait "$k6_pid" || true
  python3 - "$run" "$code" "$work/ready-$run.json" "$work/k6/run-$run.json" "$work/runs.jsonl" <<'PY'
import json, sys
run, code, ready, k6, out = sys.argv[1:]
r = {"run": int(run), "exit_code": int(code), **json.load(open(ready)), **json.load(open(k6))}
open(out, "a").write(json.dumps(r) + "\n")
print(f"run {run}: exit {code}; /ready 503 at {r['first_503_s']} s, port closed at {r['refused_s']} s; "
      f"{r['served']} served, {r['refused']} refused after close, {r['failed']} failed")
PY
  grep -m3 'failed:' "$work/k6/run-$run.log" || true
done

python3 - "$work/runs.jsonl" "$work/drain.json" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
summary = {
    "runs": runs,
    "served": sum(r["served"] for r in runs),
    "failed": sum(r["failed"] for r in runs),
    "refused_after_close": sum(r["refused"] for r in runs),
}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
import os
checked = os.environ.get("READY_CHECK_MS", "200") != "0"
bad = [r for r in runs if r["exit_code"] != 0 or (checked and r["failed"] != 0) or r["served"] == 0
       or r["first_503_s"] is None or r["refused_s"] is None or r["first_503_s"] >= r["refused_s"]]
print(f"drain: {len(runs)} runs, {summary['served']} served, {summary['failed']} failed, "
      f"{summary['refused_after_close']} refused after the port closed")
if bad:
    print(f"drain FAILED in runs {[r['run'] for r in bad]}", file=sys.stderr)
    sys.exit(1)
PY
if [ "${1:-}" = "--record" ]; then
  cp "$work/drain.json" benches/results/drain.json
fi
