#!/usr/bin/env bash
# The main job: builds fofa (Release) and runs `fofa demo`, which trains a small Forward-OFA on a
# seeded synthetic data set and simulates device sessions with it. Extra arguments go to
# `fofa demo` (e.g. a data file: tools/run-demo.sh ../shared/data/amazon-games.txt).
# Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh minimal
out=${FOFA_BUILD_ROOT:-$(pwd)/build}/demo
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=Release -DFOFA_BUILD_TESTS=OFF -DFOFA_BUILD_BENCH=OFF >/dev/null
cmake --build "$out" --target fofa-cli -j "$(nproc)"
exec "$out/tools/cli/fofa" demo "$@"
