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
py=$(bash scripts/install-tritonclient.sh)
source scripts/lib-serve.sh
serve_bundled check-tritonclient
timeout 300 "$py" scripts/tritonclient_check.py --url "127.0.0.1:$port" --grpc-url "127.0.0.1:$grpc_port" --token "$token"
