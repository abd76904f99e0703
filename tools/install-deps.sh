#!/usr/bin/env bash
# Installs the Debian 12 packages fofa's build, tests and benchmarks use, only those missing.
# Usage: tools/install-deps.sh [minimal|all]   (minimal: what the demo needs)
set -euo pipefail
mode=${1:-all}
pkgs=(cmake g++ make libxsimd-dev nlohmann-json3-dev)
if [ "$mode" = all ]; then
  pkgs+=(doctest-dev libbenchmark-dev python3-torch libopenblas-dev libeigen3-dev
         g++-aarch64-linux-gnu qemu-user clang-14 libclang-rt-14-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
