#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++-14, ASan+UBSan) and runs each for SECONDS (default 60)
# on a scratch copy of its seed corpus, one after the other. Exit status non-zero on any finding.
# Usage: tests/fuzz/run.sh [SECONDS] [BUILD_DIR]   (BUILD_DIR also from FOFA_BUILD_DIR; FUZZ_JOBS=N for make -jN, default 2)
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-${FOFA_BUILD_DIR:-$root/build-fuzz}}
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFOFA_FUZZ=ON -DFOFA_BUILD_TESTS=ON -DFOFA_BUILD_BENCH=OFF -DFOFA_BUILD_EXAMPLES=OFF -DFOFA_DISPATCH=OFF >/dev/null
# Every target has its seeds in corpus/<target> (CMakeLists.txt lists the targets), so the
# directories name them here and a new fuzzer is added in one place.
targets=()
for dir in "$root"/tests/fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
make -C "$build" -j"${FUZZ_JOBS:-2}" "${targets[@]}" >/dev/null
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp "$root/tests/fuzz/corpus/$t/"* "$work/"
  echo "== $t for ${seconds}s"
  ( cd "$work" && "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "$work" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done" ) || true
  if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* >/dev/null 2>&1; then
    echo "$t: FINDING, inputs kept in $work" >&2
    exit 1
  fi
  rm -rf "$work"
done
