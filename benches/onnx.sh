#!/usr/bin/env bash
# burnserve's `onnx` architecture against onnxruntime (PyPI, the reference users trust) on the
# same ONNX files and inputs, on the same 2 cores (onnxruntime: intra-op threads 2): the CNN
# graph (target/onnx-testdata/cnn-zoo, 27 nodes, [N, 3, 32, 32]), the Fashion CNN export and
# MiniLM (228 nodes, the encoder without tokenizer or pooling, 16 tokens per row), at batch 1
# and 32. In process: examples/onnx_bench.rs and benches/onnx_ort.py, in rounds A B B A of
# SECONDS (default 3) each, so both sides share the machine's state. Writes
# benches/results/onnx.json (each round, the medians, and onnxruntime µs / burnserve µs per
# pass: above 1.0 burnserve is faster). Then served: the release server with the two CNN files
# as lone `model.onnx` versions (and the native `fashion` CNN beside them), driven over HTTP v2
# binary tensors by the native load generator (examples/load_client.rs) for DURATION_S
# (default 5) at 1 connection (latency: p50 against onnxruntime's in-process pass at batch 1)
# and 16 (throughput, dynamic batching on), with the server's CPU µs per request. Loopback only,
# bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_ROUND:-3}
[ "${SKIP_INSTALL:-0}" = 1 ] || bash scripts/install-onnx-testdata.sh >/dev/null
py=$(bash scripts/install-onnx.sh)
cargo build --release --quiet --bins --examples
out=benches/results/onnx.json
rounds=()
for model in cnn-zoo fashion-cnn minilm; do
  dir=target/onnx-testdata/$model
  for batch in 1 32; do
    for side in burnserve ort ort burnserve; do
      if [ "$side" = burnserve ]; then
        line=$(target/release/examples/onnx_bench "$dir" "$batch" "$seconds")
      else
        line=$("$py" benches/onnx_ort.py "$dir" "$batch" "$seconds")
      fi
      echo "$model batch $batch: $line"
      rounds+=("{\"model\":\"$model\",\"side\":\"$side\",\"result\":$line}")
    done
  done
done
printf '%s\n' "${rounds[@]}" | python3 -c '
import json, statistics, sys
rounds = [json.loads(l) for l in sys.stdin if l.strip()]
summary = {}
for r in rounds:
    key = (r["model"], r["result"]["batch"])
    summary.setdefault(key, {"burnserve": [], "ort": []})[r["side"]].append(r["result"])
table = []
for (model, batch), sides in summary.items():
    ours = statistics.median(x["mean_us"] for x in sides["burnserve"])
    theirs = statistics.median(x["mean_us"] for x in sides["ort"])
    table.append({
        "model": model, "batch": batch,
        "burnserve_us_per_pass": ours, "onnxruntime_us_per_pass": theirs,
        "burnserve_cpu_us_per_pass": statistics.median(x["cpu_us_per_pass"] for x in sides["burnserve"]),
        "onnxruntime_cpu_us_per_pass": statistics.median(x["cpu_us_per_pass"] for x in sides["ort"]),
        "onnxruntime_over_burnserve": round(theirs / ours, 3),
    })
    print(f"{model:12s} batch {batch:3d}: burnserve {ours:10.1f} us, onnxruntime {theirs:10.1f} us, ratio {theirs / ours:.3f}")
json.dump({"rounds": rounds, "summary": table}, open(sys.argv[1], "w"), indent=1)
' "$out"
echo "wrote $out"

# Served.
work=target/bench-onnx
rm -rf "$work"
mkdir -p "$work/k6" "$work/repo/fashion-onnx/1" "$work/repo/cnn-zoo/1" "$work/repo/minilm-onnx/1"
cp target/onnx-testdata/fashion-cnn/model.onnx "$work/repo/fashion-onnx/1/"
cp target/onnx-testdata/cnn-zoo/model.onnx "$work/repo/cnn-zoo/1/"
cp -r models/repository/fashion "$work/repo/fashion"
# MiniLM: the export behind its tokenizer, beside the native `bert-embedding` (fetch-minilm.sh).
cp target/onnx-testdata/minilm/model.onnx target/onnx-testdata/minilm/tokenizer.json "$work/repo/minilm-onnx/1/"
printf 'architecture = "onnx"\n[params]\ntokenizer = "tokenizer.json"\nnormalize = true\n[batching]\nmax_batch_size = 32\n' \
  > "$work/repo/minilm-onnx/1/model.toml"
cp -r models/repository/minilm "$work/repo/minilm"
dur=${DURATION_S:-5}
source benches/lib.sh
server_config "$PWD/$work/repo" fashion-onnx:1 cnn-zoo:1 fashion:2 minilm-onnx:1 minilm:1 > "$work/server.toml"
port=$(free_port)
base="http://127.0.0.1:$port"
start_server burnserve /ready env BURNSERVE__SERVER__PORT="$port" target/release/burnserve --config "$work/server.toml"
for conns in 1 16; do
  LOAD_ARGS="--version 1 --input pixels --shape 1,28,28" load_run "fashion-onnx-c$conns" binary "127.0.0.1:$port" fashion-onnx "$conns"
  LOAD_ARGS="--version 2 --input pixels --shape 1,28,28" load_run "fashion-native-c$conns" binary "127.0.0.1:$port" fashion "$conns"
  LOAD_ARGS="--version 1 --input x --shape 1,3,32,32" load_run "cnn-zoo-c$conns" binary "127.0.0.1:$port" cnn-zoo "$conns"
  # One ~16-token text a request (binary BYTES), the ONNX export and the native model.
  LOAD_ARGS="--version 1 --only-extras --extra text:BYTES:1x1" load_run "minilm-onnx-c$conns" binary "127.0.0.1:$port" minilm-onnx "$conns"
  LOAD_ARGS="--version 1 --only-extras --extra text:BYTES:1x1" load_run "minilm-native-c$conns" binary "127.0.0.1:$port" minilm "$conns"
done
stop_server
python3 - "$work" "$out" <<'PY'
import glob, json, sys
work, out = sys.argv[1:]
doc = json.load(open(out))
ort = {(r["model"], r["batch"]): r["onnxruntime_us_per_pass"] for r in doc["summary"]}
served = {}
for path in sorted(glob.glob(f"{work}/k6/*.json")):
    r = json.load(open(path))
    assert r["failed_rate"] == 0, r
    served[r["name"]] = {
        "req_per_s": r["req_per_s"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
        "server_cpu_us_per_request": round(r["server_cpu_cores"] / r["req_per_s"] * 1e6, 1),
    }
for name, r in served.items():
    model = "fashion-cnn" if name.startswith("fashion") else "minilm" if name.startswith("minilm") else "cnn-zoo"
    if name.endswith("-c1"):
        r["onnxruntime_in_process_us_b1"] = ort[(model, 1)]
    print(f"{name:20s} {r}")
doc["served"] = served
json.dump(doc, open(out, "w"), indent=1)
PY
echo "wrote served results to $out"
