#!/usr/bin/env bash
# Writes the ONNX test data for the Rust ONNX interpreter to target/onnx-testdata/: the onnx
# wheel's backend test cases, the repository's Fashion-MNIST models as ONNX graphs (accuracy
# checked under onnxruntime), a random CNN and a random BERT-like encoder with onnxruntime
# reference outputs, a model with external data, and hostile models a loader must refuse.
# See scripts/onnx_testdata.py. Installs its Python tools first (scripts/install-onnx.sh).
# Does nothing when the data is already there for this version of the script.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(bash scripts/install-onnx.sh)
exec "$python" scripts/onnx_testdata.py
