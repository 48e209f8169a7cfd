#!/usr/bin/env bash
# Installs the datasets burnserve trains and tests on, where missing:
#   Fashion-MNIST (Debian package dataset-fashion-mnist) -> /usr/share/datasets/fashion-mnist/
# Needs apt (root or sudo). Safe to run again: does nothing when the files are present.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/t10k-images-idx3-ubyte.gz" ] && [ -f "$dir/train-images-idx3-ubyte.gz" ]; then
  echo "fashion-mnist: present in $dir"
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "fashion-mnist: installing Debian package dataset-fashion-mnist"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist
ls -l "$dir"
