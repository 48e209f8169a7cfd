#!/usr/bin/env bash
# Puts the MiniLM "anchor" engines (PyTorch eager and ONNX Runtime on the CPU, pinned) in the venv
# target/anchors-venv and prints the path of its python as the last line on stdout; progress goes
# to stderr. Does nothing when the pinned versions are already there. Used by benches/anchors.sh.
#
# torch: the CPU-only index (download.pytorch.org/whl/cpu) is tried first; from this workplace it
# is unreachable (only the package registries are), so the plain PyPI wheel is what got installed.
# That wheel pulls in the CUDA 13 runtime (nvidia-*, triton): about 4 GiB of it is never used on
# the CPU, but torch will not import without it (tried `--no-deps`: `libcublasLt.so not found`).
# Measured when installed from PyPI: ~1.5 minutes, `du -sh target/anchors-venv` = 5.7G
# (nvidia 3.0G, torch 1.2G, triton 1.0G). With the CPU index it would be roughly 1 GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/anchors-venv
py="$venv/bin/python"
torch=torch==2.15.0
packages=(
  transformers==5.24.0 tokenizers==0.23.3 safetensors==0.8.0
  onnxruntime==1.32.0 onnx==1.23.2 onnxscript==0.7.2 numpy==2.4.6
)
# True when every pin (torch included; a CPU build's "+cpu" suffix is ignored) is installed.
installed() {
  [ -x "$py" ] && "$py" - "$torch" "${packages[@]}" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    assert version(name).split("+")[0] == want, pin
import torch, transformers, onnxruntime, onnx, onnxscript, numpy
EOF
}
if ! installed; then
  echo "install-anchors: creating $venv with $torch ${packages[*]}" >&2
  python3 -m venv "$venv" >&2
  pip=("$py" -m pip install --quiet --disable-pip-version-check --progress-bar off)
  if "${pip[@]}" --default-timeout=20 --retries 0 --index-url https://download.pytorch.org/whl/cpu "$torch" >&2 2>/dev/null; then
    echo "install-anchors: torch from the CPU-only index" >&2
  else
    echo "install-anchors: CPU-only torch index unreachable; torch from PyPI (with CUDA libs, ~5 GiB)" >&2
    "${pip[@]}" "$torch" >&2
  fi
  "${pip[@]}" "${packages[@]}" >&2
  installed || { echo "install-anchors: pinned packages still missing in $venv" >&2; exit 1; }
  echo "install-anchors: done ($(du -sh "$venv" | cut -f1))" >&2
fi
echo "$PWD/$py"
