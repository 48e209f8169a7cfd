#!/usr/bin/env bash
# Async jobs as background traffic: does a job backlog hurt interactive requests? Serves the
# bundled fashion models (release build, 127.0.0.1), and in one run drives the default version
# (the CNN) with k6 at 16 VUs for DURATION_S seconds (default 4: less than the backlog takes to drain) three times:
#   baseline-1   no jobs;
#   backlog      while JOBS jobs (default 2000, submitted while the workers were paused, then
#                resumed) drain on the same version;
#   baseline-2   no jobs again (after the backlog drained), so drift shows on both sides.
# Reports the p99 ratio (backlog / mean of the baselines; target <= 1.5), req/s, the 429s k6
# got in each run (target: none during the backlog), the jobs finished during the backlog run
# and those still pending at its end, the time the backlog took to drain from the resume (it must
# outlast the backlog run for the comparison to mean anything), and the server's CPU per request. Writes
# target/bench-jobs/jobs.json; --record copies it to benches/results/jobs.json. Bounded:
# the drain wait stops after 300 s.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DURATION_S:-4}
jobs=${JOBS:-2000}
work=target/bench-jobs
rm -rf "$work"
mkdir -p "$work/k6"
k6=$(bash scripts/install-k6.sh)
source benches/lib.sh
cargo build --release --quiet --bins
bin=target/release/burnserve
token="bench-jobs-$(date +%s%N)"
server_config "" fashion:2,1 > "$work/serve.toml"

port=$(free_port); base="http://127.0.0.1:$port"
start_server burnserve /ready env BURNSERVE__SERVER__PORT="$port" BURNSERVE__ADMIN__TOKEN="$token" \
  "$bin" --config "$work/serve.toml"
admin() { curl -sf -X POST -H "Authorization: Bearer $token" "$base/admin/jobs/$1" > /dev/null; }
scrape() { curl -sf "$base/metrics" > "$work/$1.prom"; }

k6_run baseline-1 /v1/models/fashion/predict 16
admin pause
echo "== submitting $jobs jobs (workers paused)"
python3 - "$base" "$jobs" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
base, n = sys.argv[1], int(sys.argv[2])
def submit(i):
    image = [((i * 31 + j * 7) % 255) / 255 for j in range(784)]
    body = json.dumps({"inputs": [image], "top_k": 1}).encode()
    req = urllib.request.Request(f"{base}/v1/models/fashion/jobs", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202, resp.status
with ThreadPoolExecutor(8) as pool:
    list(pool.map(submit, range(n)))
PY
scrape before-backlog
# Samples the jobs finished every 100 ms from the resume until all have (at most 300 s).
python3 - "$base" "$jobs" > "$work/drain.json" <<'PY' &
import json, re, sys, time, urllib.request
base, n = sys.argv[1], int(sys.argv[2])
start, samples = time.time(), []
while time.time() - start < 300:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    done = sum(float(v) for v in re.findall(r'^jobs_total\{[^}]*\} (\S+)$', text, re.M))
    samples.append((round(time.time() - start, 2), done))
    if done >= n:
        break
    time.sleep(0.1)
print(json.dumps({"drain_s": samples[-1][0], "samples": samples}))
PY
sampler=$!
admin resume
k6_run backlog /v1/models/fashion/predict 16
scrape after-backlog
echo "== waiting for the backlog to drain"
wait "$sampler"
drain_s=$(python3 -c "import json; print(json.load(open('$work/drain.json'))['drain_s'])")
scrape drained
k6_run baseline-2 /v1/models/fashion/predict 16
stop_server

python3 - "$work" "$jobs" "$drain_s" "${1:-}" <<'PY'
import json, re, sys
work, jobs, drain_s, record = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "--record"

def total(path, name, **labels):
    s = 0.0
    for line in open(path):
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            s += float(line.rsplit(" ", 1)[1])
    return s

runs = {n: json.load(open(f"{work}/k6/{n}.json")) for n in ("baseline-1", "backlog", "baseline-2")}
base_p99 = (runs["baseline-1"]["p99_ms"] + runs["baseline-2"]["p99_ms"]) / 2
base_rps = (runs["baseline-1"]["req_per_s"] + runs["baseline-2"]["req_per_s"]) / 2
before, after, drained = (f"{work}/{n}.prom" for n in ("before-backlog", "after-backlog", "drained"))
finished_in_window = (total(after, "jobs_total", model="fashion", version="2")
                      - total(before, "jobs_total", model="fashion", version="2"))
result = {
    "jobs": jobs,
    "vus": 16,
    "duration_s": runs["backlog"]["duration_s"],
    "runs": {n: {k: r[k] for k in ("requests", "req_per_s", "p50_ms", "p95_ms", "p99_ms",
                                   "failed_rate", "status_429", "server_cpu_cores")}
             for n, r in runs.items()},
    "p99_ratio_backlog_vs_baseline": round(runs["backlog"]["p99_ms"] / base_p99, 3),
    "req_per_s_ratio_backlog_vs_baseline": round(runs["backlog"]["req_per_s"] / base_rps, 3),
    "status_429_during_backlog": runs["backlog"]["status_429"],
    "jobs_finished_during_backlog_run": finished_in_window,
    "jobs_pending_at_end_of_backlog_run": total(after, "job_queue_depth", model="fashion", version="2"),
    "jobs_succeeded_total": total(drained, "jobs_total", model="fashion", version="2", outcome="succeeded"),
    "jobs_failed_total": total(drained, "jobs_total", model="fashion", version="2", outcome="failed"),
    "drain_s_from_resume": drain_s,
    "backlog_run_shorter_than_drain": drain_s > runs["backlog"]["duration_s"],
}
for n, r in runs.items():
    cpu = r["server_cpu_cores"] * r["duration_s"]
    extra = finished_in_window if n == "backlog" else 0
    result["runs"][n]["server_cpu_us_per_request"] = round(cpu * 1e6 / max(r["requests"] + extra, 1), 1)
result["ok"] = (result["p99_ratio_backlog_vs_baseline"] <= 1.5 and result["status_429_during_backlog"] == 0
                and drain_s > runs["backlog"]["duration_s"]
                and result["jobs_succeeded_total"] == jobs)
print(json.dumps(result, indent=2))
json.dump(result, open(f"{work}/jobs.json", "w"), indent=2)
if record:
    json.dump(result, open("benches/results/jobs.json", "w"), indent=2)
if not result["ok"]:
    print("jobs bench: a target was missed (p99 ratio <= 1.5, no 429, backlog through the window, every job succeeded)", file=sys.stderr)
    sys.exit(1)
PY
