// fma_peaks.hpp — the measured FMA peak (GFLOP/s, one core) of every kernel family this build
// has, for benchmarks that report a percentage of it. The per-ISA functions live in
// bench/kernels/peak_<isa>.cpp (fofa_bench_fma_peaks() in bench/CMakeLists.txt adds them and
// defines FOFA_BENCH_<ISA>); without xsimd there are none and the peak is reported as 0.
#pragma once

#include <map>
#include <string>

#include "fofa/kernels/kernel_table.hpp"  // kernels() and find_kernels(), dispatched or not

namespace fofa::bench {
#if defined(FOFA_BENCH_AVX2)
double fma_peak_gflops_avx2();
#endif
#if defined(FOFA_BENCH_AVX512)
double fma_peak_gflops_avx512();
#endif
#if defined(FOFA_BENCH_NEON)
double fma_peak_gflops_neon();
#endif

// GFLOP/s by kernel table name ("avx2", "avx512", "neon"), for the families this CPU runs.
inline std::map<std::string, double> fma_peaks() {
  std::map<std::string, double> peak;
#if defined(FOFA_BENCH_AVX2)
  if (kernels::find_kernels("avx2")) peak["avx2"] = fma_peak_gflops_avx2();
#endif
#if defined(FOFA_BENCH_AVX512)
  if (kernels::find_kernels("avx512")) peak["avx512"] = fma_peak_gflops_avx512();
#endif
#if defined(FOFA_BENCH_NEON)
  if (kernels::find_kernels("neon")) peak["neon"] = fma_peak_gflops_neon();
#endif
  return peak;
}

// The peak of the kernel table fofa selected (kernels::kernels()), 0 when not measured.
inline double selected_fma_peak_gflops(const std::map<std::string, double>& peaks = fma_peaks()) {
  const auto it = peaks.find(kernels::kernels().name);
  return it == peaks.end() ? 0.0 : it->second;
}

}  // namespace fofa::bench
