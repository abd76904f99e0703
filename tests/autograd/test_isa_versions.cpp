// Every ISA version of the autograd's float loops (detail::BestIsa: AVX-512F, AVX2 and baseline on
// x86-64, whichever this CPU runs) against the double instance of the same loop, over odd sizes so
// each vector width meets its tail; the loops that replaced plain float loops without changing a bit
// (column sums, attention's element-wise passes, GELU under dropout) against those loops, exactly.
// The float paths' other tests see only the version run() picks.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <string>
#include <vector>

#include "fofa/autograd/ops.hpp"
#include "fofa/train/random.hpp"

using namespace fofa;
using fofa::autograd::detail::BestIsa;

namespace {

// Random floats and the same values in double.
struct Buffer {
  std::vector<float> f;
  std::vector<double> d;
  Buffer(index_t n, train::Rng& rng, double lo = -2.0, double hi = 2.0) {
    for (index_t i = 0; i < n; ++i) {
      const float v = static_cast<float>(lo + (hi - lo) * rng.uniform());
      f.push_back(v);
      d.push_back(v);
    }
  }
};

void check_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(what, " element ", i, ": ", got[i], " against ", want[i]);
    REQUIRE(std::isfinite(got[i]));
    CHECK(std::abs(got[i] - want[i]) <= tol * (1.0 + std::abs(want[i])));
  }
}

// Calls body(version, label) for every version this CPU runs.
template <auto F, class Body>
void for_each_version(Body body) {
  const auto versions = BestIsa<F>::versions();
  REQUIRE(!versions.empty());
  for (const auto& v : versions) body(v.fn, std::string(v.isa));
}

const index_t kSizes[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 50, 64, 65, 97, 128, 200};

}  // namespace

// Also run by ctest with FOFA_ISA=scalar and FOFA_ISA=avx2 (tests/autograd/extra.cmake).
TEST_CASE("BestIsa lists the versions widest first; run() takes the first, or the one FOFA_ISA names") {
  using B = BestIsa<&autograd::detail::axpy_nn<float>>;
  const auto versions = B::versions();
  REQUIRE(!versions.empty());
#ifdef FOFA_AUTOGRAD_ISA_VERSIONS
  CHECK(std::string(versions.back().isa) == "baseline");
  CHECK(versions.size() == 1 + (__builtin_cpu_supports("avx512f") ? 1 : 0) +
                              (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0));
#endif
  const char* forced = std::getenv("FOFA_ISA");
  std::string want = forced ? forced : "";
  if (want == "scalar") want = "baseline";
  auto expected = versions.front().fn;
  for (const auto& v : versions)
    if (want == v.isa) expected = v.fn;
  INFO("FOFA_ISA=", std::string(forced ? forced : "(unset)"));
  CHECK((B::chosen() == expected));  // parenthesised: doctest cannot print function pointers
  if (forced && want == "baseline") CHECK((B::chosen() == versions.back().fn));
}

TEST_CASE("axpy_nn and axpy_tn: every ISA version matches the double loop") {
  train::Rng rng(11);
  for (index_t M : {1, 4, 5, 9}) {
    for (index_t N : {1, 31, 32, 33, 70}) {
      for (index_t K : {1, 7, 50}) {
        CAPTURE(M); CAPTURE(N); CAPTURE(K);
        Buffer a(M * K, rng), b(K * N, rng), c0(M * N, rng);
        std::vector<double> nn = c0.d, tn = c0.d;
        autograd::detail::axpy_nn<double>(M, N, K, a.d.data(), b.d.data(), nn.data());
        autograd::detail::axpy_tn<double>(M, N, K, a.d.data(), b.d.data(), tn.data());  // a read as [K, M]
        for_each_version<&autograd::detail::axpy_nn<float>>([&](auto fn, const std::string& isa) {
          std::vector<float> c = c0.f;
          fn(M, N, K, a.f.data(), b.f.data(), c.data());
          check_close(c, nn, 1e-5, "axpy_nn " + isa);
        });
        for_each_version<&autograd::detail::axpy_tn<float>>([&](auto fn, const std::string& isa) {
          std::vector<float> c = c0.f;
          fn(M, N, K, a.f.data(), b.f.data(), c.data());
          check_close(c, tn, 1e-5, "axpy_tn " + isa);
        });
      }
    }
  }
}

TEST_CASE("gelu_backward: every ISA version matches the exact derivative in double") {
  train::Rng rng(12);
  for (index_t n : kSizes) {
    CAPTURE(n);
    // Values near 0 (the series branch), moderate and far tails.
    Buffer x(n, rng, -9.0, 9.0), gy(n, rng), gx0(n, rng);
    for (index_t i = 0; i < n; i += 5) x.f[static_cast<std::size_t>(i)] *= 1e-4f;
    std::vector<float> y(static_cast<std::size_t>(n));
    std::vector<double> want = gx0.d;
    for (std::size_t i = 0; i < y.size(); ++i) {
      const double xi = x.f[i], cdf = 0.5 * (1.0 + std::erf(xi / std::sqrt(2.0)));
      y[i] = static_cast<float>(xi * cdf);
      want[i] += (cdf + xi * std::exp(-0.5 * xi * xi) / std::sqrt(2.0 * std::numbers::pi)) * gy.d[i];
    }
    for_each_version<&autograd::detail::gelu_backward_loop<false, false>>([&](auto fn, const std::string& isa) {
      std::vector<float> gx = gx0.f;
      fn(n, x.f.data(), y.data(), gy.f.data(), nullptr, gx.data());
      check_close(gx, want, 2e-5, "gelu_backward " + isa);
    });
  }
}

TEST_CASE("gelu_dropout_backward: every ISA version gives that version's mul + gelu_backward bits") {
  train::Rng rng(14);
  const auto fused = BestIsa<&autograd::detail::gelu_backward_loop<true, false>>::versions();
  const auto fresh = BestIsa<&autograd::detail::gelu_backward_loop<true, true>>::versions();
  const auto plain = BestIsa<&autograd::detail::gelu_backward_loop<false, false>>::versions();
  REQUIRE(fused.size() == plain.size());
  REQUIRE(fresh.size() == plain.size());
  for (index_t n : kSizes) {
    CAPTURE(n);
    Buffer x(n, rng, -9.0, 9.0), gy(n, rng), gx0(n, rng), y(n, rng), mask(n, rng, 0.0, 1.0);
    for (index_t i = 0; i < n; i += 5) x.f[static_cast<std::size_t>(i)] *= 1e-4f;
    for (index_t i = 0; i < n; i += 3) mask.f[static_cast<std::size_t>(i)] = 0.0f;  // dropped: -0 or +0
    for (index_t i = 1; i < n; i += 3) mask.f[static_cast<std::size_t>(i)] = 1.25f;  // kept, 1 / (1 - p)
    std::vector<float> gu(static_cast<std::size_t>(n));
    fofa::kernels::kernels().mul(n, gy.f.data(), mask.f.data(), gu.data());
    for (std::size_t v = 0; v < fused.size(); ++v) {
      CAPTURE(fused[v].isa);
      REQUIRE(std::string(fused[v].isa) == plain[v].isa);
      REQUIRE(std::string(fresh[v].isa) == plain[v].isa);
      std::vector<float> want = gx0.f, got = gx0.f;
      plain[v].fn(n, x.f.data(), y.f.data(), gu.data(), nullptr, want.data());
      fused[v].fn(n, x.f.data(), y.f.data(), gy.f.data(), mask.f.data(), got.data());
      CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
      // Overwriting stale values (NaN) gives the bits of adding into zeros, signs of zero included.
      std::vector<float> zeros(static_cast<std::size_t>(n), 0.0f), stale(static_cast<std::size_t>(n), std::nanf(""));
      fused[v].fn(n, x.f.data(), y.f.data(), gy.f.data(), mask.f.data(), zeros.data());
      fresh[v].fn(n, x.f.data(), y.f.data(), gy.f.data(), mask.f.data(), stale.data());
      CHECK(std::memcmp(stale.data(), zeros.data(), zeros.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("dropout and residual dropout: every ISA version draws the double loop's masks") {
  train::Rng rng(13);
  const std::uint32_t threshold = autograd::detail::dropout_threshold(0.3);
  for (index_t R : {1, 3, 5}) {
    for (index_t C : kSizes) {
      CAPTURE(R); CAPTURE(C);
      const index_t n = R * C;
      const std::uint32_t k0 = 0x9e3779b9u * static_cast<std::uint32_t>(n), k1 = 12345u + static_cast<std::uint32_t>(C);
      Buffer a(n, rng), base(n, rng), row(C, rng), yg(n, rng), g0(n, rng), rg0(C, rng);
      std::vector<double> yd(static_cast<std::size_t>(n)), md(yd.size());
      autograd::detail::dropout_forward<double>(n, k0, k1, threshold, 1.0 / 0.7, a.d.data(), yd.data(), md.data());
      for_each_version<&autograd::detail::dropout_forward<float>>([&](auto fn, const std::string& isa) {
        std::vector<float> y(yd.size()), m(yd.size());
        fn(n, k0, k1, threshold, static_cast<float>(1.0 / 0.7), a.f.data(), y.data(), m.data());
        check_close(m, md, 1e-6, "dropout mask " + isa);
        check_close(y, yd, 1e-6, "dropout " + isa);
      });
      for (bool with_row : {false, true}) {
        CAPTURE(with_row);
        const double* rd = with_row ? row.d.data() : nullptr;
        const float* rf = with_row ? row.f.data() : nullptr;
        autograd::detail::residual_dropout_forward<double>(R, C, k0, k1, threshold, 2.0, base.d.data(), a.d.data(), rd,
                                                           yd.data(), md.data());
        std::vector<double> bg = g0.d, zg = g0.d, rg = rg0.d;
        autograd::detail::residual_dropout_backward<double>(R, C, yg.d.data(), md.data(), a.d.data(), rd, bg.data(),
                                                            zg.data(), with_row ? rg.data() : nullptr);
        for_each_version<&autograd::detail::residual_dropout_forward<float>>([&](auto fn, const std::string& isa) {
          std::vector<float> y(yd.size()), m(yd.size());
          fn(R, C, k0, k1, threshold, 2.0f, base.f.data(), a.f.data(), rf, y.data(), m.data());
          check_close(m, md, 1e-6, "residual dropout mask " + isa);
          check_close(y, yd, 1e-6, "residual dropout " + isa);
        });
        std::vector<float> mf(md.begin(), md.end());
        for_each_version<&autograd::detail::residual_dropout_backward<float>>([&](auto fn, const std::string& isa) {
          std::vector<float> bgf = g0.f, zgf = g0.f, rgf = rg0.f;
          fn(R, C, yg.f.data(), mf.data(), a.f.data(), rf, bgf.data(), zgf.data(), with_row ? rgf.data() : nullptr);
          check_close(bgf, bg, 1e-6, "residual dropout base gradient " + isa);
          check_close(zgf, zg, 1e-6, "residual dropout branch gradient " + isa);
          check_close(rgf, rg, 1e-5, "residual dropout row gradient " + isa);
        });
      }
    }
  }
}

TEST_CASE("layernorm forward and backward: every ISA version matches the double loop") {
  train::Rng rng(14);
  for (index_t R : {1, 2, 5}) {
    for (index_t C : kSizes) {
      CAPTURE(R); CAPTURE(C);
      const index_t n = R * C;
      Buffer x(n, rng), g(C, rng), b(C, rng), yg(n, rng), xg0(n, rng), gg0(C, rng), bg0(C, rng);
      std::vector<double> xhat(static_cast<std::size_t>(n)), rstd(static_cast<std::size_t>(R)), y(xhat.size());
      autograd::detail::layernorm_forward<double>(R, C, x.d.data(), g.d.data(), b.d.data(), 1e-5, xhat.data(),
                                                  rstd.data(), y.data());
      std::vector<double> xg = xg0.d, gg = gg0.d, bg = bg0.d;
      autograd::detail::layernorm_backward<double>(R, C, yg.d.data(), xhat.data(), rstd.data(), g.d.data(), xg.data(),
                                                   gg.data(), bg.data());
      for_each_version<&autograd::detail::layernorm_forward<float>>([&](auto fn, const std::string& isa) {
        std::vector<float> xh(xhat.size()), rs(rstd.size()), yf(y.size());
        fn(R, C, x.f.data(), g.f.data(), b.f.data(), 1e-5f, xh.data(), rs.data(), yf.data());
        check_close(xh, xhat, 1e-4, "layernorm xhat " + isa);
        check_close(rs, rstd, 1e-4, "layernorm rstd " + isa);
        check_close(yf, y, 1e-4, "layernorm " + isa);
      });
      const std::vector<float> xhf(xhat.begin(), xhat.end()), rsf(rstd.begin(), rstd.end());
      for_each_version<&autograd::detail::layernorm_backward<float>>([&](auto fn, const std::string& isa) {
        std::vector<float> xgf = xg0.f, ggf = gg0.f, bgf = bg0.f;
        fn(R, C, yg.f.data(), xhf.data(), rsf.data(), g.f.data(), xgf.data(), ggf.data(), bgf.data());
        check_close(xgf, xg, 1e-4, "layernorm input gradient " + isa);
        check_close(ggf, gg, 1e-5, "layernorm weight gradient " + isa);
        check_close(bgf, bg, 1e-5, "layernorm bias gradient " + isa);
      });
    }
  }
}

// The Fresh instances (Tape::grad_to_write's first writer) against the accumulating ones on zeros:
// the same bits, signs of zero included (the inputs hold exact zeros of both signs).
TEST_CASE("layernorm and residual dropout backward: the fresh (overwriting) versions give accumulate-into-zero bits") {
  using autograd::detail::layernorm_backward;
  using autograd::detail::residual_dropout_backward;
  train::Rng rng(18);
  const auto ln_add = BestIsa<&layernorm_backward<float>>::versions();
  const auto ln_fresh = BestIsa<&layernorm_backward<float, true>>::versions();
  const auto rd_add = BestIsa<&residual_dropout_backward<float>>::versions();
  const auto rd_b = BestIsa<&residual_dropout_backward<float, true, false>>::versions();
  const auto rd_z = BestIsa<&residual_dropout_backward<float, false, true>>::versions();
  const auto rd_bz = BestIsa<&residual_dropout_backward<float, true, true>>::versions();
  REQUIRE(ln_fresh.size() == ln_add.size());
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  for (index_t R : {1, 3}) {
    for (index_t C : kSizes) {
      CAPTURE(R); CAPTURE(C);
      const index_t n = R * C;
      const auto zn = static_cast<std::size_t>(n);
      Buffer yg(n, rng), xh(n, rng), rs(R, rng, 0.5, 2.0), g(C, rng), z(n, rng), row(C, rng), m(n, rng, 0.0, 1.0);
      for (index_t i = 0; i < n; i += 4) yg.f[static_cast<std::size_t>(i)] = i % 8 ? -0.0f : 0.0f;
      for (index_t i = 1; i < n; i += 3) m.f[static_cast<std::size_t>(i)] = 0.0f;
      for (std::size_t v = 0; v < ln_add.size(); ++v) {
        CAPTURE(ln_add[v].isa);
        std::vector<float> want(zn, 0.0f), got(zn, std::nanf("")), gg(static_cast<std::size_t>(C)), bg(gg.size());
        ln_add[v].fn(R, C, yg.f.data(), xh.f.data(), rs.f.data(), g.f.data(), want.data(), gg.data(), bg.data());
        ln_fresh[v].fn(R, C, yg.f.data(), xh.f.data(), rs.f.data(), g.f.data(), got.data(), gg.data(), bg.data());
        CHECK(same(got, want));
      }
      for (const bool with_row : {false, true})
        for (const bool with_mask : {false, true}) {
          CAPTURE(with_row); CAPTURE(with_mask);
          const float* rf = with_row ? row.f.data() : nullptr;
          const float* mf = with_mask ? m.f.data() : nullptr;
          for (std::size_t v = 0; v < rd_add.size(); ++v) {
            CAPTURE(rd_add[v].isa);
            std::vector<float> rg(static_cast<std::size_t>(C), 0.0f);
            std::vector<float> bw(zn, 0.0f), zw(zn, 0.0f);
            rd_add[v].fn(R, C, yg.f.data(), mf, z.f.data(), rf, bw.data(), zw.data(), rg.data());
            const std::vector<float> stale(zn, std::nanf("")), kept(zn, 0.0f);
            std::vector<float> b1 = stale, z1 = kept, b2 = kept, z2 = stale, b3 = stale, z3 = stale;
            rd_b[v].fn(R, C, yg.f.data(), mf, z.f.data(), rf, b1.data(), z1.data(), rg.data());
            rd_z[v].fn(R, C, yg.f.data(), mf, z.f.data(), rf, b2.data(), z2.data(), rg.data());
            rd_bz[v].fn(R, C, yg.f.data(), mf, z.f.data(), rf, b3.data(), z3.data(), rg.data());
            CHECK(same(b1, bw)); CHECK(same(z1, zw));
            CHECK(same(b2, bw)); CHECK(same(z2, zw));
            CHECK(same(b3, bw)); CHECK(same(z3, zw));
          }
        }
    }
  }
}

TEST_CASE("add_column_sums (bias and gathered-row gradients): every ISA version gives the plain loop's bits") {
  train::Rng rng(17);
  for (index_t M : {1, 2, 5, 50}) {
    for (index_t N : kSizes) {
      CAPTURE(M); CAPTURE(N);
      Buffer y(M * N, rng), b0(N, rng);
      std::vector<float> want = b0.f;  // rows in order, one float add each
      for (index_t i = 0; i < M; ++i)
        for (index_t j = 0; j < N; ++j) want[static_cast<std::size_t>(j)] += y.f[static_cast<std::size_t>(i * N + j)];
      for_each_version<&autograd::detail::add_column_sums_loop<float>>([&](auto fn, const std::string& isa) {
        std::vector<float> b = b0.f;
        fn(M, N, y.f.data(), b.data());
        INFO("add_column_sums ", isa);
        CHECK(b == want);
      });
    }
  }
}

TEST_CASE("causal attention's element-wise passes: every ISA version gives the plain loops' bits") {
  train::Rng rng(19);
  for (index_t R : {1, 2, 7, 16, 17, 33, 50}) {
    CAPTURE(R);
    Buffer p(R * R, rng), ds0(R * R, rng), dots(R, rng);
    const float sc = 0.1767767f;
    std::vector<float> scaled = p.f, grad = ds0.f;  // the loops as they were written inline
    for (index_t i = 0; i < R; ++i)
      for (index_t j = 0; j < R; ++j) {
        const auto e = static_cast<std::size_t>(i * R + j);
        if (j <= i) scaled[e] *= sc;
        grad[e] = j <= i ? p.f[e] * (ds0.f[e] - dots.f[static_cast<std::size_t>(i)]) * sc : 0.0f;
      }
    for_each_version<&autograd::detail::scale_lower_loop>([&](auto fn, const std::string& isa) {
      std::vector<float> x = p.f;
      fn(R, x.data(), sc);
      INFO("scale_lower ", isa);
      CHECK(x == scaled);
    });
    for_each_version<&autograd::detail::softmax_grad_rows_loop>([&](auto fn, const std::string& isa) {
      std::vector<float> x = ds0.f;
      fn(R, p.f.data(), dots.f.data(), sc, x.data());
      INFO("softmax_grad_rows ", isa);
      CHECK(x == grad);
    });
  }
}
