// Run-time kernel selection for dispatch builds (FOFA_DISPATCH): lists the tables compiled
// into this library that the CPU supports and picks the best, or the one named by the
// environment variable FOFA_ISA (scalar|avx2|avx512|neon). Compiled without ISA flags.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fofa/kernels/kernel_table.hpp"
#include "fofa/kernels/scalar.hpp"

namespace fofa::kernels {

namespace isa {
#if defined(FOFA_KERNELS_WITH_AVX2)
const KernelTable* avx2_table();
#endif
#if defined(FOFA_KERNELS_WITH_AVX512)
const KernelTable* avx512_table();
#endif
#if defined(FOFA_KERNELS_WITH_NEON)
const KernelTable* neon_table();
#endif
}  // namespace isa

namespace {

// Compiled and CPU-supported tables, scalar first, best last. Built once, never changed.
std::vector<const KernelTable*> supported_tables() {
  std::vector<const KernelTable*> out{&scalar::table};
#if defined(FOFA_KERNELS_WITH_AVX2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(isa::avx2_table());
#endif
#if defined(FOFA_KERNELS_WITH_AVX512)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
    out.push_back(isa::avx512_table());
#endif
#if defined(FOFA_KERNELS_WITH_NEON)
  out.push_back(isa::neon_table());  // Advanced SIMD is mandatory on aarch64
#endif
  return out;
}

const std::vector<const KernelTable*>& tables() {
  static const std::vector<const KernelTable*> list = supported_tables();
  return list;
}

const KernelTable& choose() {
  const char* forced = std::getenv("FOFA_ISA");
  if (!forced || !*forced) return *tables().back();
  if (const KernelTable* t = find_kernels(forced)) return *t;
  std::string have;
  for (const KernelTable* t : tables()) have += std::string(have.empty() ? "" : ", ") + t->name;
  throw Error(std::string("fofa: FOFA_ISA=") + forced + " is not compiled in or not supported by this CPU (available: " +
              have + ")");
}

}  // namespace

const KernelTable& kernels() {
  static const KernelTable& chosen = choose();
  return chosen;
}

// Grows only (see select.hpp).
void detail::resize_packed(PackedMatrix& p, index_t floats) {
  if (p.data.size() < floats) p.data.resize(floats);
}

void detail::throw_foreign_matrix(const char* family) {
  throw Error(std::string("fofa: ") + family + " kernel given a matrix packed by another kernel family");
}

void detail::throw_bad_range(index_t k_begin, index_t k_end, index_t n_end, const PackedMatrix& w) {
  throw Error("fofa: gemm_range k [" + std::to_string(k_begin) + ", " + std::to_string(k_end) + "), n_end " +
              std::to_string(n_end) + " outside the packed matrix (K " + std::to_string(w.K) + ", N " +
              std::to_string(w.N) + ")");
}

double detail::gemm_clock() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

const KernelTable& scalar_kernels() { return scalar::table; }

std::span<const KernelTable* const> available_kernels() { return {tables().data(), tables().size()}; }

const KernelTable* find_kernels(const char* name) {
  if (!name) return nullptr;
  for (const KernelTable* t : tables())
    if (std::strcmp(t->name, name) == 0) return t;
  return nullptr;
}

}  // namespace fofa::kernels
