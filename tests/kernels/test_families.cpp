// Every kernel family compiled into this binary and supported by the CPU, against the scalar
// references, over odd shapes and every tail. Tolerances, per op:
//   gemm, gemm_at, gemm_range none/relu, gemm_b, mul, relu   bit-exact (same FMA order as reference::linear)
//   adam_update                        |d| <= 1e-6 * |ref| + tiny atol (FMAs in the SIMD families)
//   gemm/gemv gelu, unary gelu/tanh/sigmoid   |d| <= 4e-6 * (1 + |ref|)  (SIMD erf/exp/tanh)
//   gemv                               |d| <= 2e-6 * sum_k |x_k w_nk| + |b|  (k split over chains)
//   layernorm, softmax, attention, dot_rows, add_scaled, gather   |d| <= 2e-5 * (1 + |ref|)
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fofa/kernels/kernels.hpp"

using namespace fofa;
using namespace fofa::kernels;

namespace {

std::vector<float> random_vec(std::size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Counts elements of got outside |got - want| <= atol + rtol * |want| (NaN counts as outside).
std::size_t count_far(const float* got, const float* want, std::size_t n, float atol, float rtol) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (!(std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i]))) ++bad;
  return bad;
}

std::vector<const KernelTable*> simd_tables() {
  std::vector<const KernelTable*> out;
  for (const KernelTable* t : available_kernels())
    if (t != &scalar_kernels()) out.push_back(t);
  return out;
}

const std::vector<index_t> kRowsM = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 31, 50, 65};
const std::vector<index_t> kColsN = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 127, 129};
const std::vector<index_t> kDepthK = {0, 1, 3, 7, 16, 17, 64, 65};

}  // namespace

TEST_CASE("the dispatcher lists scalar first and kernels() among the available tables") {
  auto all = available_kernels();
  REQUIRE(!all.empty());
  CHECK(all[0] == &scalar_kernels());
  const char* forced = std::getenv("FOFA_ISA");
  const bool bogus = forced && *forced && !find_kernels(forced);
  bool found = bogus;
  for (const KernelTable* t : all) {
    found = found || (!bogus && t == &fofa::kernels::kernels());
    CHECK(find_kernels(t->name) == t);
  }
  CHECK(found);
  CHECK(find_kernels("no-such-isa") == nullptr);
  CHECK(find_kernels(nullptr) == nullptr);
  if (!bogus) MESSAGE("kernel tables: ", all.size(), ", selected: ", std::string(fofa::kernels::kernels().name));
}

#if defined(FOFA_DISPATCH)
// Run by the ctest entries kernels-isa-* with FOFA_ISA set (see extra.cmake).
TEST_CASE("FOFA_ISA forces a compiled table or fails with a clear error") {
  const char* forced = std::getenv("FOFA_ISA");
  if (!forced || !*forced) return;
  if (find_kernels(forced)) {
    CHECK(std::string(fofa::kernels::kernels().name) == forced);
  } else {
    std::string msg;
    try {
      (void)fofa::kernels::kernels();
    } catch (const Error& e) {
      msg = e.what();
    }
    CHECK(msg.find(std::string("FOFA_ISA=") + forced) != std::string::npos);
    CHECK(msg.find("scalar") != std::string::npos);  // lists what is available
  }
}
#endif

TEST_CASE("gemm matches reference::linear bit-exactly (none, relu) over every M/N/K tail") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t N : kColsN) {
      for (index_t K : kDepthK) {
        const index_t ldw = K + 2;
        auto w = random_vec(static_cast<std::size_t>(N * ldw), static_cast<unsigned>(N * 131 + K));
        auto b = random_vec(static_cast<std::size_t>(N), static_cast<unsigned>(N + 7));
        const bool with_bias = (N + K) % 3 != 0;
        PackedMatrix p;
        t->pack_linear(N, K, w.data(), ldw, with_bias ? b.data() : nullptr, p);
        REQUIRE(p.N == N);
        REQUIRE(p.K == K);
        for (index_t M : kRowsM) {
          const index_t ldx = K + 3, ldy = N + 5;
          auto x = random_vec(static_cast<std::size_t>(M * ldx), static_cast<unsigned>(M * 7 + N * 3 + K));
          for (Activation act : {Activation::none, Activation::relu}) {
            for (bool accumulate : {false, true}) {
              CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(static_cast<int>(act)); CAPTURE(accumulate);
              auto y = random_vec(static_cast<std::size_t>(M * ldy), 99);
              auto want = y;
              reference::linear<float>(M, N, K, x.data(), ldx, w.data(), ldw, with_bias ? b.data() : nullptr,
                                       want.data(), ldy, act, accumulate);
              t->gemm(M, x.data(), ldx, p, y.data(), ldy, act, accumulate);
              // Whole buffer, so writes into the stride gap (columns N..ldy) would be caught too.
              REQUIRE(count_far(y.data(), want.data(), y.size(), 0.0f, 0.0f) == 0);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("pack_linear_t (weight given transposed) gives gemm bit-exact to reference::linear over every tail") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t N : kColsN) {
      for (index_t K : kDepthK) {
        const index_t ldw = K, ldwt = N + 3;
        auto wt = random_vec(static_cast<std::size_t>(std::max<index_t>(K, 1) * ldwt), static_cast<unsigned>(N * 17 + K));
        std::vector<float> w(static_cast<std::size_t>(N * ldw));  // the same weight in nn.Linear layout
        for (index_t n = 0; n < N; ++n)
          for (index_t k = 0; k < K; ++k) w[static_cast<std::size_t>(n * ldw + k)] = wt[static_cast<std::size_t>(k * ldwt + n)];
        auto b = random_vec(static_cast<std::size_t>(N), static_cast<unsigned>(N + 11));
        const bool with_bias = (N + K) % 2 != 0;
        PackedMatrix p;
        t->pack_linear_t(N, K, wt.data(), ldwt, with_bias ? b.data() : nullptr, p);
        REQUIRE(p.N == N);
        REQUIRE(p.K == K);
        for (index_t M : kRowsM) {
          const index_t ldx = K + 1, ldy = N + 2;
          auto x = random_vec(static_cast<std::size_t>(M * ldx), static_cast<unsigned>(M * 5 + N + K));
          for (bool accumulate : {false, true}) {
            CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(accumulate);
            auto y = random_vec(static_cast<std::size_t>(M * ldy), 77);
            auto want = y;
            reference::linear<float>(M, N, K, x.data(), ldx, w.data(), ldw, with_bias ? b.data() : nullptr,
                                     want.data(), ldy, Activation::none, accumulate);
            t->gemm(M, x.data(), ldx, p, y.data(), ldy, Activation::none, accumulate);
            REQUIRE(count_far(y.data(), want.data(), y.size(), 0.0f, 0.0f) == 0);
          }
        }
      }
    }
  }
}

// pack_linear transposes whole blocks in registers and the rest element by element; pack_linear_t
// of the transposed weight only copies rows. Same layout, so the same bytes, zero padding included.
TEST_CASE("pack_linear packs the same bytes as pack_linear_t of the transposed weight over every block tail") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t N : {1, 7, 8, 9, 15, 16, 17, 24, 31, 33, 63, 64, 65, 72, 129, 200}) {
      for (index_t K : {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 80, 257}) {
        CAPTURE(N); CAPTURE(K);
        const index_t ldw = K + 3;
        auto w = random_vec(static_cast<std::size_t>(N * ldw), static_cast<unsigned>(N * 17 + K));
        auto b = random_vec(static_cast<std::size_t>(N), static_cast<unsigned>(N + 3));
        std::vector<float> wt(static_cast<std::size_t>(K * N));
        for (index_t n = 0; n < N; ++n)
          for (index_t k = 0; k < K; ++k) wt[static_cast<std::size_t>(k * N + n)] = w[static_cast<std::size_t>(n * ldw + k)];
        // Both buffers first hold a larger all-NaN pack, so every byte a pack fails to write shows.
        const std::vector<float> nan(static_cast<std::size_t>((N + 40) * (K + 20)), std::numeric_limits<float>::quiet_NaN());
        for (const float* bias : {static_cast<const float*>(nullptr), static_cast<const float*>(b.data())}) {
          PackedMatrix direct, from_t;
          t->pack_linear(N + 40, K + 20, nan.data(), K + 20, nan.data(), direct);
          t->pack_linear(N + 40, K + 20, nan.data(), K + 20, nan.data(), from_t);
          t->pack_linear(N, K, w.data(), ldw, bias, direct);
          t->pack_linear_t(N, K, wt.data(), N, bias, from_t);
          REQUIRE(direct.data.size() == from_t.data.size());
          CHECK(std::memcmp(direct.data.data(), from_t.data.data(), direct.data.size() * sizeof(float)) == 0);
        }
      }
    }
  }
}

TEST_CASE("gemm_b (B read in place) is bit-exact to reference::product_b and to gemm on pack_linear_t(B)") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t N : kColsN) {
      for (index_t K : kDepthK) {
        // b holds exactly its K rows (the last one only N floats), so a read past them is an
        // out-of-bounds read under AddressSanitizer.
        const index_t ldb = N + 3;
        auto b = random_vec(static_cast<std::size_t>(K > 0 ? (K - 1) * ldb + N : 0), static_cast<unsigned>(N * 5 + K));
        PackedMatrix p;
        t->pack_linear_t(N, K, b.data(), ldb, nullptr, p);
        for (index_t M : kRowsM) {
          for (bool transposed : {false, true}) {
            const index_t ldx = transposed ? M + 2 : K + 3, rsx = transposed ? 1 : ldx, csx = transposed ? ldx : 1;
            auto x = random_vec(static_cast<std::size_t>(transposed ? K * ldx : M * ldx), static_cast<unsigned>(M + N + K));
            for (bool accumulate : {false, true}) {
              CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(transposed); CAPTURE(accumulate);
              const index_t ldy = N + 5;
              auto y = random_vec(static_cast<std::size_t>(M * ldy), 77);
              auto want = y, packed = y;
              reference::product_b<float>(M, N, K, x.data(), rsx, csx, b.data(), ldb, want.data(), ldy, accumulate);
              t->gemm_b(M, x.data(), rsx, csx, N, K, b.data(), ldb, y.data(), ldy, accumulate);
              t->gemm_range(M, x.data(), rsx, csx, p, 0, K, N, packed.data(), ldy, Activation::none, accumulate);
              REQUIRE(count_far(y.data(), want.data(), y.size(), 0.0f, 0.0f) == 0);
              REQUIRE(count_far(y.data(), packed.data(), y.size(), 0.0f, 0.0f) == 0);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("gemm_at (left operand given transposed) is bit-exact to reference::linear over every M/N/K tail") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t N : kColsN) {
      for (index_t K : kDepthK) {
        const index_t ldw = K + 1;
        auto w = random_vec(static_cast<std::size_t>(N * ldw), static_cast<unsigned>(N * 29 + K));
        auto b = random_vec(static_cast<std::size_t>(N), static_cast<unsigned>(N + 13));
        const bool with_bias = (N + K) % 3 != 1;
        PackedMatrix p;
        t->pack_linear(N, K, w.data(), ldw, with_bias ? b.data() : nullptr, p);
        for (index_t M : {0, 1, 2, 3, 5, 7, 8, 9, 13, 17, 31, 33, 50, 65, 129}) {
          const index_t ldxt = M + 3, ldx = K + 2, ldy = N + 4;
          auto xt = random_vec(static_cast<std::size_t>(std::max<index_t>(K, 1) * ldxt),
                               static_cast<unsigned>(M * 11 + N * 5 + K));
          std::vector<float> x(static_cast<std::size_t>(std::max<index_t>(M, 1) * ldx), 0.0f);  // x = xt^T
          for (index_t m = 0; m < M; ++m)
            for (index_t k = 0; k < K; ++k) x[static_cast<std::size_t>(m * ldx + k)] = xt[static_cast<std::size_t>(k * ldxt + m)];
          for (Activation act : {Activation::none, Activation::relu}) {
            for (bool accumulate : {false, true}) {
              CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(static_cast<int>(act)); CAPTURE(accumulate);
              auto y = random_vec(static_cast<std::size_t>(std::max<index_t>(M, 1) * ldy), 55);
              auto want = y;
              reference::linear<float>(M, N, K, x.data(), ldx, w.data(), ldw, with_bias ? b.data() : nullptr,
                                       want.data(), ldy, act, accumulate);
              t->gemm_at(M, xt.data(), ldxt, p, y.data(), ldy, act, accumulate);
              REQUIRE(count_far(y.data(), want.data(), y.size(), 0.0f, 0.0f) == 0);
              if (M == 1) {  // a single row needs no row stride: ldxt == M is valid too
                auto y1 = random_vec(y.size(), 55);
                t->gemm_at(M, xt.data(), M, p, y1.data(), ldy, act, accumulate);
                std::vector<float> x1(static_cast<std::size_t>(std::max<index_t>(K, 1)));
                for (index_t k = 0; k < K; ++k) x1[static_cast<std::size_t>(k)] = xt[static_cast<std::size_t>(k)];
                auto want1 = random_vec(y.size(), 55);
                reference::linear<float>(M, N, K, x1.data(), K, w.data(), ldw, with_bias ? b.data() : nullptr,
                                         want1.data(), ldy, act, accumulate);
                REQUIRE(count_far(y1.data(), want1.data(), y1.size(), 0.0f, 0.0f) == 0);
              }
            }
          }
        }
      }
    }
  }
}

// The sub-problem gemm_range computes, from the unpacked w [N, ldw] and the strided x.
void want_range(index_t M, const float* x, index_t rsx, index_t csx, const std::vector<float>& w, index_t ldw,
                const float* bias, index_t k_begin, index_t k_end, index_t n_end, float* y, index_t ldy,
                Activation act, bool accumulate) {
  reference::detail::linear_strided<float>(M, n_end, k_end - k_begin, x + k_begin * csx, rsx, csx, w.data() + k_begin,
                                           ldw, bias, y, ldy, act, accumulate);
}

TEST_CASE("gemm_range (column prefix, k range, either x layout) is bit-exact to reference::linear over every tail") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t N : {1, 3, 4, 5, 8, 9, 15, 16, 17, 31, 33, 49, 50, 64, 65, 129}) {  // every vector/panel tail
      for (index_t K : {0, 1, 7, 16, 17, 65}) {
        const index_t ldw = K + 1;
        auto w = random_vec(static_cast<std::size_t>(N * ldw), static_cast<unsigned>(N * 31 + K));
        auto b = random_vec(static_cast<std::size_t>(N), static_cast<unsigned>(N + 17));
        const bool with_bias = (N + K) % 3 != 0;
        PackedMatrix p;
        t->pack_linear(N, K, w.data(), ldw, with_bias ? b.data() : nullptr, p);
        // Every n_end up to N (all column tails) and a spread of k ranges (empty, one, prefix,
        // suffix, middle, all).
        std::vector<std::pair<index_t, index_t>> kr = {{0, K}, {0, 0}, {K, K}, {0, K / 2}, {K / 2, K}, {K / 3, K - K / 4}};
        if (K > 0) kr.push_back({K - 1, K});
        for (index_t M : {1, 7, 50}) {  // a row, a partial tile and 50 rows (the attention blocks)
          const index_t ldx = K + 2, ldxt = M + 3, ldy = N + 4;
          auto x = random_vec(static_cast<std::size_t>(std::max<index_t>(M, 1) * ldx), static_cast<unsigned>(M * 7 + N + K));
          std::vector<float> xt(static_cast<std::size_t>(std::max<index_t>(K, 1) * ldxt), 0.0f);  // xt = x^T
          for (index_t m = 0; m < M; ++m)
            for (index_t k = 0; k < K; ++k) xt[static_cast<std::size_t>(k * ldxt + m)] = x[static_cast<std::size_t>(m * ldx + k)];
          for (index_t n_end = 0; n_end <= N; ++n_end) {
            // Every column tail of the first vectors, of the last ones and at the 32/48/64 panel
            // and vector boundaries.
            const bool near = n_end <= 17 || n_end >= N - 3 || n_end % 16 <= 1 || n_end % 16 == 15;
            if (!near) continue;
            // Not a structured binding: CAPTURE's lambda can't name one before Clang 16.
            for (const auto& range : kr) {
              const index_t k0 = range.first, k1 = range.second;
              for (bool transposed : {false, true}) {
                const bool accumulate = (n_end + k0) % 2 == 1;
                const Activation act = (n_end + k1) % 3 == 2 ? Activation::relu : Activation::none;
                CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(n_end); CAPTURE(k0); CAPTURE(k1); CAPTURE(transposed);
                auto y = random_vec(static_cast<std::size_t>(M * ldy), 57);
                auto want = y;
                want_range(M, x.data(), ldx, 1, w, ldw, with_bias ? b.data() : nullptr, k0, k1, n_end, want.data(),
                           ldy, act, accumulate);
                if (transposed)
                  t->gemm_range(M, xt.data(), 1, ldxt, p, k0, k1, n_end, y.data(), ldy, act, accumulate);
                else
                  t->gemm_range(M, x.data(), ldx, 1, p, k0, k1, n_end, y.data(), ldy, act, accumulate);
                // Bit-exact on columns < n_end; every other float of y untouched.
                REQUIRE(count_far(y.data(), want.data(), y.size(), 0.0f, 0.0f) == 0);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("gemm_range over the nonzero part of x equals the full gemm bit for bit; bad ranges are errors") {
  // x lower triangular (row m nonzero in k <= m): row block [m0, m1) needs k < m1 only, and the
  // transposed product's rows j need k >= j only; the causal attention products rely on both.
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t R : {1, 7, 16, 17, 50, 65}) {
      for (index_t N : {1, 16, 32, 33}) {
        CAPTURE(R); CAPTURE(N);
        auto x = random_vec(static_cast<std::size_t>(R * R), static_cast<unsigned>(R + N));
        for (index_t m = 0; m < R; ++m)
          for (index_t k = m + 1; k < R; ++k) x[static_cast<std::size_t>(m * R + k)] = 0.0f;
        auto w = random_vec(static_cast<std::size_t>(N * R), static_cast<unsigned>(3 * R + N));
        PackedMatrix p;
        t->pack_linear(N, R, w.data(), R, nullptr, p);
        std::vector<float> full(static_cast<std::size_t>(R * N)), part(full.size(), -1.0f);
        std::vector<float> full_t(full.size()), part_t(full.size(), -1.0f);
        t->gemm(R, x.data(), R, p, full.data(), N, Activation::none, false);
        t->gemm_at(R, x.data(), R, p, full_t.data(), N, Activation::none, false);
        for (index_t m0 = 0; m0 < R; m0 += 16) {
          const index_t m1 = std::min<index_t>(m0 + 16, R);
          t->gemm_range(m1 - m0, x.data() + m0 * R, R, 1, p, 0, m1, N, part.data() + m0 * N, N, Activation::none, false);
          t->gemm_range(m1 - m0, x.data() + m0, 1, R, p, m0, R, N, part_t.data() + m0 * N, N, Activation::none, false);
        }
        REQUIRE(count_far(part.data(), full.data(), full.size(), 0.0f, 0.0f) == 0);
        REQUIRE(count_far(part_t.data(), full_t.data(), full.size(), 0.0f, 0.0f) == 0);
        std::vector<float> y(static_cast<std::size_t>(R * N));
        CHECK_THROWS_WITH_AS(t->gemm_range(R, x.data(), R, 1, p, 0, R + 1, N, y.data(), N, Activation::none, false),
                             doctest::Contains("outside the packed matrix"), Error);
        CHECK_THROWS_AS(t->gemm_range(R, x.data(), R, 1, p, 1, 0, N, y.data(), N, Activation::none, false), Error);
        CHECK_THROWS_AS(t->gemm_range(R, x.data(), R, 1, p, 0, R, N + 1, y.data(), N, Activation::none, false), Error);
        CHECK_THROWS_AS(t->gemm_range(R, x.data(), R, 1, p, -1, R, N, y.data(), N, Activation::none, false), Error);
      }
    }
  }
}

namespace {
std::vector<GemmCall> observed;
void record_gemm(const GemmCall& c) { observed.push_back(c); }
}  // namespace

TEST_CASE("gemm_observer sees every gemm, gemm_at and gemm_range with its shape, and nothing when unset") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    const index_t M = 7, N = 33, K = 17;
    auto x = random_vec(static_cast<std::size_t>(M * K), 5), w = random_vec(static_cast<std::size_t>(N * K), 6);
    PackedMatrix p;
    t->pack_linear(N, K, w.data(), K, nullptr, p);
    std::vector<float> y(static_cast<std::size_t>(M * N)), y_seen(y.size());
    t->gemm(M, x.data(), K, p, y.data(), N, Activation::none, false);
    observed.clear();
    gemm_observer = &record_gemm;
    t->gemm(M, x.data(), K, p, y_seen.data(), N, Activation::none, false);
    t->gemm_at(M, x.data(), M, p, y_seen.data(), N, Activation::none, true);  // x read as x^T [K, M]
    t->gemm_range(M, x.data(), K, 1, p, 3, 11, 20, y_seen.data(), N, Activation::none, true);
    gemm_observer = nullptr;
    t->gemm(M, x.data(), K, p, y_seen.data(), N, Activation::none, false);  // unobserved: same result
    REQUIRE(observed.size() == 3);
    CHECK((observed[0].M == M && observed[0].N == N && observed[0].K == K && !observed[0].x_transposed));
    CHECK((observed[1].M == M && observed[1].N == N && observed[1].K == K && observed[1].x_transposed));
    CHECK((observed[2].M == M && observed[2].N == 20 && observed[2].K == 8 && !observed[2].x_transposed));
    for (const GemmCall& c : observed) CHECK(c.seconds >= 0.0);
    CHECK(count_far(y_seen.data(), y.data(), y.size(), 0.0f, 0.0f) == 0);
  }
}

// Not bit-exact: the SIMD families compute the moment updates b m + (1 - b) g and the L2 term
// g + wd p as FMAs, which round once where the reference rounds twice (and the scalar table may
// be contracted the same way by the compiler when built with -mfma).
TEST_CASE("adam_update matches reference::adam_update over every tail, with and without weight decay") {
  std::vector<index_t> sizes;
  for (index_t n = 0; n <= 70; ++n) sizes.push_back(n);
  sizes.push_back(4099);
  struct Mode { float wd; bool decoupled; };
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (Mode mode : {Mode{0.0f, false}, Mode{0.01f, false}, Mode{0.05f, true}}) {
      for (float grad_scale : {1.0f, 0.37f}) {
        AdamArgs a;
        a.grad_scale = grad_scale;
        a.beta1 = 0.9f;
        a.beta2 = 0.98f;
        a.eps = 1e-8f;
        a.lr = 1e-3f;
        a.step_size = 1e-3f / (1.0f - 0.9f * 0.9f * 0.9f);  // step 3
        a.sqrt_bc2 = std::sqrt(1.0f - 0.98f * 0.98f * 0.98f);
        a.weight_decay = mode.wd;
        a.decoupled = mode.decoupled;
        for (index_t n : sizes) {
          CAPTURE(n); CAPTURE(mode.wd); CAPTURE(mode.decoupled); CAPTURE(grad_scale);
          const std::size_t len = static_cast<std::size_t>(n) + 3;  // 3 sentinels past the end
          auto p = random_vec(len, static_cast<unsigned>(n + 1));
          auto g = random_vec(len, static_cast<unsigned>(n + 2), -3.0f, 3.0f);
          auto m = random_vec(len, static_cast<unsigned>(n + 3), -0.1f, 0.1f);
          auto v = random_vec(len, static_cast<unsigned>(n + 4), 0.0f, 0.01f);
          if (n > 1) v[1] = 0.0f, m[1] = 0.0f, g[1] = 0.0f;  // sqrt(0): the eps-only denominator
          auto pw = p, mw = m, vw = v;
          reference::adam_update<float>(n, pw.data(), g.data(), mw.data(), vw.data(), a);
          t->adam_update(n, p.data(), g.data(), m.data(), v.data(), a);
          // atol: m's two terms may cancel, so its error is an ulp of the terms, not of the sum
          CHECK(count_far(m.data(), mw.data(), len, 1e-7f, 1e-6f) == 0);
          CHECK(count_far(v.data(), vw.data(), len, 1e-12f, 1e-6f) == 0);
          CHECK(count_far(p.data(), pw.data(), len, 1e-8f, 1e-6f) == 0);
          for (std::size_t i = static_cast<std::size_t>(n); i < len; ++i) {  // untouched past n
            CHECK(p[i] == pw[i]);
            CHECK(m[i] == mw[i]);
            CHECK(v[i] == vw[i]);
          }
        }
      }
    }
  }
}

TEST_CASE("gemm with gelu within tolerance; gemv within tolerance of the reference") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t N : kColsN) {
      for (index_t K : {0, 1, 5, 16, 33, 64, 256}) {
        auto w = random_vec(static_cast<std::size_t>(N * K), static_cast<unsigned>(3 * N + K));
        auto b = random_vec(static_cast<std::size_t>(N), 5);
        PackedMatrix p;
        t->pack_linear(N, K, w.data(), K, b.data(), p);
        for (index_t M : {1, 3, 7, 13}) {
          auto x = random_vec(static_cast<std::size_t>(M * K), static_cast<unsigned>(M + N + K));
          std::vector<float> y(static_cast<std::size_t>(M * N)), want(y.size());
          reference::linear<float>(M, N, K, x.data(), K, w.data(), K, b.data(), want.data(), N, Activation::gelu);
          t->gemm(M, x.data(), K, p, y.data(), N, Activation::gelu, false);
          CAPTURE(M); CAPTURE(N); CAPTURE(K);
          CHECK(count_far(y.data(), want.data(), y.size(), 4e-6f, 4e-6f) == 0);
        }
        // gemv: bound by the magnitude of the summands
        auto x = random_vec(static_cast<std::size_t>(K), static_cast<unsigned>(K + 11));
        for (Activation act : {Activation::none, Activation::relu, Activation::gelu}) {
          for (bool accumulate : {false, true}) {
            auto y = random_vec(static_cast<std::size_t>(N), 17);
            auto want = y;
            reference::linear<float>(1, N, K, x.data(), K, w.data(), K, b.data(), want.data(), N, act, accumulate);
            t->gemv(x.data(), p, y.data(), act, accumulate);
            for (index_t n = 0; n < N; ++n) {
              float mag = std::fabs(b[static_cast<std::size_t>(n)]);
              for (index_t k = 0; k < K; ++k) mag += std::fabs(x[static_cast<std::size_t>(k)] * w[static_cast<std::size_t>(n * K + k)]);
              CAPTURE(N); CAPTURE(K); CAPTURE(n);
              CHECK(std::fabs(y[static_cast<std::size_t>(n)] - want[static_cast<std::size_t>(n)]) <= 2e-6f * mag + 4e-6f);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("gemm propagates NaN and rejects matrices packed by another family") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    const index_t N = 19, K = 5;
    auto w = random_vec(N * K, 1);
    PackedMatrix p;
    t->pack_linear(N, K, w.data(), K, nullptr, p);
    auto x = random_vec(2 * K, 2);
    x[3] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> y(2 * N);
    t->gemm(2, x.data(), K, p, y.data(), N, Activation::none, false);
    for (index_t n = 0; n < N; ++n) {
      CHECK(std::isnan(y[static_cast<std::size_t>(n)]));
      CHECK(!std::isnan(y[static_cast<std::size_t>(N + n)]));
    }
    for (const KernelTable* other : available_kernels()) {
      if (other == t) continue;
      CHECK_THROWS_AS(other->gemm(2, x.data(), K, p, y.data(), N, Activation::none, false), Error);
      CHECK_THROWS_AS(other->gemv(x.data(), p, y.data(), Activation::none, false), Error);
    }
  }
}

TEST_CASE("layernorm, softmax and dot_rows over odd widths") {
  for (const KernelTable* t : simd_tables()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t d : {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 50, 64, 65, 100, 257}) {
      const index_t rows = 5, ld = d + 3;
      auto x = random_vec(static_cast<std::size_t>(rows * ld), static_cast<unsigned>(d), -3.0f, 5.0f);
      auto g = random_vec(static_cast<std::size_t>(d), 3);
      auto be = random_vec(static_cast<std::size_t>(d), 4);
      std::vector<float> y(x.size(), 7.0f), want(x.size(), 7.0f);
      CAPTURE(d);
      reference::layernorm<float>(rows, d, x.data(), ld, g.data(), be.data(), 1e-8f, want.data(), ld);
      t->layernorm(rows, d, x.data(), ld, g.data(), be.data(), 1e-8f, y.data(), ld);
      CHECK(count_far(y.data(), want.data(), y.size(), 2e-5f, 2e-5f) == 0);
      // in place, no affine
      auto yi = x;
      reference::layernorm<float>(rows, d, x.data(), ld, nullptr, nullptr, 1e-5f, want.data(), ld);
      t->layernorm(rows, d, yi.data(), ld, nullptr, nullptr, 1e-5f, yi.data(), ld);
      for (index_t r = 0; r < rows; ++r)
        CHECK(count_far(yi.data() + r * ld, want.data() + r * ld, static_cast<std::size_t>(d), 2e-5f, 2e-5f) == 0);

      // softmax: every causal offset / col_begin combination on a small grid
      for (bool causal : {false, true}) {
        for (index_t off : {0, 1, 5}) {
          for (index_t cb : {index_t{0}, index_t{1}, d / 2, d}) {
            auto s = random_vec(static_cast<std::size_t>(rows * ld), static_cast<unsigned>(d + off + cb), -8.0f, 8.0f);
            auto sw = s;
            CAPTURE(causal); CAPTURE(off); CAPTURE(cb);
            reference::softmax_rows<float>(rows, d, sw.data(), ld, causal, off, cb);
            t->softmax_rows(rows, d, s.data(), ld, causal, off, cb);
            CHECK(count_far(s.data(), sw.data(), s.size(), 2e-6f, 2e-5f) == 0);
          }
        }
      }

      std::vector<float> dots(rows), dw(rows);
      reference::dot_rows<float>(rows, d, g.data(), x.data(), ld, dw.data());
      t->dot_rows(rows, d, g.data(), x.data(), ld, dots.data());
      CHECK(count_far(dots.data(), dw.data(), dots.size(), 2e-5f * static_cast<float>(d), 2e-5f) == 0);
      // contiguous rows take the 4-row path when d is a multiple of the vector width
      std::vector<float> dots2(9), dw2(9);
      auto m = random_vec(static_cast<std::size_t>(9 * d), 8);
      reference::dot_rows<float>(9, d, g.data(), m.data(), d, dw2.data());
      t->dot_rows(9, d, g.data(), m.data(), d, dots2.data());
      CHECK(count_far(dots2.data(), dw2.data(), dots2.size(), 2e-5f * static_cast<float>(d), 2e-5f) == 0);
    }
  }
}

TEST_CASE("element-wise ops and gather over every tail length") {
  for (const KernelTable* t : simd_tables()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (index_t n : {0, 1, 2, 3, 5, 8, 15, 16, 17, 31, 33, 64, 100}) {
      CAPTURE(n);
      auto x = random_vec(static_cast<std::size_t>(n) + 1, static_cast<unsigned>(n), -6.0f, 6.0f);
      auto b = random_vec(static_cast<std::size_t>(n) + 1, static_cast<unsigned>(n + 1));
      for (UnaryOp op : {UnaryOp::relu, UnaryOp::gelu, UnaryOp::tanh, UnaryOp::sigmoid}) {
        std::vector<float> y(x.size(), 42.0f), want(x.size(), 42.0f);
        reference::unary<float>(op, n, x.data(), want.data());
        t->unary(op, n, x.data(), y.data());
        CAPTURE(static_cast<int>(op));
        const float tol = op == UnaryOp::relu ? 0.0f : 4e-6f;
        CHECK(count_far(y.data(), want.data(), y.size(), tol, tol) == 0);  // incl. the untouched sentinel
      }
      std::vector<float> y(x.size(), 42.0f), want(x.size(), 42.0f);
      reference::mul<float>(n, x.data(), b.data(), want.data());
      t->mul(n, x.data(), b.data(), y.data());
      CHECK(count_far(y.data(), want.data(), y.size(), 0.0f, 0.0f) == 0);
      reference::add_scaled<float>(n, x.data(), -0.37f, b.data(), want.data());
      t->add_scaled(n, x.data(), -0.37f, b.data(), y.data());
      CHECK(count_far(y.data(), want.data(), y.size(), 1e-6f, 1e-6f) == 0);
      auto yy = x;  // aliasing y == a
      t->add_scaled(n, yy.data(), -0.37f, b.data(), yy.data());
      reference::add_scaled<float>(n, x.data(), -0.37f, b.data(), want.data());
      CHECK(count_far(yy.data(), want.data(), static_cast<std::size_t>(n), 1e-6f, 1e-6f) == 0);

      // gather: ids in any order, with and without the addend
      const index_t rows = 4, V = 9;
      auto table = random_vec(static_cast<std::size_t>(V * (n + 2)), 12);
      auto add = random_vec(static_cast<std::size_t>(rows * (n + 1)), 13);
      const std::int32_t ids[] = {8, 0, 3, 3};
      for (bool with_add : {false, true}) {
        std::vector<float> o(static_cast<std::size_t>(rows * (n + 4)), 5.0f), ow = o;
        reference::gather_rows<float>(rows, n, table.data(), n + 2, ids, 8.0f, with_add ? add.data() : nullptr, n + 1,
                                      ow.data(), n + 4);
        t->gather_rows(rows, n, table.data(), n + 2, ids, 8.0f, with_add ? add.data() : nullptr, n + 1, o.data(), n + 4);
        CHECK(count_far(o.data(), ow.data(), o.size(), 1e-6f, 1e-6f) == 0);
      }
    }
  }
}

TEST_CASE("attention matches the reference: cached rows, padding, every head width, up to 512 keys") {
  struct Case {
    index_t q_rows, q_offset, key_begin, heads, head_dim;
  };
  std::vector<Case> cases;
  for (index_t dh : {1, 3, 8, 16, 17, 32, 48, 64, 128, 130})
    for (index_t L : {1, 2, 5, 17, 50})
      cases.push_back({L, 0, 0, 2, dh});
  for (index_t L : {33, 64, 100, 200, 512}) cases.push_back({L, 0, 0, 1, 32});
  cases.push_back({512, 0, 37, 2, 32});
  for (index_t dh : {1, 3, 8, 16, 17, 32, 48, 64, 128, 130}) {  // one new row (the device push path)
    cases.push_back({1, 37, 0, 2, dh});
    cases.push_back({1, 40, 5, 2, dh});   // key_begin not a multiple of the vector width
    cases.push_back({1, 20, 21, 2, dh});  // every visible key is padding -> zeros
  }
  cases.push_back({1, 49, 0, 2, 32});     // incremental: one new row, 49 cached
  cases.push_back({3, 47, 10, 2, 32});    // cached + padding
  cases.push_back({1, 199, 150, 4, 16});
  cases.push_back({5, 0, 3, 2, 32});      // rows before key_begin see nothing -> zeros
  cases.push_back({5, 0, 5, 2, 32});      // every key is padding
  cases.push_back({20, 0, 19, 3, 17});
  cases.push_back({40, 10, 45, 1, 64});   // whole row blocks before key_begin
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    for (const Case& c : cases) {
      CAPTURE(c.q_rows); CAPTURE(c.q_offset); CAPTURE(c.key_begin); CAPTURE(c.heads); CAPTURE(c.head_dim);
      const index_t width = c.heads * c.head_dim, keys = c.q_offset + c.q_rows;
      const index_t ldq = width + 1, ldk = width + 2, ldv = width + 3, ldo = width + 4;
      auto q = random_vec(static_cast<std::size_t>(c.q_rows * ldq), 21, -2.0f, 2.0f);
      auto k = random_vec(static_cast<std::size_t>(keys * ldk), 22, -2.0f, 2.0f);
      auto v = random_vec(static_cast<std::size_t>(keys * ldv), 23);
      std::vector<float> out(static_cast<std::size_t>(c.q_rows * ldo), 3.0f), want = out;
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      reference::attention<float>(c.q_rows, c.q_offset, c.key_begin, c.heads, c.head_dim, q.data(), ldq, k.data(),
                                  ldk, v.data(), ldv, want.data(), ldo, scale);
      std::vector<float> scratch(static_cast<std::size_t>(attention_scratch_floats(keys)), -1.0f);
      AttentionArgs a;
      a.q_rows = c.q_rows; a.q_offset = c.q_offset; a.key_begin = c.key_begin;
      a.heads = c.heads; a.head_dim = c.head_dim;
      a.q = q.data(); a.ldq = ldq; a.k = k.data(); a.ldk = ldk; a.v = v.data(); a.ldv = ldv;
      a.out = out.data(); a.ldo = ldo; a.scale = scale; a.scratch = scratch.data();
      t->attention(a);
      CHECK(count_far(out.data(), want.data(), out.size(), 2e-5f, 2e-5f) == 0);
    }
  }
}

TEST_CASE("NaN propagates through softmax rows and attention like the reference") {
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    const index_t rows = 3, cols = 21;
    auto s = random_vec(static_cast<std::size_t>(rows * cols), 31);
    s[static_cast<std::size_t>(cols + 4)] = std::numeric_limits<float>::quiet_NaN();  // row 1, col 4
    auto sw = s;
    reference::softmax_rows<float>(rows, cols, sw.data(), cols, false, 0, 0);
    t->softmax_rows(rows, cols, s.data(), cols, false, 0, 0);
    for (index_t c = 0; c < cols; ++c) {
      CHECK(std::isnan(s[static_cast<std::size_t>(cols + c)]));
      CHECK(std::isnan(sw[static_cast<std::size_t>(cols + c)]));
      CHECK(!std::isnan(s[static_cast<std::size_t>(c)]));
      CHECK(!std::isnan(s[static_cast<std::size_t>(2 * cols + c)]));
    }
    // Activations treat NaN like the reference: relu gives 0, gelu/tanh/sigmoid keep NaN.
    const float nan_in[3] = {std::numeric_limits<float>::quiet_NaN(), 1.0f, -1.0f};
    for (UnaryOp op : {UnaryOp::relu, UnaryOp::gelu, UnaryOp::tanh, UnaryOp::sigmoid}) {
      float got[3], want[3];
      t->unary(op, 3, nan_in, got);
      reference::unary<float>(op, 3, nan_in, want);
      CHECK(std::isnan(got[0]) == std::isnan(want[0]));
      CHECK(got[1] == doctest::Approx(want[1]).epsilon(1e-5));
    }
    // Outside the kept columns the NaN is masked away, as in the reference.
    auto s2 = random_vec(static_cast<std::size_t>(rows * cols), 32);
    s2[static_cast<std::size_t>(cols - 1)] = std::numeric_limits<float>::quiet_NaN();  // row 0, last col
    t->softmax_rows(rows, cols, s2.data(), cols, true, 0, 0);
    CHECK(s2[0] == 1.0f);
    CHECK(s2[static_cast<std::size_t>(cols - 1)] == 0.0f);

    // A NaN key poisons exactly the query rows that can see it.
    const index_t L = 20, dh = 16;
    auto q = random_vec(static_cast<std::size_t>(L * dh), 33);
    auto k = random_vec(static_cast<std::size_t>(L * dh), 34);
    auto v = random_vec(static_cast<std::size_t>(L * dh), 35);
    k[static_cast<std::size_t>(7 * dh + 3)] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> out(static_cast<std::size_t>(L * dh));
    std::vector<float> scratch(static_cast<std::size_t>(attention_scratch_floats(L)));
    AttentionArgs a;
    a.q_rows = L; a.heads = 1; a.head_dim = dh;
    a.q = q.data(); a.ldq = dh; a.k = k.data(); a.ldk = dh; a.v = v.data(); a.ldv = dh;
    a.out = out.data(); a.ldo = dh; a.scale = 0.25f; a.scratch = scratch.data();
    t->attention(a);
    for (index_t i = 0; i < L; ++i) CHECK(std::isnan(out[static_cast<std::size_t>(i * dh)]) == (i >= 7));
  }
}
