#!/bin/sh
# Configures, builds and runs the kernel tests for aarch64 (NEON family + scalar) under
# qemu-user. Needs Debian's g++-aarch64-linux-gnu, qemu-user, libxsimd-dev, doctest-dev.
# Usage: tests/kernels/run_neon.sh [build-dir]   (default: $FOFA_BUILD_DIR, else build-neon beside the sources)
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${FOFA_BUILD_DIR:-$src/build-neon}}
mkdir -p "$build/cross-include"
# xsimd and doctest are architecture-independent headers, but /usr/include must not go on
# the cross compiler's path (it holds x86_64 glibc headers): expose just those two.
ln -sfn /usr/include/xsimd "$build/cross-include/xsimd"
ln -sfn /usr/include/doctest "$build/cross-include/doctest"
mkdir -p "$build/cross-doctest"
cat > "$build/cross-doctest/doctestConfig.cmake" <<CFG
if(NOT TARGET doctest::doctest)
  add_library(doctest::doctest INTERFACE IMPORTED)
  set_target_properties(doctest::doctest PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "$build/cross-include")
endif()
set(doctest_FOUND TRUE)
CFG
cmake -S "$src" -B "$build" \
  -DCMAKE_TOOLCHAIN_FILE="$src/cmake/aarch64-toolchain.cmake" \
  -DCMAKE_BUILD_TYPE=Release \
  -DFOFA_XSIMD_INCLUDE_DIR="$build/cross-include" \
  -Ddoctest_DIR="$build/cross-doctest" \
  -DFOFA_BUILD_BENCH=OFF -DFOFA_BUILD_EXAMPLES=OFF -DFOFA_TORCH_TESTS=OFF
cmake --build "$build" --target fofa-tests-kernels -j"${FOFA_JOBS:-2}"
cd "$build/tests"
qemu-aarch64 -L /usr/aarch64-linux-gnu ./fofa-tests-kernels
