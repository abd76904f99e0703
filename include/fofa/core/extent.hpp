// fofa/core/extent.hpp — one template for a dimension known at compile time or at run time.
//
// Extent<64> is an empty type whose value() is constexpr 64; Extent<> (= Extent<dynamic>)
// stores its value. Layers take Extent parameters, so `Linear<Extent<64>, Extent<256>>`
// and `Linear<Extent<>, Extent<>>` are the same code with constant or variable loop bounds.
// Constructing a static extent from a different run-time value throws fofa::Error, which is
// how a model compiled for d = 64 refuses a file with d = 50.
#pragma once

#include <cstdint>

#include "fofa/core/error.hpp"

namespace fofa {

using index_t = std::int64_t;
inline constexpr index_t dynamic = -1;

template <index_t N = dynamic>
struct Extent {
  static_assert(N > 0, "a static extent must be positive");
  static constexpr bool is_static = true;
  constexpr Extent() = default;
  explicit Extent(index_t v) {
    FOFA_CHECK(v == N, "dimension mismatch: compiled for ", N, ", given ", v);
  }
  static constexpr index_t value() { return N; }
  constexpr operator index_t() const { return N; }
};

template <>
struct Extent<dynamic> {
  static constexpr bool is_static = false;
  Extent() = default;
  explicit Extent(index_t v) : v_(v) { FOFA_CHECK(v > 0, "dimension must be positive, given ", v); }
  index_t value() const { return v_; }
  operator index_t() const { return v_; }

 private:
  index_t v_ = 0;
};

}  // namespace fofa
