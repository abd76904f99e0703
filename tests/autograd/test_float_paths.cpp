// The float fast paths of the autograd ops (packed SIMD GEMMs, fused kernels) against the generic
// double path of the same op, which the finite-difference checks validate: forward values and
// every input gradient, over odd shapes (row, column and depth tails of every kernel family).
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "fofa/autograd/ops.hpp"
#include "fofa/train/random.hpp"

using namespace fofa;
using namespace fofa::autograd;

namespace {

struct Shapes {
  std::vector<std::pair<std::string, Shape>> params;
};

// Builds the same graph in double and float from the same random values; compares the output and
// the gradients of sum_i w_i y_i. `cache` turns the tape's packed-weight cache on and runs the
// float graph twice with a parameter change in between (the cache must see the new values).
template <class Build>
void compare(const Shapes& s, Build build, std::uint64_t seed, bool cache = false, double tol = 2e-5) {
  ParamSet<double> pd;
  ParamSet<float> pf;
  train::Rng rng(seed);
  for (auto& [name, shape] : s.params) {
    pd.add(name, shape);
    pf.add(name, shape);
  }
  auto randomise = [&] {
    for (int i = 0; i < pd.size(); ++i)
      for (std::size_t k = 0; k < pd[i].value.size(); ++k) {
        const float v = static_cast<float>(rng.normal());
        pd[i].value[k] = v;
        pf[i].value[k] = v;
      }
  };
  randomise();
  GradSet<float> gf(pf);
  Tape<float> tf(pf, gf);
  tf.cache_packed_weights(cache);
  for (int round = 0; round < (cache ? 2 : 1); ++round) {
    if (round == 1) {
      randomise();
      tf.invalidate_packed_weights();
    }
    GradSet<double> gd(pd);
    Tape<double> td(pd, gd);
    gf.zero();
    tf.reset();
    Var yd = build(td), yf = build(tf);
    const index_t n = td.rows(yd) * td.cols(yd);
    REQUIRE(tf.rows(yf) * tf.cols(yf) == n);
    std::vector<double> wd(static_cast<std::size_t>(n));
    train::Rng wr(seed, 5);
    for (auto& x : wd) x = wr.normal();
    std::vector<float> wf(wd.begin(), wd.end());
    double scale = 1;
    for (index_t i = 0; i < n; ++i) scale = std::max(scale, std::abs(td.value(yd)[i]));
    for (index_t i = 0; i < n; ++i) {
      CAPTURE(i);
      REQUIRE(std::abs(static_cast<double>(tf.value(yf)[i]) - td.value(yd)[i]) <= tol * scale);
    }
    td.backward(weighted_sum(td, td.reshape(yd, 1, n), std::span<const double>(wd)));
    tf.backward(weighted_sum(tf, tf.reshape(yf, 1, n), std::span<const float>(wf)));
    for (int i = 0; i < pd.size(); ++i) {
      double gscale = 1;
      for (double g : gd.grad(i)) gscale = std::max(gscale, std::abs(g));
      std::size_t bad = 0;
      for (std::size_t k = 0; k < gd.grad(i).size(); ++k)
        if (std::abs(static_cast<double>(gf.grad(i)[k]) - gd.grad(i)[k]) > tol * gscale) ++bad;
      CAPTURE(pd[i].name);
      CAPTURE(round);
      CHECK(bad == 0);
    }
  }
}

}  // namespace

TEST_CASE("float linear (packed GEMM) matches the double path over every tail") {
  for (index_t M : {1, 4, 5, 6, 7, 13, 50, 65})
    for (index_t N : {1, 8, 15, 16, 17, 33, 64, 65, 192, 256})
      for (index_t K : {1, 7, 16, 17, 64, 80, 256}) {
        CAPTURE(M); CAPTURE(N); CAPTURE(K);
        const bool bias = (M + N + K) % 2 == 0;
        Shapes s{{{"x", {M, K}}, {"w", {N, K}}, {"b", {N}}}};
        compare(s, [bias](auto& t) { return linear(t, t.param("x"), t.param("w"), bias ? t.param("b") : Var{}); },
                static_cast<std::uint64_t>(M * 10007 + N * 101 + K), (M + N) % 3 == 0);
      }
}

TEST_CASE("float matmul (packed GEMM) matches the double path over every tail") {
  for (index_t M : {1, 5, 7, 50, 65})
    for (index_t N : {1, 8, 17, 64, 256})
      for (index_t K : {1, 8, 17, 64, 256}) {
        CAPTURE(M); CAPTURE(N); CAPTURE(K);
        Shapes s{{{"a", {M, K}}, {"b", {K, N}}}};
        compare(s, [](auto& t) { return matmul(t, t.param("a"), t.param("b")); },
                static_cast<std::uint64_t>(M * 7919 + N * 31 + K), (M + K) % 2 == 0);
      }
}

TEST_CASE("float matmul_acc (packed GEMM accumulating into a node) matches the double path over every tail") {
  for (index_t M : {1, 5, 7, 50, 65})
    for (index_t N : {1, 8, 17, 64, 256})
      for (index_t K : {1, 8, 17, 64}) {
        CAPTURE(M); CAPTURE(N); CAPTURE(K);
        Shapes s{{{"a", {M, K}}, {"b", {K, N}}, {"y", {M, N}}}};
        compare(s, [](auto& t) { return matmul_acc(t, t.param("a"), t.param("b"), scale(t, t.param("y"), {1})); },
                static_cast<std::uint64_t>(M * 7919 + N * 31 + K + 5), (M + K) % 2 == 0);
      }
}

TEST_CASE("float residual_dropout and unary_dropout (vectorised masks) match the double path") {
  for (index_t R : {1, 7, 50})
    for (index_t C : {1, 15, 16, 17, 64, 256}) {
      CAPTURE(R); CAPTURE(C);
      Shapes s{{{"base", {R, C}}, {"z", {R, C}}, {"row", {1, C}}}};
      for (const bool with_row : {false, true})
        compare(s, [with_row](auto& t) {
          return residual_dropout(t, t.param("base"), t.param("z"), with_row ? t.param("row") : Var{}, 0.2, 31);
        }, static_cast<std::uint64_t>(R * 131 + C));
      compare(s, [](auto& t) { return unary_dropout(t, Unary::gelu, t.param("z"), 0.2, 37); },
              static_cast<std::uint64_t>(R * 137 + C));
    }
}

TEST_CASE("float linear with few rows on a cached parameter pack (GEMV) matches the double path") {
  for (index_t M : {1, 2, 4})
    for (index_t N : {1, 15, 64, 512, 2048})
      for (index_t K : {1, 17, 80}) {
        CAPTURE(M); CAPTURE(N); CAPTURE(K);
        Shapes s{{{"x", {M, K}}, {"w", {N, K}}, {"b", {N}}}};
        compare(s, [](auto& t) { return linear(t, t.param("x"), t.param("w"), t.param("b")); },
                static_cast<std::uint64_t>(M * 31 + N * 7 + K), true);
      }
}

TEST_CASE("float GELU (SIMD forward, vectorised backward) matches the double path") {
  for (index_t n : {1, 15, 16, 17, 257}) {
    CAPTURE(n);
    Shapes s{{{"x", {1, n}}}};
    compare(s, [](auto& t) { return unary(t, Unary::gelu, t.param("x")); }, static_cast<std::uint64_t>(n), false, 2e-6);
    // Wide inputs: tails of the CDF, values near 0 (the series branch).
    compare(s, [](auto& t) { return unary(t, Unary::gelu, scale(t, t.param("x"), decltype(t.scalar(Var{}))(4))); }, 7 + static_cast<std::uint64_t>(n), false, 2e-6);
    compare(s, [](auto& t) { return unary(t, Unary::gelu, scale(t, t.param("x"), decltype(t.scalar(Var{}))(1e-3))); }, 9 + static_cast<std::uint64_t>(n), false, 2e-6);
  }
}

TEST_CASE("float causal attention (packed GEMMs + softmax kernel) matches the double path") {
  for (const auto& shape : {std::array<index_t, 3>{1, 8, 2}, {5, 10, 2}, {7, 12, 3}, {17, 64, 2}, {50, 64, 2},
                            {50, 64, 1}, {33, 64, 4}, {65, 48, 3}}) {
    const index_t R = shape[0], D = shape[1], heads = shape[2];  // captured below: no structured binding
    CAPTURE(R); CAPTURE(D); CAPTURE(heads);
    Shapes s{{{"q", {R, D}}, {"k", {R, D}}, {"v", {R, D}}}};
    compare(s, [heads](auto& t) { return causal_attention(t, t.param("q"), t.param("k"), t.param("v"), heads); },
            static_cast<std::uint64_t>(R * 13 + D + heads));
  }
}

TEST_CASE("exp_nonpositive: within a few ulp of std::exp on [-87, 0], clamped outside, no UB on NaN or infinities") {
  using fofa::autograd::detail::exp_nonpositive;
  for (float z = -87.0f; z <= 0.0f; z += 0.0137f) {
    const float want = std::exp(z), got = exp_nonpositive(z);
    CHECK(std::abs(got - want) <= 4.0f * std::numeric_limits<float>::epsilon() * want);
  }
  CHECK(exp_nonpositive(0.0f) == doctest::Approx(1.0f));
  CHECK(exp_nonpositive(-1000.0f) == doctest::Approx(std::exp(-87.0f)));  // clamped below
  CHECK(exp_nonpositive(-std::numeric_limits<float>::infinity()) < 1e-37f);
  CHECK(exp_nonpositive(5.0f) == doctest::Approx(1.0f));  // outside the domain: clamped to exp(0)
  CHECK(std::isfinite(exp_nonpositive(std::numeric_limits<float>::quiet_NaN())));  // the sanitizer build checks the cast
}
