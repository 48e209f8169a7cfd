#!/usr/bin/env bash
# End-to-end check of burnserve's metrics, alerts and recording rules through a real Prometheus,
# on loopback only, in well under 2.5 minutes (about 20 s once Prometheus is installed).
#
#   1. installs Debian's prometheus + promtool if missing (scripts/install-prometheus.sh);
#   2. starts the built burnserve (target/debug/burnserve, or $BURNSERVE_BIN; nothing is built
#      here) on a free 127.0.0.1 port with the bundled `fashion` versions 1 and 2, two tenants
#      (alpha; beta with a burst of 30 and next to no refill, so requests past it are
#      rate_limited) and log.level "warn", and waits for /ready;
#   3. starts Prometheus on another free 127.0.0.1 port with a config derived from
#      deploy/prometheus/prometheus.yml (same job and rule files, copied next to it; the target is
#      burnserve's port; scrape and evaluation every 1 s) and waits for /-/ready;
#   4. runs scripts/e2e_prometheus.py: checks the series at 0 before traffic, sends known traffic
#      (successes per tenant, throttled, overloaded, bad shape, unparseable body, unknown model,
#      unauthorized, and forced executor 504s), then checks through Prometheus's HTTP API the raw
#      counters (exactly), the error ratios, the p99, per-tenant counts, the recording rules and
#      that BurnserveExecutorTimeouts fires; and runs `promtool check metrics` on /metrics.
#
# Everything it starts is stopped on exit (trap). Exit status non-zero on any failed check.
# Output: target/e2e-prometheus/ (result.json: what was sent, the answers, expected and queried
# values, every check; burnserve.log, prometheus.log, the configs).
#
# Env: BURNSERVE_BIN (default target/debug/burnserve), E2E_PROMETHEUS_STRICT=1 to fail on
# checks the script marks as known burnserve issues (reported, not failing, by default).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=${BURNSERVE_BIN:-target/debug/burnserve}
work=target/e2e-prometheus
started_at=$(date +%s)

if [ ! -x "$bin" ]; then
  echo "no burnserve binary at $bin (build it first, e.g. cargo build)" >&2
  exit 2
fi

scripts/install-prometheus.sh
command -v prometheus >/dev/null || { echo "prometheus is not on PATH" >&2; exit 2; }
promtool_bin=$(command -v promtool)
prometheus_bin=$(command -v prometheus)

rm -rf "$work"
mkdir -p "$work/prometheus"

burnserve_pid=""
prometheus_pid=""
stop() { # stop PID NAME: SIGTERM, then SIGKILL after 10 s
  local pid=$1 name=$2
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name (pid $pid) did not stop on SIGTERM: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop "$prometheus_pid" prometheus
  stop "$burnserve_pid" burnserve
  echo "e2e-prometheus: exit $rc after $(($(date +%s) - started_at)) s"
  exit "$rc"
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap stops what it started.
trap 'exit 130' INT
trap 'exit 143' TERM

# Two free loopback ports (held together while choosing, so they differ).
read -r bs_port prom_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)

alpha_key="e2e-alpha-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
beta_key="e2e-beta-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
cat >"$work/burnserve.toml" <<EOF
# Written by scripts/e2e-prometheus.sh.
[server]
host = "127.0.0.1"
port = $bs_port
# Stop quickly when the script ends.
drain_grace_ms = 200
shutdown_timeout_ms = 5000

[repository]
path = "$root/models/repository"

[jobs]
path = "$root/$work/jobs"

[grpc]
port = 0

[log]
level = "warn"

[[tenants]]
name = "alpha"
api_key = "$alpha_key"

# A burst of 30 and one token per 100 s: the 31st request and later in this run are 429
# rate_limited.
[[tenants]]
name = "beta"
api_key = "$beta_key"
requests_per_second = 0.01
burst = 30

[[models]]
name = "fashion"
versions = ["1", "2"]
default_version = "2"
device = "cpu"
EOF

bs_url="http://127.0.0.1:$bs_port"
prom_url="http://127.0.0.1:$prom_port"

wait_http() { # wait_http URL PID NAME SECONDS
  local url=$1 pid=$2 name=$3 limit=$4
  for _ in $(seq $((limit * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before it was ready; its log:" >&2
      cat "$work/$name.log" >&2
      return 1
    fi
    if curl -sf -o /dev/null --max-time 2 "$url"; then
      return 0
    fi
    sleep 0.1
  done
  echo "$name not ready at $url within $limit s; its log:" >&2
  cat "$work/$name.log" >&2
  return 1
}

echo "== burnserve on $bs_url"
"$bin" --config "$work/burnserve.toml" >"$work/burnserve.log" 2>&1 &
burnserve_pid=$!
wait_http "$bs_url/ready" "$burnserve_pid" burnserve 30

echo "== prometheus on $prom_url"
cp deploy/prometheus/recording.yml deploy/prometheus/alerts.yml "$work/prometheus/"
sed -e "s/^\(  scrape_interval:\) .*/\1 1s/" \
  -e "s/^\(  evaluation_interval:\) .*/\1 1s/" \
  -e "s/^\(    scrape_interval:\) .*/\1 1s/" \
  -e "s/127\.0\.0\.1:8000/127.0.0.1:$bs_port/" \
  deploy/prometheus/prometheus.yml >"$work/prometheus/prometheus.yml"
# The rewrite must have hit every line it targets (fail loudly if prometheus.yml changed shape).
for want in "  scrape_interval: 1s" "  evaluation_interval: 1s" "    scrape_interval: 1s" \
  "127.0.0.1:$bs_port" "  - recording.yml" "  - alerts.yml" "job_name: burnserve"; do
  grep -qF -- "$want" "$work/prometheus/prometheus.yml" || {
    echo "derived prometheus.yml lacks '$want':" >&2
    cat "$work/prometheus/prometheus.yml" >&2
    exit 1
  }
done
timeout 60 "$promtool_bin" check config "$work/prometheus/prometheus.yml"
"$prometheus_bin" --config.file="$work/prometheus/prometheus.yml" \
  --storage.tsdb.path="$work/prometheus/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
wait_http "$prom_url/-/ready" "$prometheus_pid" prometheus 30

echo "== checks"
strict=()
if [ "${E2E_PROMETHEUS_STRICT:-1}" = 1 ]; then
  strict=(--strict)
fi
timeout 100 python3 scripts/e2e_prometheus.py \
  --burnserve "$bs_url" --prometheus "$prom_url" \
  --alpha-key "$alpha_key" --beta-key "$beta_key" \
  --model fashion --versions 1,2 --default-version 2 --timeout-version 1 \
  --promtool "$promtool_bin" --burnserve-log "$work/burnserve.log" \
  --out "$work/result.json" "${strict[@]}"
