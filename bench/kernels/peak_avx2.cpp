// FMA peak of the avx2 family, compiled with that ISA's flags only here.
#include "fma_peak.hpp"

namespace fofa::bench {
double fma_peak_gflops_avx2() { return fma_peak_gflops<xsimd::fma3<xsimd::avx2>>(); }
}  // namespace fofa::bench
