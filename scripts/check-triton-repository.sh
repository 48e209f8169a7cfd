#!/usr/bin/env bash
# Triton's own clients against burnserve serving an existing Triton model repository, as a Triton
# user would move theirs over: scripts/triton_repository.py (under target/onnx-venv, from
# scripts/install-onnx.sh) lays out a repository in target/check-triton-repository/repo
# (fashion_cnn: a full config.pbtxt with version policy latest 2, dynamic batching, instance
# group, parameters and labels, versions 1-3; fashion_mlp: no config, auto-completed;
# detector_trt: platform tensorrt_plan; broken_cfg: a config.pbtxt that does not parse) and
# onnxruntime's outputs for seeded inputs; the built binary (target/debug/burnserve, or
# $BURNSERVE_BIN; nothing is built here) serves it with `--model-repository DIR
# --model-control-mode none` on free loopback ports; scripts/triton_repository_check.py
# (tritonclient from scripts/install-tritonclient.sh) checks the repository index, readiness,
# config, metadata and infer over HTTP and gRPC. Needs the ONNX test files
# (scripts/install-onnx-testdata.sh). Bounded; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BURNSERVE_BIN:-target/debug/burnserve}
[ -x "$bin" ] || { echo "no burnserve binary at $bin (build it first, e.g. cargo build)" >&2; exit 2; }
for model in fashion-cnn fashion-mlp; do
  [ -f "target/onnx-testdata/$model/model.onnx" ] || {
    echo "no target/onnx-testdata/$model/model.onnx: run scripts/install-onnx-testdata.sh" >&2
    exit 2
  }
done
py=$(bash scripts/install-tritonclient.sh)
onnx_py=$(bash scripts/install-onnx.sh)

work=target/check-triton-repository
rm -rf "$work"
mkdir -p "$work"
"$onnx_py" scripts/triton_repository.py "$work"

read -r port grpc_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
token="check-triton-repository-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
# No [[models]]: every model comes from the repository. detector_trt and broken_cfg cannot load
# by design, so the server must serve the others (Triton's --exit-on-error=false).
cat > "$work/burnserve.toml" <<TOML
[server]
port = $port
drain_grace_ms = 100
start_on_load_failure = "serve"
[grpc]
port = $grpc_port
[jobs]
path = "$PWD/$work/jobs"
[log]
level = "warn"
TOML

BURNSERVE__ADMIN__TOKEN="$token" "$bin" --config "$work/burnserve.toml" \
  --model-repository "$work/repo" --model-control-mode none > "$work/burnserve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT

up=0
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
  if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/health/live" \
    && curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/models/fashion_cnn/ready"; then
    up=1
    break
  fi
  kill -0 "$server" 2>/dev/null || { echo "burnserve exited:" >&2; cat "$work/burnserve.log" >&2; exit 1; }
  sleep 0.1
done
if [ "$up" != 1 ]; then
  echo "burnserve did not serve fashion_cnn in 60 s:" >&2
  cat "$work/burnserve.log" >&2
  exit 1
fi

status=0
timeout 300 "$py" scripts/triton_repository_check.py --url "127.0.0.1:$port" \
  --grpc-url "127.0.0.1:$grpc_port" --reference "$work/reference" --token "$token" \
  "$@" || status=$?
if [ "$status" != 0 ]; then
  echo "burnserve log ($work/burnserve.log):" >&2
  tail -n 50 "$work/burnserve.log" >&2
fi
exit "$status"
