#!/usr/bin/env bash
# Reload under load: builds the release server, starts it on a free loopback port with a
# one-off admin token, runs benches/k6/reload.js (steady traffic; reloads in the middle third),
# stops the server, and writes benches/results/reload.json. Bounded by DURATION_S (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
k6=$(bash scripts/install-k6.sh)
cargo build --release --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token="bench-$(date +%s%N)"
BURNSERVE__SERVER__PORT=$port BURNSERVE__ADMIN__TOKEN=$token BURNSERVE__LOG__LEVEL=warn \
  target/release/burnserve &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
  sleep 0.1
done
mkdir -p benches/results
BASE_URL="http://127.0.0.1:$port" ADMIN_TOKEN=$token RESULTS=benches/results/reload.json \
  "$k6" run --quiet --no-usage-report benches/k6/reload.js
echo "results: benches/results/reload.json"
