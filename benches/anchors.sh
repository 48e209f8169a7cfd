#!/usr/bin/env bash
# PyTorch eager and ONNX Runtime anchors for all-MiniLM-L6-v2 on the CPU (2 threads), on the texts
# benches/minilm.rs uses: see benches/anchors/minilm_anchors.py. Not part of CI.
#   benches/anchors.sh [--quick] [--rounds N] [--record]    (BUDGET_S: seconds per measurement, 6)
# Installs target/anchors-venv on first use (scripts/install-anchors.sh, ~5.7 GiB from PyPI);
# the run itself is offline (no hub, no registry) and bounded: 8 configurations × 2 engines ×
# rounds (2) × BUDGET_S, about 3.5 minutes by default, plus a one-time ONNX export.
# Writes target/anchors/{anchors,reference}.json (--record: also benches/results/minilm_anchors.json).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash scripts/install-anchors.sh)
test -f models/repository/minilm/1/model.safetensors || {
  echo "anchors: MiniLM files are absent: run scripts/fetch-minilm.sh" >&2
  exit 1
}
# CPU only and offline for the run: no GPU, no hub.
export CUDA_VISIBLE_DEVICES="" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
exec timeout "${ANCHORS_TIMEOUT_S:-1800}" "$py" benches/anchors/minilm_anchors.py "$@"
