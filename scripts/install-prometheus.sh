#!/usr/bin/env bash
# Installs Debian's `prometheus` package (it ships both `prometheus` and `promtool`) when
# `promtool` is not on PATH yet, then prints both versions. Safe to run again: with promtool
# present it installs nothing. Runs as root and needs only Debian's package mirror.
#
# The package's maintainer scripts try to start the prometheus service. There is no init
# system here (and we never want the server running as a side effect), so while apt runs
# we install a policy-rc.d that answers 101 ("action forbidden"), which makes invoke-rc.d
# skip every start, and take it away again afterwards (restoring any earlier one).
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1; then
  policy=/usr/sbin/policy-rc.d
  backup=""
  if [ -e "$policy" ]; then
    backup="$(mktemp)"
    cp -p "$policy" "$backup"
  fi
  restore_policy() {
    if [ -n "$backup" ]; then
      mv -f "$backup" "$policy"
    else
      rm -f "$policy"
    fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\n# Temporary: set by scripts/install-prometheus.sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"

  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null

  restore_policy
  trap - EXIT
fi

# Some builds print their version on stderr; fold it into stdout. A promtool installed some
# other way may come without the server, which the checks do not need.
promtool --version 2>&1 | head -n 1
if command -v prometheus >/dev/null 2>&1; then
  prometheus --version 2>&1 | head -n 1
fi
