#!/usr/bin/env bash
# Puts Triton's own Python clients (the PyPI package tritonclient[http,grpc]==2.73.0, with numpy)
# in target/triton-venv and prints the venv's python. Does nothing when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/triton-venv
if ! "$venv/bin/python" -c 'import tritonclient.http, tritonclient.grpc' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "tritonclient[http,grpc]==2.73.0" >&2
fi
echo "$PWD/$venv/bin/python"
