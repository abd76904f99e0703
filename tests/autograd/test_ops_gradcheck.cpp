// Every autograd op's backward against central finite differences in double, plus the GEMM
// kernels against the scalar reference, the optimisers against hand-computed PyTorch formulas.
#include <doctest/doctest.h>

#include <cmath>

#include "fofa/autograd/optim.hpp"
#include "gradcheck.hpp"

using namespace fofa;
using namespace fofa::autograd;
using fofa::testing::fill_normal;
using fofa::testing::max_gradient_error;
using fofa::testing::random_projection;

namespace {
constexpr double kTol = 1e-6;

// Naive triple loop: C[M,N] = op(A) op(B), A stored [K,M] when ta, B stored [N,K] when tb.
void naive_matmul(bool ta, bool tb, index_t M, index_t N, index_t K, const double* A, const double* B, double* C) {
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) {
      double acc = 0;
      for (index_t k = 0; k < K; ++k) acc += (ta ? A[k * M + m] : A[m * K + k]) * (tb ? B[n * K + k] : B[k * N + n]);
      C[m * N + n] = acc;
    }
}

void check(ParamSet<double>& ps, const std::function<Var(Tape<double>&)>& f) {
  std::string worst;
  const double err = max_gradient_error(ps, f, 1e-6, &worst);
  INFO("worst: ", worst);
  CHECK(err < kTol);
}
}  // namespace

TEST_CASE("gemm kernels match a naive triple loop") {
  train::Rng rng(3);
  for (auto [M, N, K] : {std::array<index_t, 3>{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {50, 64, 64}}) {
    std::vector<double> A(static_cast<std::size_t>(M * K)), B(static_cast<std::size_t>(K * N)),
        Bt(static_cast<std::size_t>(N * K)), C(static_cast<std::size_t>(M * N)), R(C.size()), S(Bt.size());
    for (auto& x : A) x = rng.normal();
    for (auto& x : B) x = rng.normal();
    for (auto& x : Bt) x = rng.normal();
    gemm_nn(M, N, K, A.data(), B.data(), C.data(), false);
    naive_matmul(false, false, M, N, K, A.data(), B.data(), R.data());
    for (std::size_t i = 0; i < C.size(); ++i) CHECK(C[i] == doctest::Approx(R[i]).epsilon(1e-12));
    gemm_nt(M, N, K, A.data(), Bt.data(), C.data(), false, S.data());
    naive_matmul(false, true, M, N, K, A.data(), Bt.data(), R.data());
    for (std::size_t i = 0; i < C.size(); ++i) CHECK(C[i] == doctest::Approx(R[i]).epsilon(1e-12));
    std::vector<double> At(static_cast<std::size_t>(K * M));
    for (auto& x : At) x = rng.normal();
    gemm_tn(M, N, K, At.data(), B.data(), C.data(), false);
    naive_matmul(true, false, M, N, K, At.data(), B.data(), R.data());
    for (std::size_t i = 0; i < C.size(); ++i) CHECK(C[i] == doctest::Approx(R[i]).epsilon(1e-12));
  }
}

TEST_CASE("elementwise ops") {
  ParamSet<double> ps;
  ps.add("a", {3, 4});
  ps.add("b", {3, 4});
  ps.add("row", {4});
  fill_normal(ps, 11);
  check(ps, [](Tape<double>& t) { return random_projection(t, add(t, t.param("a"), t.param("b")), 1); });
  check(ps, [](Tape<double>& t) { return random_projection(t, sub(t, t.param("a"), t.param("b")), 2); });
  check(ps, [](Tape<double>& t) { return random_projection(t, mul(t, t.param("a"), t.param("b")), 3); });
  check(ps, [](Tape<double>& t) { return random_projection(t, add_row(t, t.param("a"), t.param("row")), 4); });
  check(ps, [](Tape<double>& t) { return random_projection(t, mul_row(t, t.param("a"), t.param("row")), 5); });
  check(ps, [](Tape<double>& t) { return random_projection(t, scale(t, t.param("a"), 0.3), 6); });
  check(ps, [](Tape<double>& t) { return random_projection(t, mean_rows(t, t.param("a")), 7); });
  check(ps, [](Tape<double>& t) { return random_projection(t, slice_rows(t, t.param("a"), 1, 3), 8); });
  check(ps, [](Tape<double>& t) {
    return random_projection(t, concat_cols(t, t.param("row"), t.reshape(t.param("a"), 1, 12)), 9);
  });
  check(ps, [](Tape<double>& t) { return random_projection(t, rowwise_dot(t, t.param("a"), t.param("b")), 10); });
  // A value used twice accumulates both gradient paths.
  check(ps, [](Tape<double>& t) {
    Var a = t.param("a");
    return random_projection(t, mul(t, a, a), 12);
  });
}

TEST_CASE("activations") {
  ParamSet<double> ps;
  ps.add("x", {4, 5});
  fill_normal(ps, 12);
  for (auto& v : ps[0].value)
    if (std::abs(v) < 0.05) v = 0.3;  // keep ReLU away from its kink
  for (Unary op : {Unary::relu, Unary::gelu, Unary::tanh, Unary::sigmoid})
    check(ps, [op](Tape<double>& t) { return random_projection(t, unary(t, op, t.param("x")), 13); });
  check(ps, [](Tape<double>& t) { return random_projection(t, relu_shifted(t, t.param("x"), 0.01), 14); });
}

TEST_CASE("linear, matmul, layernorm") {
  ParamSet<double> ps;
  ps.add("x", {5, 7});
  ps.add("w", {3, 7});
  ps.add("b", {3});
  ps.add("m", {7, 4});
  ps.add("gamma", {7});
  ps.add("beta", {7});
  fill_normal(ps, 21);
  check(ps, [](Tape<double>& t) { return random_projection(t, linear(t, t.param("x"), t.param("w"), t.param("b")), 1); });
  check(ps, [](Tape<double>& t) { return random_projection(t, linear(t, t.param("x"), t.param("w")), 2); });
  check(ps, [](Tape<double>& t) { return random_projection(t, matmul(t, t.param("x"), t.param("m")), 3); });
  check(ps, [](Tape<double>& t) {
    return random_projection(t, layernorm(t, t.param("x"), t.param("gamma"), t.param("beta"), 1e-8), 4);
  });
  GradSet<double> g(ps);
  Tape<double> t(ps, g);  // shape errors are fofa::Error
  CHECK_THROWS_AS(linear(t, t.param("x"), t.param("m")), fofa::Error);
  CHECK_THROWS_AS(matmul(t, t.param("x"), t.param("w")), fofa::Error);
  CHECK_THROWS_AS(add(t, t.param("x"), t.param("w")), fofa::Error);
}

TEST_CASE("causal multi-head attention") {
  for (index_t heads : {1, 2, 4}) {
    ParamSet<double> ps;
    ps.add("q", {6, 8});
    ps.add("k", {6, 8});
    ps.add("v", {6, 8});
    fill_normal(ps, 31 + static_cast<std::uint64_t>(heads));
    check(ps, [heads](Tape<double>& t) {
      return random_projection(t, causal_attention(t, t.param("q"), t.param("k"), t.param("v"), heads), 5);
    });
  }
  // Row 0 attends only to itself: output row 0 == v row 0.
  ParamSet<double> ps;
  ps.add("q", {3, 4});
  ps.add("k", {3, 4});
  ps.add("v", {3, 4});
  fill_normal(ps, 5);
  GradSet<double> g(ps);
  Tape<double> t(ps, g);
  Var y = causal_attention(t, t.param("q"), t.param("k"), t.param("v"), 2);
  for (int c = 0; c < 4; ++c) CHECK(t.value(y)[c] == doctest::Approx(ps.at("v").value[static_cast<std::size_t>(c)]));
}

TEST_CASE("embedding gather: gradient rows are sparse and repeated ids accumulate") {
  ParamSet<double> ps;
  const int e = ps.add("emb", {10, 3}, /*sparse_rows=*/true);
  fill_normal(ps, 41);
  const std::vector<std::int32_t> ids = {4, 1, 4, 7};
  check(ps, [&](Tape<double>& t) { return random_projection(t, gather(t, e, std::span(ids), 2.0), 6); });
  GradSet<double> g(ps);
  {
    Tape<double> t(ps, g);
    t.backward(random_projection(t, gather(t, e, std::span(ids), 1.0), 6));
  }
  auto rows = g.touched_rows(e);
  std::sort(rows.begin(), rows.end());
  CHECK(rows == std::vector<index_t>{1, 4, 7});
  g.zero();
  CHECK(g.touched_rows(e).empty());
  for (double v : g.grad(e)) CHECK(v == 0.0);
  Tape<double> t(ps, g);
  const std::vector<std::int32_t> bad = {10};
  CHECK_THROWS_AS(gather(t, e, std::span(bad)), fofa::Error);
}

TEST_CASE("BCE with logits, weighted sum, mask product") {
  ParamSet<double> ps;
  ps.add("x", {6, 1});
  ps.add("a", {2, 3});
  ps.add("b", {2, 3});
  ps.add("m", {1, 2});
  fill_normal(ps, 51, 3.0);
  check(ps, [](Tape<double>& t) { return bce_with_logits_sum(t, t.param("x"), 1.0, 0.25); });
  check(ps, [](Tape<double>& t) { return bce_with_logits_sum(t, t.param("x"), 0.0, 0.5); });
  const std::vector<double> w = {0.2, 0.7};
  check(ps, [&](Tape<double>& t) { return weighted_sum(t, t.param("m"), std::span<const double>(w)); });
  check(ps, [](Tape<double>& t) {
    return random_projection(t, select_blend(t, t.param("m"), 1, t.param("a"), t.param("b")), 7);
  });
  // Extreme logits stay finite.
  ps.at("x").value = {1000, -1000, 0, 50, -50, 3};
  GradSet<double> g(ps);
  Tape<double> t(ps, g);
  Var l = bce_with_logits_sum(t, t.param("x"), 1.0, 1.0);
  CHECK(std::isfinite(t.scalar(l)));
  CHECK(t.scalar(l) == doctest::Approx(1000 + std::log(2.0) + 50 + std::log1p(std::exp(-50.0)) +
                                       std::log1p(std::exp(-3.0)) + std::log1p(std::exp(-50.0)))
                           .epsilon(1e-9));
}

TEST_CASE("straight-through Gumbel-sigmoid: hard forward, soft backward") {
  ParamSet<double> ps;
  ps.add("alpha", {1, 5});
  fill_normal(ps, 61);
  const std::vector<double> noise = {0.3, -1.2, 0.05, 2.0, -0.4};
  const double tau = 0.7;
  GradSet<double> g(ps);
  Tape<double> t(ps, g);
  Var m = gumbel_sigmoid_st(t, t.param("alpha"), std::span<const double>(noise), tau);
  for (int k = 0; k < 5; ++k) {
    const double a = ps[0].value[static_cast<std::size_t>(k)];
    CHECK(t.value(m)[k] == ((a + noise[static_cast<std::size_t>(k)]) > 0 ? 1.0 : 0.0));
  }
  // Backward equals the finite-difference derivative of the soft relaxation.
  const std::vector<double> w = {1, 2, 3, 4, 5};
  t.backward(weighted_sum(t, m, std::span<const double>(w)));
  for (int k = 0; k < 5; ++k) {
    const auto soft = [&](double a) { return 1 / (1 + std::exp(-(a + noise[static_cast<std::size_t>(k)]) / tau)); };
    const double a = ps[0].value[static_cast<std::size_t>(k)];
    const double fd = (soft(a + 1e-6) - soft(a - 1e-6)) / 2e-6;
    CHECK(g.grad(0)[static_cast<std::size_t>(k)] == doctest::Approx(w[static_cast<std::size_t>(k)] * fd).epsilon(1e-6));
  }
  CHECK_THROWS_AS(gumbel_sigmoid_st(t, t.param("alpha"), std::span<const double>(noise), 0.0), fofa::Error);
}

TEST_CASE("dropout: inverted scaling, gradient through the same mask") {
  ParamSet<double> ps;
  ps.add("x", {20, 10});
  fill_normal(ps, 71);
  GradSet<double> g(ps);
  Tape<double> t(ps, g);
  train::Rng rng(5);
  Var y = dropout(t, t.param("x"), 0.5, rng.next());
  int kept = 0;
  for (int i = 0; i < 200; ++i) {
    const double x = ps[0].value[static_cast<std::size_t>(i)], v = t.value(y)[i];
    CHECK((v == 0.0 || v == doctest::Approx(2 * x)));
    kept += v != 0.0;
  }
  CHECK(kept > 60);
  CHECK(kept < 140);
  t.backward(fofa::testing::random_projection(t, y, 3));
  for (int i = 0; i < 200; ++i)
    if (t.value(y)[i] == 0.0 && ps[0].value[static_cast<std::size_t>(i)] != 0.0) CHECK(g.grad(0)[static_cast<std::size_t>(i)] == 0.0);
  CHECK(dropout(t, y, 0.0, 1).id == y.id);
  CHECK_THROWS_AS(dropout(t, y, 1.0, 1), fofa::Error);
}

TEST_CASE("Adam and AdamW follow the PyTorch update") {
  ParamSet<double> ps;
  ps.add("p", {2});
  ps[0].value = {1.0, -2.0};
  GradSet<double> g(ps);
  g.grad(0) = {0.5, -0.25};
  Adam<double> adam(ps, {.lr = 0.1, .weight_decay = 0.01});
  adam.step(ps, g);
  // Step 1: m = 0.1 g', v = 0.001 g'^2 with g' = g + wd p; update = lr * g'/(|g'| + eps*...) ~ lr * sign(g').
  const double g0 = 0.5 + 0.01 * 1.0, g1 = -0.25 + 0.01 * -2.0;
  const double m0 = 0.1 * g0, v0 = 0.001 * g0 * g0, m1 = 0.1 * g1, v1 = 0.001 * g1 * g1;
  CHECK(ps[0].value[0] == doctest::Approx(1.0 - 0.1 / 0.1 * m0 / (std::sqrt(v0) / std::sqrt(0.001) + 1e-8)));
  CHECK(ps[0].value[1] == doctest::Approx(-2.0 - 0.1 / 0.1 * m1 / (std::sqrt(v1) / std::sqrt(0.001) + 1e-8)));

  ParamSet<double> pw;
  pw.add("p", {1});
  pw[0].value = {2.0};
  GradSet<double> gw(pw);
  gw.grad(0) = {0.0};
  Adam<double> adamw(pw, {.lr = 0.1, .weight_decay = 0.5, .decoupled = true});
  adamw.step(pw, gw);
  CHECK(pw[0].value[0] == doctest::Approx(2.0 * (1 - 0.1 * 0.5)));  // zero gradient: only the decay
  CHECK_THROWS_AS(Adam<double>(ps, {.lr = 0.0}), fofa::Error);
}

TEST_CASE("global-norm clipping") {
  ParamSet<double> ps;
  ps.add("a", {2});
  ps.add("e", {3, 2}, true);
  GradSet<double> g(ps);
  g.grad(0) = {3.0, 0.0};
  g.touch(1, 2);
  g.grad(1)[4] = 4.0;
  CHECK(clip_grad_norm(g, 10.0) == doctest::Approx(5.0));
  CHECK(g.grad(0)[0] == 3.0);
  CHECK(clip_grad_norm(g, 1.0) == doctest::Approx(5.0));
  CHECK(std::sqrt(g.squared_norm()) == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(g.grad(1)[4] == doctest::Approx(0.8).epsilon(1e-5));
}

TEST_CASE("fused ops: matmul_acc, residual_dropout, unary_dropout, stack_rows") {
  ParamSet<double> ps;
  ps.add("a", {5, 4});
  ps.add("b", {4, 3});
  ps.add("y", {5, 3});
  ps.add("base", {5, 3});
  ps.add("row", {3});
  ps.add("r0", {1, 3});
  ps.add("r1", {1, 3});
  fill_normal(ps, 19);
  // y + a b in place of a fresh node y = (y0 * 1) (a node no op has read yet).
  check(ps, [](Tape<double>& t) {
    Var y = scale(t, t.param("y"), 1.0);
    return random_projection(t, matmul_acc(t, t.param("a"), t.param("b"), y), 21);
  });
  for (const double p : {0.0, 0.4})
    for (const bool with_row : {false, true}) {
      CAPTURE(p);
      CAPTURE(with_row);
      check(ps, [&](Tape<double>& t) {
        Var z = matmul(t, t.param("a"), t.param("b"));
        return random_projection(t, residual_dropout(t, t.param("base"), z, with_row ? t.param("row") : Var{}, p, 77), 22);
      });
    }
  // The same values, masks and gradients as the unfused graphs.
  for (const bool with_row : {false, true}) {
    GradSet<double> g1(ps), g2(ps);
    Tape<double> t1(ps, g1), t2(ps, g2);
    Var y1 = residual_dropout(t1, t1.param("base"), t1.param("y"), with_row ? t1.param("r0") : Var{}, 0.5, 1234);
    Var z = with_row ? mul_row(t2, t2.param("y"), t2.param("r0")) : t2.param("y");
    Var y2 = add(t2, t2.param("base"), dropout(t2, z, 0.5, 1234));
    for (index_t i = 0; i < 15; ++i) CHECK(t1.value(y1)[i] == t2.value(y2)[i]);
    t1.backward(random_projection(t1, y1, 5));
    t2.backward(random_projection(t2, y2, 5));
    for (int i = 0; i < ps.size(); ++i) CHECK(g1.grad(i) == g2.grad(i));
  }
  for (const Unary op : {Unary::relu, Unary::gelu, Unary::tanh, Unary::sigmoid}) {
    CAPTURE(static_cast<int>(op));
    check(ps, [op](Tape<double>& t) { return random_projection(t, unary_dropout(t, op, t.param("a"), 0.3, 99), 23); });
    GradSet<double> g1(ps), g2(ps);
    Tape<double> t1(ps, g1), t2(ps, g2);
    Var y1 = unary_dropout(t1, op, t1.param("a"), 0.3, 99);
    Var y2 = dropout(t2, unary(t2, op, t2.param("a")), 0.3, 99);
    for (index_t i = 0; i < 20; ++i) CHECK(t1.value(y1)[i] == t2.value(y2)[i]);
    t1.backward(random_projection(t1, y1, 6));
    t2.backward(random_projection(t2, y2, 6));
    for (int i = 0; i < ps.size(); ++i) CHECK(g1.grad(i) == g2.grad(i));
  }
  check(ps, [](Tape<double>& t) {
    const Var rows[] = {t.param("r1"), t.param("r0"), t.param("r1")};
    return random_projection(t, stack_rows(t, std::span<const Var>(rows)), 24);
  });
}
