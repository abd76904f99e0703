// The avx2 kernel family, compiled with -mavx2 -mfma only in this translation unit.
// Everything it instantiates is templated on xsimd::fma3<xsimd::avx2>, so no symbol is
// shared with translation units built for other ISAs.
#include "fofa/kernels/simd_table.hpp"

namespace fofa::kernels::isa {
const KernelTable* avx2_table() { return &simd::table<xsimd::fma3<xsimd::avx2>>; }
}  // namespace fofa::kernels::isa
