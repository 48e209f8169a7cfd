#!/usr/bin/env bash
# Puts schemathesis (PyPI, pinned) in target/schemathesis-venv and prints its `st` command.
# Does nothing when it is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/schemathesis-venv
version=4.32.5
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "schemathesis==$version" >&2
fi
echo "$PWD/$venv/bin/st"
