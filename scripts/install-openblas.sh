#!/usr/bin/env bash
# Installs the system OpenBLAS (Debian's libopenblas-dev) that the `ndarray-blas` CPU backend
# links against. Only the backend comparison (benches/backends.sh) needs it. Does nothing when
# the library is already there.
set -euo pipefail
if ldconfig -p | grep -q 'libopenblas\.so '; then
  exit 0
fi
if ! command -v apt-get > /dev/null; then
  echo "install-openblas: no apt-get here; install OpenBLAS (libopenblas-dev) by hand" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenblas-dev >&2
