#!/usr/bin/env bash
# What typed signatures and the one KServe core cost per request: the FP32 identity model (784
# floats in and out, `[input]`/`[output]` as older builds read it) through v2 JSON, v2 binary
# tensors and gRPC raw contents, 64 connections of the native generator
# (examples/load_client.rs), this build against OLD_BIN (a build from before the change, e.g.
# `git worktree add /tmp/old <rev>` built with its own target dir), both servers up side by
# side, rounds old new new old (CYCLES times, default 1) of DURATION_S (default 5) per path;
# then a 3-input identity
# (FP32 [784], INT64 [16], BOOL [16]) on this build beside it, rounds A B B A. Without OLD_BIN
# only this build runs. The server is pinned to CPU 0, the generator to CPU 1. Writes
# benches/results/signatures.json: server CPU µs per request of each side, path and model, the
# ratios binary/JSON and gRPC/JSON of each side, and new/old per path. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DURATION_S:-5}
work=target/bench-signatures
rm -rf "$work"
mkdir -p "$work/k6" "$work/repo"
source benches/lib.sh
cargo build --release --quiet --bins --examples
bin=target/release
load_prefix="taskset -c 1"
write_identity_echo "$work/repo"
mkdir -p "$work/repo/echo3/1"
cat > "$work/repo/echo3/1/model.toml" <<'TOML'
architecture = "identity"
[batching]
max_batch_size = 64
max_batch_delay_ms = 1.0
queue_capacity = 1024
[[inputs]]
name = "x"
shape = [784]
[[inputs]]
name = "ids"
datatype = "INT64"
shape = [16]
[[inputs]]
name = "mask"
datatype = "BOOL"
shape = [16]
[[outputs]]
name = "y"
shape = [784]
[[outputs]]
name = "ids_out"
datatype = "INT64"
shape = [16]
[[outputs]]
name = "mask_out"
datatype = "BOOL"
shape = [16]
TOML
server_config "$work/repo" echo:1 > "$work/old.toml"
server_config "$work/repo" echo:1 echo3:1 > "$work/new.toml"
sides=(new)
[ -n "${OLD_BIN:-}" ] && sides=(old new)
declare -A pid port grpc_port binary=([old]="${OLD_BIN:-}" [new]="$bin/burnserve")
for side in "${sides[@]}"; do
  port[$side]=$(free_port)
  grpc_port[$side]=$(free_port)
  base="http://127.0.0.1:${port[$side]}"
  start_server "$side" /ready taskset -c 0 env BURNSERVE__SERVER__PORT="${port[$side]}" \
    BURNSERVE__GRPC__PORT="${grpc_port[$side]}" BURNSERVE__JOBS__PATH="$PWD/$work/jobs-$side" \
    "${binary[$side]}" --config "$work/$side.toml"
  pid[$side]=$server_pid
done
trap 'kill ${pid[old]:-} ${pid[new]:-} 2>/dev/null || true' EXIT
run_side() {
  local side=$1 model=$2 round=$3 mode addr
  server_pid=${pid[$side]}
  server_name=$side
  for mode in json binary grpc; do
    addr="127.0.0.1:${port[$side]}"
    [ $mode = grpc ] && addr="127.0.0.1:${grpc_port[$side]}"
    load_run "$side-$model-$mode-r$round" "$mode" "$addr" "$model"
  done
}
export LOAD_ARGS="--input x --shape 1,784"
order=()
for _ in $(seq 1 "${CYCLES:-1}"); do
  if [ -n "${OLD_BIN:-}" ]; then order+=(old new new old); else order+=(new new); fi
done
round=0
for side in "${order[@]}"; do
  round=$((round + 1))
  run_side "$side" echo "$round"
done
export LOAD_ARGS="--input x --shape 1,784 --extra ids:INT64:1x16 --extra mask:BOOL:1x16"
for round in 1 2; do
  run_side new echo3 "$round"
done
python3 - "$work" <<'PY'
import glob, json, sys
runs = {}
for path in glob.glob(f"{sys.argv[1]}/k6/*.json"):
    r = json.load(open(path))
    side, model, mode, _ = r["name"].split("-")
    assert r["failed_rate"] == 0, r
    runs.setdefault(f"{side}_{model}_{mode}", []).append(r["server_cpu_cores"] / r["req_per_s"] * 1e6)
mean = {k: sum(v) / len(v) for k, v in runs.items()}
out = {f"{k}_us_per_request": round(v, 2) for k, v in sorted(mean.items())}
out["rounds_us"] = {k: [round(x, 1) for x in v] for k, v in sorted(runs.items())}
for side in ("old", "new"):
    for model in ("echo", "echo3"):
        key = f"{side}_{model}"
        if f"{key}_json" in mean:
            out[f"{key}_binary_vs_json"] = round(mean[f"{key}_binary"] / mean[f"{key}_json"], 3)
            out[f"{key}_grpc_vs_json"] = round(mean[f"{key}_grpc"] / mean[f"{key}_json"], 3)
for mode in ("json", "binary", "grpc"):
    if f"old_echo_{mode}" in mean:
        out[f"new_vs_old_{mode}"] = round(mean[f"new_echo_{mode}"] / mean[f"old_echo_{mode}"], 3)
json.dump(out, open("benches/results/signatures.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PY
