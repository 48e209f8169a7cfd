#!/usr/bin/env bash
# Triton's own clients against burnserve, as a Triton or KServe user would point them at it:
# starts the built binary (target/debug/burnserve, or $BURNSERVE_BIN; nothing is built here) on
# a free loopback port with the bundled fashion models and an admin token, and runs
# scripts/tritonclient_check.py (tritonclient from scripts/install-tritonclient.sh): health,
# metadata, JSON and binary infer (inputs and outputs) checked against /v1 predict, compressed
# bodies, statistics, model config, repository index/load/unload and errors over HTTP; the same
# over gRPC (tritonclient.grpc, raw contents) and grpc.health.v1. Bounded; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BURNSERVE_BIN:-target/debug/burnserve}
[ -x "$bin" ] || { echo "no burnserve binary at $bin (build it first, e.g. cargo build)" >&2; exit 2; }
py=$(bash scripts/install-tritonclient.sh)
work=target/check-tritonclient
rm -rf "$work"
mkdir -p "$work"
read -r port grpc_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
token="triton-check-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
cat > "$work/burnserve.toml" <<TOML
[server]
port = $port
drain_grace_ms = 100
[grpc]
port = $grpc_port
[jobs]
path = "$PWD/$work/jobs"
[log]
level = "warn"
[[models]]
name = "fashion"
versions = ["1", "2"]
default_version = "2"
TOML
BURNSERVE__ADMIN__TOKEN="$token" "$bin" --config "$work/burnserve.toml" > "$work/burnserve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/burnserve.log" >&2; exit 1; }
  sleep 0.1
done
timeout 300 "$py" scripts/tritonclient_check.py --url "127.0.0.1:$port" --grpc-url "127.0.0.1:$grpc_port" --token "$token"
