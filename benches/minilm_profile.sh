#!/usr/bin/env bash
# Where a MiniLM pass's time goes: `perf record` (DWARF call graphs) of the MiniLM bench running
# only batch 32 of short (~16 tokens) texts, then of long (~133 tokens) ones, in-process, 6 s
# each; benches/profile/classify.py puts every sample in one kind of work (GEMM, the attention
# kernel's softmax, GELU, LayerNorm, layout copies, element-wise ops, allocation, the pool's
# waiting, tokenization) by the first frame from the leaf that names one, for the calling thread
# and the rayon pool apart. Model loading is left out. Not CI; needs `perf` (linux-tools) and
# scripts/fetch-minilm.sh.
#   benches/minilm_profile.sh [--record]
# Writes target/bench-minilm/profile.json (--record: benches/results/minilm_profile.json).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf > /dev/null || {
  echo "perf is not installed: install linux-tools for this kernel (apt install linux-tools-common linux-tools-\$(uname -r))" >&2
  exit 1
}
work=target/bench-minilm
mkdir -p "$work"
cargo bench --bench minilm --no-run --quiet
bench=$(cargo bench --bench minilm --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "minilm" and m.get("executable"):
        print(m["executable"])')
for set in short long; do
  echo "== $set batch 32 under perf"
  MINILM_PROFILE=$set perf record -q -F 300 --call-graph dwarf,32768 -o "$work/$set.perf" "$bench" |
    tee "$work/$set.rate"
  perf script -i "$work/$set.perf" 2> /dev/null > "$work/$set.stacks"
  python3 benches/profile/classify.py "$work/$set.stacks" > "$work/$set.profile.json"
  rm -f "$work/$set.perf" "$work/$set.stacks"
done
python3 - "$work" "${1:-}" <<'PY'
import json, re, sys
work, record = sys.argv[1], sys.argv[2] == "--record"
out = {"what": "share of perf samples (both threads of the pool and the calling thread) per kind of work, one MiniLM batch of 32 repeated for 6 s"}
for name in ("short", "long"):
    rate = open(f"{work}/{name}.rate").read()
    found = re.search(r"([\d.]+) sentences/s, ([\d.]+) cores busy", rate)
    profile = json.load(open(f"{work}/{name}.profile.json"))
    profile["sentences_per_s"], profile["cores_busy"] = float(found[1]), float(found[2])
    out[name] = profile
kinds = list(dict.fromkeys(list(out["short"]["share"]) + list(out["long"]["share"])))
print(f"{'kind of work':48}{'short b32':>10}{'long b32':>10}")
for kind in kinds:
    print(f"{kind:48}" + "".join(f"{100 * out[n]['share'].get(kind, 0):9.1f}%" for n in ("short", "long")))
for name in ("short", "long"):
    calling = out[name]["by_thread"]["calling thread"]["samples"] / out[name]["samples"]
    print(f"{name}: {out[name]['sentences_per_s']:.1f} sentences/s, {out[name]['cores_busy']:.2f} cores busy, calling thread {100 * calling:.1f}% of samples")
text = json.dumps(out, indent=1) + "\n"
open(f"{work}/profile.json", "w").write(text)
if record:
    open("benches/results/minilm_profile.json", "w").write(text)
    print("wrote benches/results/minilm_profile.json")
PY
