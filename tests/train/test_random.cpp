// Rng's integer helper: mul_high64 (below()'s 64 x 64 -> high 64 product, written without
// __int128) against the compiler's 128-bit product on edge and random operands.
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <limits>

#include "fofa/train/random.hpp"

using fofa::train::mul_high64;
using fofa::train::Rng;

#if defined(__SIZEOF_INT128__)
namespace {
__extension__ typedef unsigned __int128 u128;  // __extension__: no -Wpedantic warning
std::uint64_t reference_high(std::uint64_t a, std::uint64_t b) {
  return static_cast<std::uint64_t>((static_cast<u128>(a) * b) >> 64);
}
}  // namespace

TEST_CASE("mul_high64 equals the 128-bit product's high half") {
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t edges[] = {0, 1, 2, 0xFFFFFFFFu, 0x100000000u, 0x1FFFFFFFFu, max / 2, max / 2 + 1, max - 1, max};
  for (std::uint64_t a : edges)
    for (std::uint64_t b : edges) {
      CAPTURE(a); CAPTURE(b);
      CHECK(mul_high64(a, b) == reference_high(a, b));
    }
  Rng rng(7);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t a = rng.next(), b = rng.next() >> (i % 64);
    CAPTURE(a); CAPTURE(b);
    REQUIRE(mul_high64(a, b) == reference_high(a, b));
  }
}
#endif

TEST_CASE("Rng::below stays in [0, n) and reaches both ends") {
  Rng rng(3);
  for (std::uint64_t n : {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{7}, std::uint64_t{23715}}) {
    bool saw_zero = false, saw_last = false;
    for (int i = 0; i < 200000; ++i) {
      const std::uint64_t v = rng.below(n);
      REQUIRE(v < n);
      saw_zero = saw_zero || v == 0;
      saw_last = saw_last || v == n - 1;
    }
    CHECK(saw_zero);
    CHECK(saw_last);
  }
}
