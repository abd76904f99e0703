#!/usr/bin/env bash
# Installs fofa into a temporary prefix and builds a consumer with find_package, then again with
# add_subdirectory; both consumers must run. Usage: check.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
cmake -S "$src" -B "$work/fofa" -DFOFA_BUILD_TESTS=OFF -DFOFA_BUILD_BENCH=OFF -DFOFA_BUILD_EXAMPLES=OFF \
  -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --build "$work/fofa" >/dev/null
cmake --install "$work/fofa" >/dev/null
cmake -S "$src/tests/install/consumer" -B "$work/installed" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/installed" >/dev/null
"$work/installed/consumer"
cmake -S "$src/tests/install/consumer" -B "$work/vendored" -DFOFA_SOURCE="$src" >/dev/null
cmake --build "$work/vendored" >/dev/null
"$work/vendored/consumer"
