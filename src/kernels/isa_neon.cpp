// The neon kernel family (aarch64: NEON is baseline, no extra flags).
// Everything it instantiates is templated on xsimd::neon64, so no symbol is shared with
// translation units built for other ISAs.
#include "fofa/kernels/simd_table.hpp"

namespace fofa::kernels::isa {
const KernelTable* neon_table() { return &simd::table<xsimd::neon64>; }
}  // namespace fofa::kernels::isa
