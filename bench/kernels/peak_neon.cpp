// FMA peak of the neon family, compiled with that ISA's flags only here.
#include "fma_peak.hpp"

namespace fofa::bench {
double fma_peak_gflops_neon() { return fma_peak_gflops<xsimd::neon64>(); }
}  // namespace fofa::bench
