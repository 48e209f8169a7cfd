#!/usr/bin/env bash
# What the hardened edges cost per request: this build against OLD_BIN (a build from before a
# change, e.g. `git worktree add /tmp/old <rev>` built with its own release profile), the MLP
# (fashion v1) through gRPC with raw contents and through v2 JSON, 64 connections of the native
# generator (examples/load_client.rs), both servers up side by side, the server pinned to CPU 0
# and the generator to CPU 1, rounds old new new old old new new old of DURATION_S (default 5)
# each. Writes benches/results/edges_ab.json: server CPU µs per request of each side and path,
# their ratios, and each side's gRPC / JSON. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OLD_BIN:?set OLD_BIN to the burnserve binary to compare with}"
dur=${DURATION_S:-5}
work=target/bench-edges
rm -rf "$work"
mkdir -p "$work/k6" "$work/repo/fashion"
source benches/lib.sh
cargo build --release --quiet --bins --examples
bin=target/release
load_prefix="taskset -c 1"
cp -r models/repository/fashion/1 "$work/repo/fashion/1"
server_config "$work/repo" fashion:1 > "$work/serve.toml"
declare -A pid port grpc_port binary=([old]="$OLD_BIN" [new]="$bin/burnserve")
for side in old new; do
  port[$side]=$(free_port)
  grpc_port[$side]=$(free_port)
  base="http://127.0.0.1:${port[$side]}"
  start_server "$side" /ready taskset -c 0 env BURNSERVE__SERVER__PORT="${port[$side]}" \
    BURNSERVE__GRPC__PORT="${grpc_port[$side]}" BURNSERVE__JOBS__PATH="$PWD/$work/jobs-$side" \
    "${binary[$side]}" --config "$work/serve.toml"
  pid[$side]=$server_pid
done
trap 'kill ${pid[old]} ${pid[new]} 2>/dev/null || true' EXIT
round=0
for side in old new new old old new new old; do
  round=$((round + 1))
  server_pid=${pid[$side]}
  server_name=$side
  load_run "$side-grpc-r$round" grpc "127.0.0.1:${grpc_port[$side]}"
  load_run "$side-json-r$round" json "127.0.0.1:${port[$side]}"
done
python3 - "$work" <<'PY'
import glob, json, sys
runs = {}
for path in glob.glob(f"{sys.argv[1]}/k6/*.json"):
    r = json.load(open(path))
    side, mode, _ = r["name"].split("-")
    runs.setdefault(f"{side}_{mode}", []).append(r["server_cpu_cores"] / r["req_per_s"] * 1e6)
mean = {k: sum(v) / len(v) for k, v in runs.items()}
out = {f"{k}_us_per_request": round(v, 2) for k, v in sorted(mean.items())}
out["rounds_us"] = {k: [round(x, 1) for x in v] for k, v in sorted(runs.items())}
out["new_vs_old_grpc"] = round(mean["new_grpc"] / mean["old_grpc"], 3)
out["new_vs_old_json"] = round(mean["new_json"] / mean["old_json"], 3)
out["grpc_vs_json_old"] = round(mean["old_grpc"] / mean["old_json"], 3)
out["grpc_vs_json_new"] = round(mean["new_grpc"] / mean["new_json"], 3)
json.dump(out, open("benches/results/edges_ab.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PY
