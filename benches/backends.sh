#!/usr/bin/env bash
# CPU backend comparison: the same models, weights and load on each CPU backend burn 0.21 can
# build here, in one run on one machine. It first builds the release server and the raw-forward
# probe once per backend (flex is the default build; the others are features), then measures
# in-process forward throughput of the bundled MLP and CNN (and MiniLM when
# scripts/fetch-minilm.sh has fetched it) at batch 1..64, then serves them and drives each model
# with k6 at 16 VUs, backend after backend, so that one model's numbers are taken minutes apart
# at most. Writes benches/results/backends.{json,md}.
#   benches/backends.sh                    all backends (~15 min on 2 cores, builds included)
#   BACKENDS="flex ndarray" benches/backends.sh
# DURATION_S sets the seconds per served scenario (default 10), RAW_S per raw batch size (2).
# `ndarray-blas` needs the system OpenBLAS: scripts/install-openblas.sh installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

backends=${BACKENDS:-"ndarray ndarray-simd ndarray-blas flex"}
# The `cpu` backend (cubecl-cpu) is not compared: it downloads LLVM at build time.
dur=${DURATION_S:-10}
raw_s=${RAW_S:-2}
work=target/bench-backends
rm -rf "$work"
mkdir -p "$work/k6" "$work/raw"
k6=$(bash scripts/install-k6.sh)
source benches/lib.sh

models="models/repository/fashion/1 models/repository/fashion/2"
minilm=""
if [ -f models/repository/minilm/1/model.safetensors ]; then
  models="$models models/repository/minilm/1"
  minilm=yes
fi
served="fashion:1,2"
[ -n "$minilm" ] && served="$served minilm:1"
# shellcheck disable=SC2086 # one argument per served model
server_config "" $served > "$work/serve.toml"

for backend in $backends; do
  features=()
  [ "$backend" = flex ] || features=(--features "$backend")
  [ "$backend" = ndarray-blas ] && bash scripts/install-openblas.sh
  echo "== $backend: building"
  cargo build --release --quiet --bin burnserve --example raw_forward "${features[@]}"
  mkdir -p "$work/bin/$backend"
  cp target/release/burnserve target/release/examples/raw_forward "$work/bin/$backend/"
done

for dir in $models; do
  for backend in $backends; do
    echo "== $backend: raw forward $dir"
    "$work/bin/$backend/raw_forward" "$dir" "$raw_s" | tee "$work/raw/$backend-$(echo "$dir" | tr / -).json"
  done
done

# serve_and_load BACKEND SCENARIO PATH [BODY]
serve_and_load() {
  port=$(free_port); base="http://127.0.0.1:$port"
  start_server "$1" /ready env BURNSERVE__SERVER__PORT="$port" "$work/bin/$1/burnserve" --config "$work/serve.toml"
  BODY=${4:-image} k6_run "$1-$2-c16" "$3" 16
  stop_server
}
for backend in $backends; do serve_and_load "$backend" mlp /v1/models/fashion/versions/1/predict; done
for backend in $backends; do serve_and_load "$backend" cnn /v1/models/fashion/versions/2/predict; done
if [ -n "$minilm" ]; then
  for backend in $backends; do serve_and_load "$backend" minilm /v1/models/minilm/predict text; done
fi

python3 benches/backends_report.py "$work" benches/results "$dur" "$raw_s"
