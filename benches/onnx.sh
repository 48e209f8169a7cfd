#!/usr/bin/env bash
# burnserve's `onnx` architecture against onnxruntime (PyPI, the reference users trust) on the
# same ONNX files and inputs, on the same 2 cores (onnxruntime: intra-op threads 2): the CNN
# graph (target/onnx-testdata/cnn-zoo, 27 nodes, [N, 3, 32, 32]), the Fashion CNN export and
# MiniLM (228 nodes, the encoder without tokenizer or pooling, 16 tokens per row), at batch 1
# and 32. In process: examples/onnx_bench.rs and benches/onnx_ort.py, in rounds A B B A of
# SECONDS (default 3) each, so both sides share the machine's state. Writes
# benches/results/onnx.json (each round, the medians, and onnxruntime µs / burnserve µs per
# pass: above 1.0 burnserve is faster). Served latency is measured by benches/run.sh's
# server benches, not here.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_ROUND:-3}
[ "${SKIP_INSTALL:-0}" = 1 ] || bash scripts/install-onnx-testdata.sh >/dev/null
py=$(bash scripts/install-onnx.sh)
cargo build --release --quiet --example onnx_bench
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
