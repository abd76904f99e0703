// The avx512 kernel family, compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma
// only in this translation unit. Everything it instantiates is templated on xsimd::avx512bw,
// so no symbol is shared with translation units built for other ISAs.
#include "fofa/kernels/simd_table.hpp"

namespace fofa::kernels::isa {
const KernelTable* avx512_table() { return &simd::table<xsimd::avx512bw>; }
}  // namespace fofa::kernels::isa
