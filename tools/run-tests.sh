#!/usr/bin/env bash
# Builds and runs every fofa test: Release builds with GCC, with Clang and without xsimd, an
# ASan+UBSan build, the live PyTorch comparisons, the aarch64 NEON kernel tests under qemu-user and
# a short fuzzing pass. Installs missing Debian packages first. Build trees go to ./build/ (override
# with FOFA_BUILD_ROOT).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools/install-deps.sh all
out=${FOFA_BUILD_ROOT:-$root/build}
jobs=${FOFA_JOBS:-$(nproc)}
export FOFA_DATA_DIR=${FOFA_DATA_DIR:-$root/../shared/data}
summary=()
fail=0

run_ctest() {  # name build-dir [ctest args]
  local name=$1 dir=$2; shift 2
  local log="$dir/ctest.log"
  if (cd "$dir" && ctest --output-on-failure "$@" 2>&1 | tee "$log"); then :; else fail=1; fi
  summary+=("$name: $(grep -E 'tests passed|tests failed' "$log" | tail -n 1)")
}

echo "== Release build"
cmake -S . -B "$out/release" -DCMAKE_BUILD_TYPE=Release -DFOFA_TORCH_TESTS=ON >/dev/null
cmake --build "$out/release" -j "$jobs"
run_ctest release "$out/release"

echo "== Clang build (clang++-14, -Werror: the headers must build and pass with both compilers)"
cmake -S . -B "$out/clang" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="-Werror" >/dev/null
cmake --build "$out/clang" -j "$jobs"
run_ctest clang "$out/clang" -LE torch

echo "== Scalar build (FOFA_USE_XSIMD=OFF: every header's portable fallback, as without xsimd)"
cmake -S . -B "$out/scalar" -DCMAKE_BUILD_TYPE=Release -DFOFA_USE_XSIMD=OFF -DFOFA_BUILD_BENCH=OFF >/dev/null
cmake --build "$out/scalar" -j "$jobs"
run_ctest scalar "$out/scalar" -LE torch

echo "== ASan+UBSan build"
cmake -S . -B "$out/sanitize" -DCMAKE_BUILD_TYPE=Debug -DFOFA_SANITIZE=ON -DFOFA_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-O1" >/dev/null
cmake --build "$out/sanitize" -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_ctest sanitize "$out/sanitize" -LE torch

if [ -x tests/kernels/run_neon.sh ]; then
  echo "== NEON kernels under qemu-aarch64"
  if FOFA_BUILD_DIR="$out/neon" tests/kernels/run_neon.sh 2>&1 | tee "$out/neon.log"; then
    summary+=("neon: $(grep -E 'test cases:' "$out/neon.log" | tail -n 1)")
  else
    fail=1; summary+=("neon: FAILED")
  fi
fi

if [ -x tests/fuzz/run.sh ]; then
  echo "== fuzzers (short run)"
  if FOFA_BUILD_DIR="$out/fuzz" tests/fuzz/run.sh "${FOFA_FUZZ_SECONDS:-20}" 2>&1 | tee "$out/fuzz.log"; then
    summary+=("fuzz: no finding in ${FOFA_FUZZ_SECONDS:-20}s per target")
  else
    fail=1; summary+=("fuzz: FAILED")
  fi
fi

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $fail
