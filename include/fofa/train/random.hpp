// fofa/train/random.hpp — a small, portable, seedable random generator for training and evaluation.
//
// std:: distributions differ between standard libraries, so results would not reproduce across
// compilers; Rng (xoshiro256** seeded by splitmix64) with its own uniform/logistic helpers gives
// the same numbers everywhere. Streams are derived from (seed, stream id) so each user, epoch or
// thread draws independently of scheduling order.
#pragma once

#include <cmath>
#include <cstdint>

namespace fofa::train {

inline std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The high 64 bits of the 128-bit product a * b, from 32-bit halves: the same number as
// ((unsigned __int128)a * b) >> 64 without the type, which 32-bit targets, MSVC and -Wpedantic lack.
inline std::uint64_t mul_high64(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32, b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
  const std::uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const std::uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);  // < 3 * 2^32
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0, std::uint64_t stream = 0) {
    std::uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull);
    for (auto& s : s_) s = splitmix64(x);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < 2^-32 for our n).
  std::uint64_t below(std::uint64_t n) { return mul_high64(next(), n); }
  // Uniform double in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform double in the open interval (0, 1), safe for log().
  double uniform_open() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  // Logistic(0, 1) noise, the difference of two Gumbels: log(u) - log(1 - u).
  double logistic() {
    const double u = uniform_open();
    return std::log(u) - std::log1p(-u);
  }
  // Standard normal (Box-Muller).
  double normal() {
    const double u1 = uniform_open(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace fofa::train
