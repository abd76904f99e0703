// fma_peak.hpp — measures the FMA peak (GFLOP/s, one core) of one xsimd architecture.
//
// A loop of independent FMA chains (more chains than latency x ports on current cores, no
// loads) runs for a fixed time; the best of several runs is the peak the benchmark
// percentages refer to. Templated on the Arch so each ISA is its own symbol; instantiated
// in per-ISA translation units compiled with that ISA's flags.
#pragma once

#include <ctime>

#include "fofa/kernels/simd_table.hpp"

namespace fofa::bench {

template <class Arch, int Chains>
double fma_peak_gflops_once(long iterations) {
  using V = kernels::simd::Vec<Arch>;
  V acc[Chains];
  for (int c = 0; c < Chains; ++c) acc[c] = V(1.0f + 1e-7f * static_cast<float>(c));
  const V a(0.999999f), b(1e-7f);
  // Thread CPU time, like Google Benchmark's default timing: a busy machine lowers neither.
  timespec t0{}, t1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  for (long i = 0; i < iterations; ++i) {
#pragma GCC unroll 32
    for (int c = 0; c < Chains; ++c) acc[c] = kernels::simd::fmadd<Arch>(acc[c], a, b);
  }
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  V sum(0.0f);
  for (int c = 0; c < Chains; ++c) sum = sum + acc[c];
  volatile float sink = xsimd::hadd(sum);
  (void)sink;
  const double secs = static_cast<double>(t1.tv_sec - t0.tv_sec) + 1e-9 * static_cast<double>(t1.tv_nsec - t0.tv_nsec);
  return 2.0 * V::size * Chains * static_cast<double>(iterations) / secs * 1e-9;
}

template <class Arch>
double fma_peak_gflops() {
  // 16 registers on AVX2, 32 elsewhere: leave room for the two constants.
  constexpr int chains = kernels::simd::Traits<Arch>::regs == 16 ? 12 : 24;
  double best = 0.0;
  fma_peak_gflops_once<Arch, chains>(1 << 20);  // warm up the clock
  for (int r = 0; r < 7; ++r) {
    const double g = fma_peak_gflops_once<Arch, chains>(1 << 21);
    best = g > best ? g : best;
  }
  return best;
}

}  // namespace fofa::bench
