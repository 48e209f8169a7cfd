#!/usr/bin/env bash
# Puts the ONNX reference tooling in target/onnx-venv and prints the venv's python on stdout
# (progress goes to stderr). It is what scripts/onnx_testdata.py runs under: `onnx` builds and
# serialises the test models (and its wheel ships the backend test cases under
# onnx/backend/test/data/{pytorch-converted,pytorch-operator,simple}), `onnxruntime` computes
# the reference outputs the Rust ONNX interpreter is compared against, `tokenizers` (the Python
# binding of the same Rust `tokenizers` 0.22 the server links) turns the MiniLM case's texts
# into ids exactly as the server does, `numpy` does the rest.
# Versions are pinned so the generated test data is reproducible. Does nothing when the venv
# already holds exactly these versions.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/onnx-venv
onnx_version=1.23.2
ort_version=1.24.4
numpy_version=2.3.5
tokenizers_version=0.22.2
# onnx's dependencies, pinned too: ml_dtypes decides some of the node suite's expected outputs.
ml_dtypes_version=0.7.0
protobuf_version=7.36.2
installed() {
  "$venv/bin/python" - "$onnx_version" "$ort_version" "$numpy_version" "$tokenizers_version" \
    "$ml_dtypes_version" "$protobuf_version" <<'EOF' 2>/dev/null
import sys
import google.protobuf, ml_dtypes, numpy, onnx, onnxruntime, tokenizers
want = sys.argv[1:]
have = [onnx.__version__, onnxruntime.__version__, numpy.__version__, tokenizers.__version__,
        ml_dtypes.__version__, google.protobuf.__version__]
sys.exit(0 if have == want else 1)
EOF
}
if ! installed; then
  echo "onnx: installing onnx==$onnx_version onnxruntime==$ort_version numpy==$numpy_version" \
    "tokenizers==$tokenizers_version in $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "onnx==$onnx_version" "onnxruntime==$ort_version" "numpy==$numpy_version" \
    "tokenizers==$tokenizers_version" "ml_dtypes==$ml_dtypes_version" \
    "protobuf==$protobuf_version" >&2
  installed || { echo "onnx: $venv does not import the pinned versions" >&2; exit 1; }
fi
echo "$PWD/$venv/bin/python"
