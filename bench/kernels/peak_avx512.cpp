// FMA peak of the avx512 family, compiled with that ISA's flags only here.
#include "fma_peak.hpp"

namespace fofa::bench {
double fma_peak_gflops_avx512() { return fma_peak_gflops<xsimd::avx512bw>(); }
}  // namespace fofa::bench
