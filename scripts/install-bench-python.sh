#!/usr/bin/env bash
# Puts the "tutorial stack" baseline (FastAPI + uvicorn + prometheus_client + numpy, pinned, from PyPI)
# in the venv target/bench-py and prints the path of its python as the last line on stdout.
# Quick and silent apart from that when the venv already works; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-py
py="$venv/bin/python"
packages=(fastapi==0.165.0 uvicorn==0.54.0 prometheus_client==0.26.0 numpy==2.4.6)
if [ ! -x "$py" ] || ! "$py" -c 'import fastapi, uvicorn, prometheus_client, numpy' >/dev/null 2>&1; then
  echo "install-bench-python: creating $venv with ${packages[*]}" >&2
  python3 -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >&2
  "$py" -c 'import fastapi, uvicorn, prometheus_client, numpy' >&2
  echo "install-bench-python: done" >&2
fi
echo "$PWD/$py"
