# Sourced by the scripts that check burnserve with an outside client (check-tritonclient.sh,
# check-openapi.sh, check-triton-repository.sh): `serve NAME TOML [FLAGS...]` starts the built
# binary (target/debug/burnserve, or $BURNSERVE_BIN; nothing is built here) on free loopback
# HTTP and gRPC ports with TOML appended to its settings and FLAGS on its command line, an
# admin token, warn-level logs and its job store in target/NAME, waits until it is ready, and
# stops it when the calling script exits. Sets `work`, `port`, `grpc_port`, `token` and
# `server`. `serve_bundled NAME` serves the bundled fashion models (1 and 2, default 2) and the
# example signature `multi-io`.
serve() {
  local name=$1 extra=$2 bin=${BURNSERVE_BIN:-target/debug/burnserve}
  shift 2
  [ -x "$bin" ] || { echo "no burnserve binary at $bin (build it first, e.g. cargo build)" >&2; exit 2; }
  work=target/$name
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
  token="$name-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
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
$extra
TOML
  BURNSERVE__ADMIN__TOKEN="$token" "$bin" --config "$work/burnserve.toml" "$@" > "$work/burnserve.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && return 0
    kill -0 "$server" 2>/dev/null || { cat "$work/burnserve.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "burnserve did not become ready in 30 s" >&2
  cat "$work/burnserve.log" >&2
  exit 1
}

serve_bundled() {
  serve "$1" '[[models]]
name = "fashion"
versions = ["1", "2"]
default_version = "2"
[[models]]
name = "multi-io"
versions = ["1"]'
}
