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

data=target/check-triton-repository
rm -rf "$data"
mkdir -p "$data"
"$onnx_py" scripts/triton_repository.py "$data"

source scripts/lib-serve.sh
# No [[models]]: every model comes from the repository (the server starts in mode none, with
# detector_trt and broken_cfg UNAVAILABLE by design, and serves the others).
serve check-triton-repository-server "" --model-repository "$data/repo" --model-control-mode none

status=0
timeout 300 "$py" scripts/triton_repository_check.py --url "127.0.0.1:$port" \
  --grpc-url "127.0.0.1:$grpc_port" --reference "$data/reference" --token "$token" \
  "$@" || status=$?
if [ "$status" != 0 ]; then
  echo "burnserve log (target/check-triton-repository-server/burnserve.log):" >&2
  tail -n 50 "target/check-triton-repository-server/burnserve.log" >&2
fi
exit "$status"
