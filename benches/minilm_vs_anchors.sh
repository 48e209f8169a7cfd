#!/usr/bin/env bash
# burnserve's MiniLM in-process beside PyTorch eager and ONNX Runtime, on the same texts and the
# same 2 cores, in alternating rounds (burnserve, anchors, burnserve, anchors; the anchors
# alternate torch and onnxruntime inside each round): short (~16 tokens) and long (~133 tokens)
# texts at batch 1 and 32, tokenization included, with the cores each keeps busy. Correctness
# first: the anchors check torch against onnxruntime (1e-4) and tests/minilm.rs checks burnserve
# against sentence-transformers. Round 1 runs the whole MiniLM bench, so the run also gives served
# (32 one-text clients) against in-process batch 32, as shipped and with instances = "auto". Not CI (the anchors' venv is 5.7 GiB: scripts/install-anchors.sh).
#   benches/minilm_vs_anchors.sh [--record]   (ROUNDS, default 2; BUDGET_S per measurement, 6)
# Writes target/bench-minilm/vs_anchors.json (--record: benches/results/minilm_vs_anchors.json).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-2}
work=target/bench-minilm
mkdir -p "$work"
bash scripts/install-anchors.sh > /dev/null
cargo bench --bench minilm --no-run --quiet
for round in $(seq 1 "$rounds"); do
  if [ "$round" = 1 ]; then
    # The whole MiniLM bench once: in-process, then served (as shipped and with instances =
    # "auto"), each against in-process batch 32 in alternating rounds of its own.
    echo "== round $round: burnserve in-process and served"
    cargo bench --bench minilm --quiet 2>&1 | grep -E "in-process|alternating"
    cp benches/results/minilm.json "$work/served.json"
  else
    echo "== round $round: burnserve in-process"
    MINILM_IN_PROCESS_ONLY=1 cargo bench --bench minilm --quiet 2>&1 | grep -E "in-process"
  fi
  cp "$work/in_process.json" "$work/burnserve-r$round.json"
  echo "== round $round: PyTorch and ONNX Runtime"
  BUDGET_S=${BUDGET_S:-6} bash benches/anchors.sh --rounds 1 | grep -E "^(torch|onnxruntime|correctness)"
  cp target/anchors/anchors.json "$work/anchors-r$round.json"
done
python3 - "$work" "$rounds" "${1:-}" <<'PY'
import json, statistics, sys
work, rounds, record = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "--record"
ours = [json.load(open(f"{work}/burnserve-r{r}.json")) for r in range(1, rounds + 1)]
anchors = [json.load(open(f"{work}/anchors-r{r}.json")) for r in range(1, rounds + 1)]
table = {}
print(f"{'':24}{'burnserve':>12}{'torch':>10}{'onnxrt':>10}{'vs torch':>10}{'vs onnxrt':>10}   cores (b / t / o)")
for name in ("short", "long"):
    for batch in (1, 32):
        key = f"batch_{batch}"
        b = statistics.median(o["in_process"][name][key] for o in ours)
        bc = statistics.median(o["in_process_cores"][name][key] for o in ours)
        t = statistics.median(a["engines"]["torch"][name][key]["sentences_per_s"] for a in anchors)
        tc = statistics.median(a["engines"]["torch"][name][key]["cores_busy"] for a in anchors)
        x = statistics.median(a["engines"]["onnxruntime"][name][key]["sentences_per_s"] for a in anchors)
        xc = statistics.median(a["engines"]["onnxruntime"][name][key]["cores_busy"] for a in anchors)
        table.setdefault(name, {})[key] = {
            "burnserve": b, "torch": t, "onnxruntime": x,
            "burnserve_vs_torch": b / t, "burnserve_vs_onnxruntime": b / x,
            "cores_busy": {"burnserve": bc, "torch": tc, "onnxruntime": xc},
            "rounds": {"burnserve": [o["in_process"][name][key] for o in ours],
                       "torch": [a["engines"]["torch"][name][key]["sentences_per_s"] for a in anchors],
                       "onnxruntime": [a["engines"]["onnxruntime"][name][key]["sentences_per_s"] for a in anchors]},
        }
        print(f"{name + ' batch ' + str(batch):24}{b:12.1f}{t:10.1f}{x:10.1f}{b / t:9.2f}x{b / x:9.2f}x   {bc:.2f} / {tc:.2f} / {xc:.2f}")
# Served against in-process batch 32 (alternating rounds inside round 1's bench), as shipped and
# with instances = "auto" (README's choice for many concurrent clients).
served = json.load(open(f"{work}/served.json"))
served_table = {}
for label, key in (("as shipped", "served_vs_in_process_b32"),
                   ("instances auto", "instances_auto_served_vs_in_process_b32")):
    for name in ("short", "long"):
        r = served[key][name]
        cores = statistics.mean(r["served_cores_busy"])
        served_table.setdefault(label, {})[name] = {"ratio": r["ratio"], "served_cores_busy": cores}
        print(f"served / in-process b32, {label:14} {name:5}: {r['ratio']:.3f}x at {cores:.2f} cores busy")
out = {"what": "sentences/s in-process, medians of alternating rounds; served / in-process batch 32",
       "rounds": rounds, "versions": anchors[0]["versions"], "machine": anchors[0]["machine"],
       "backend": ours[0]["backend"], "table": table, "served_vs_in_process_b32": served_table}
text = json.dumps(out, indent=2) + "\n"
open(f"{work}/vs_anchors.json", "w").write(text)
if record:
    open("benches/results/minilm_vs_anchors.json", "w").write(text)
    print("wrote benches/results/minilm_vs_anchors.json")
PY
