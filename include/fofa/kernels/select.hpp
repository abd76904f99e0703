// fofa/kernels/select.hpp — header-only table selection (builds without FOFA_DISPATCH).
//
// Included at the end of kernel_table.hpp when FOFA_DISPATCH is not defined: kernels() is
// the best family this translation unit was compiled for (AVX-512 with -mavx512f/-mavx512bw,
// AVX2 with -mavx2 -mfma, NEON on aarch64, else scalar). FOFA_NO_XSIMD forces scalar.
// Dispatch builds instead choose by CPU at run time in src/kernels/dispatch.cpp.
#pragma once

#include <chrono>
#include <cstring>
#include <span>
#include <string>

#include "fofa/kernels/kernel_table.hpp"
#include "fofa/kernels/scalar.hpp"

#if !defined(FOFA_NO_XSIMD) && __has_include(<xsimd/xsimd.hpp>)
#include "fofa/kernels/simd_table.hpp"
#endif

namespace fofa::kernels {

namespace detail {
// The best kernel family the including translation unit's compiler flags allow.
inline const KernelTable* compiled_best_table() {
#if defined(FOFA_KERNELS_HAVE_SIMD) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
    defined(__AVX512VL__) && defined(__FMA__)
  return &simd::table<xsimd::avx512bw>;
#elif defined(FOFA_KERNELS_HAVE_SIMD) && defined(__AVX2__) && defined(__FMA__)
  return &simd::table<xsimd::fma3<xsimd::avx2>>;
#elif defined(FOFA_KERNELS_HAVE_SIMD) && defined(__aarch64__)
  return &simd::table<xsimd::neon64>;
#else
  return &scalar::table;
#endif
}
// Grows only: repacking into a matrix of the same or a larger size reuses its buffer (training
// packs operands on every product); packs write every float their gemm reads.
inline void resize_packed(PackedMatrix& p, index_t floats) {
  if (p.data.size() < floats) p.data.resize(floats);
}
[[noreturn]] inline void throw_foreign_matrix(const char* family) {
  throw Error(std::string("fofa: ") + family + " kernel given a matrix packed by another kernel family");
}
[[noreturn]] inline void throw_bad_range(index_t k_begin, index_t k_end, index_t n_end, const PackedMatrix& w) {
  throw Error("fofa: gemm_range k [" + std::to_string(k_begin) + ", " + std::to_string(k_end) + "), n_end " +
              std::to_string(n_end) + " outside the packed matrix (K " + std::to_string(w.K) + ", N " +
              std::to_string(w.N) + ")");
}
inline double gemm_clock() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace detail

inline const KernelTable& kernels() { return *detail::compiled_best_table(); }

inline const KernelTable& scalar_kernels() { return scalar::table; }

inline std::span<const KernelTable* const> available_kernels() {
  static const KernelTable* const both[] = {&scalar::table, detail::compiled_best_table()};
  // Without a SIMD family the second entry is the scalar table again: list it once.
  return {both, both[1] == both[0] ? std::size_t{1} : std::size_t{2}};
}

inline const KernelTable* find_kernels(const char* name) {
  if (!name) return nullptr;
  for (const KernelTable* t : available_kernels())
    if (std::strcmp(t->name, name) == 0) return t;
  return nullptr;
}

}  // namespace fofa::kernels
