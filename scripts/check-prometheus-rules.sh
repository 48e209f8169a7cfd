#!/usr/bin/env bash
# Checks deploy/prometheus: installs promtool if needed (scripts/install-prometheus.sh, the only
# network use: Debian's package mirror), then runs
#   promtool check config deploy/prometheus/prometheus.yml (one host)
#   promtool check config deploy/prometheus/prometheus-kubernetes.yml (pod discovery)
#   promtool check rules  deploy/prometheus/{recording,alerts}.yml
#   promtool test rules   deploy/prometheus/tests/*.yml
# and exits non-zero if any of them fails. Each promtool run is bounded by `timeout`.
#
# Debian's promtool is built without Kubernetes service discovery and rejects
# `kubernetes_sd_configs`. When that is the only complaint, the config is checked again from a
# temporary copy whose lines between the `# >>> kubernetes-sd` / `# <<< kubernetes-sd` markers
# are replaced by an empty static_configs (so the pod job's relabel rules are still checked),
# and a note says so. An upstream promtool checks the file as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=deploy/prometheus
limit=60s

scripts/install-prometheus.sh

promtool_bin=$(command -v promtool)
promtool() { timeout "$limit" "$promtool_bin" "$@"; }

failed=0
step() { # step NAME CMD...: runs CMD, records a failure without stopping the other steps
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    echo "FAILED: $name" >&2
    failed=1
  fi
}

check_config() { # check_config FILE
  local out file=$1
  if out=$(promtool check config "$dir/$file" 2>&1); then
    echo "$out"
    return 0
  fi
  if ! grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
    echo "$out" >&2
    return 1
  fi
  echo "NOTE: this promtool has no Kubernetes discovery (Debian build); checking the config"
  echo "      with the burnserve-pods discovery block replaced by an empty static_configs."
  local tmp status=0
  tmp=$(mktemp -d)
  cp "$dir"/recording.yml "$dir"/alerts.yml "$tmp"/
  awk '/# >>> kubernetes-sd/ { print "    static_configs: [{targets: []}]"; skip = 1; next }
       /# <<< kubernetes-sd/ { skip = 0; next }
       !skip' "$dir/$file" >"$tmp/$file"
  if ! grep -q 'static_configs: \[{targets: \[\]}\]' "$tmp/$file"; then
    echo "the kubernetes-sd markers are missing from $dir/$file" >&2
    status=1
  else
    promtool check config "$tmp/$file" || status=$?
  fi
  rm -rf "$tmp"
  return "$status"
}

step "check config (one host)" check_config prometheus.yml
step "check config (Kubernetes)" check_config prometheus-kubernetes.yml
step "check rules" promtool check rules "$dir/recording.yml" "$dir/alerts.yml"
step "test rules" promtool test rules "$dir"/tests/*.yml

if [ "$failed" -ne 0 ]; then
  echo "prometheus checks FAILED" >&2
  exit 1
fi
echo "prometheus checks passed"
