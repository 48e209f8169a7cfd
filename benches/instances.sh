#!/usr/bin/env bash
# `batching.instances`: the CNN (fashion v2's weights) at 64 k6 VUs through v2 JSON infer with 1
# and with 2 executor threads, rounds A B B A of DURATION_S/2 s each (default 10 s per setting):
# req/s and server CPU µs per request; then the server's RSS with MiniLM loaded at 1 and at 4
# instances (the weights are shared, not copied). The server is not pinned: instances need both
# cores, which k6 shares. Writes target/bench-instances/instances.json; --record copies it to
# benches/results/instances.json. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DURATION_S:-10}
work=target/bench-instances
rm -rf "$work"
mkdir -p "$work/k6" "$work/repo"
k6=$(bash scripts/install-k6.sh)
source benches/lib.sh
cargo build --release --quiet --bins
bin=target/release
# One model, two versions with the same weights: version N runs N instances.
for n in 1 2; do
  mkdir -p "$work/repo/cnn/$n"
  cp models/repository/fashion/2/model.safetensors "$work/repo/cnn/$n/"
  sed "s/^queue_capacity = 512$/queue_capacity = 512\ninstances = $n/" models/repository/fashion/2/model.toml > "$work/repo/cnn/$n/model.toml"
  grep -q "^instances = $n$" "$work/repo/cnn/$n/model.toml"
done
server_config "$PWD/$work/repo" cnn:1,2 > "$work/serve.toml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
start_server burnserve /ready env BURNSERVE__SERVER__PORT="$port" "$bin/burnserve" --config "$work/serve.toml"
half=$(python3 -c "print(max(1, $dur / 2))")
dur=$half
for version in 1 2 2 1; do
  n=$(ls "$work/k6" | grep -c "^instances-$version" || true)
  MODE=json MODEL=cnn VERSION=$version k6_run "instances-$version-r$((n + 1))" "/v2/models/cnn/versions/$version/infer" 64 benches/k6/v2.js
done
stop_server
# Memory: MiniLM with 1 and with 4 instances, RSS after 32 requests.
rss=()
if [ -f models/repository/minilm/1/model.safetensors ]; then
  for n in 1 4; do
    mkdir -p "$work/repo-minilm-$n/minilm/1"
    cp models/repository/minilm/1/{model.safetensors,tokenizer.json,config.json} "$work/repo-minilm-$n/minilm/1/"
    python3 - "$n" models/repository/minilm/1/model.toml "$work/repo-minilm-$n/minilm/1/model.toml" <<'PY'
import re, sys
n, src, dst = sys.argv[1:]
text = open(src).read()
text = text + f"\n" if "[batching]" not in text else text
text = text.replace("[batching]", f"[batching]\ninstances = {n}", 1) if "[batching]" in text else text + f"[batching]\ninstances = {n}\n"
open(dst, "w").write(text)
PY
    server_config "$PWD/$work/repo-minilm-$n" minilm:1 > "$work/minilm-$n.toml"
    start_server "minilm-$n" /ready env BURNSERVE__SERVER__PORT="$port" "$bin/burnserve" --config "$work/minilm-$n.toml"
    for i in $(seq 1 32); do
      curl -sf -o /dev/null -H 'content-type: application/json' -d "{\"inputs\": [\"a sentence to embed, number $i, with a few more words\"]}" "$base/v1/models/minilm/predict"
    done
    rss+=("$n:$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")")
    stop_server
  done
fi
python3 - "$work" "${rss[@]}" <<'PY'
import json, statistics, sys, glob
work, rss = sys.argv[1], sys.argv[2:]
out = {"model": "cnn (fashion v2 weights)", "vus": 64, "by_instances": {}}
for n in ("1", "2"):
    runs = [json.load(open(p)) for p in sorted(glob.glob(f"{work}/k6/instances-{n}-r*.json"))]
    rate = statistics.mean(r["req_per_s"] for r in runs)
    cores = statistics.mean(r["server_cpu_cores"] for r in runs)
    out["by_instances"][n] = {"req_per_s": rate, "server_cpu_cores": cores,
                              "server_cpu_us_per_request": cores / rate * 1e6,
                              "rounds_req_per_s": [r["req_per_s"] for r in runs]}
    print(f"instances {n}: {rate:8.1f} req/s, {cores:.2f} server cores, {cores / rate * 1e6:6.1f} us server CPU per request")
ratio = out["by_instances"]["2"]["req_per_s"] / out["by_instances"]["1"]["req_per_s"]
out["instances_2_over_1"] = ratio
print(f"instances 2 / 1: {ratio:.2f}x req/s")
if rss:
    out["minilm_rss_mib"] = {n: int(kb) / 1024 for n, kb in (r.split(":") for r in rss)}
    print("MiniLM server RSS by instances:", ", ".join(f"{n}: {v:.1f} MiB" for n, v in out["minilm_rss_mib"].items()))
json.dump(out, open(f"{work}/instances.json", "w"), indent=2)
PY
if [ "${1:-}" = "--record" ]; then cp "$work/instances.json" benches/results/instances.json; fi
