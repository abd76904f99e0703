// fofa/kernels/simd_table.hpp — xsimd kernel families (in progress).
#pragma once
