// Lazily zeroed tape gradients (grad_to_write / grad_to_read / grad) and tape blocks (open_block /
// close_block): a kept block back-propagates exactly as unblocked ops; a dropped block's closures
// never run and its nodes' gradients, never zeroed, never reach a result, even on an arena full of
// stale values; misuse is an error.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "fofa/autograd/ops.hpp"
#include "fofa/train/random.hpp"

using namespace fofa;
using namespace fofa::autograd;

namespace {

ParamSet<float> make_params() {
  ParamSet<float> ps;
  ps.add("x", Shape{7, 6});
  ps.add("w", Shape{9, 6});
  ps.add("b", Shape{9});
  ps.add("w2", Shape{6, 9});
  ps.add("m", Shape{1, 2});
  train::Rng rng(3);
  for (auto& p : ps)
    for (auto& v : p.value) v = static_cast<float>(rng.normal());
  ps[ps.find("m")].value = {1.0f, 0.0f};  // block 0 kept, block 1 dropped
  return ps;
}

// x -> two blocks, each X = select_blend(m, k, gelu(X W^T + b) W2^T, X); loss = sum of X * r.
// blocks: use open/close_block (dropping block k when m_k = 0); otherwise plain ops, the dropped
// block's closures skipped by hand (skip_backward) as the model did before blocks existed.
std::vector<std::vector<float>> gradients(ParamSet<float>& ps, bool blocks, bool dirty_arena) {
  GradSet<float> g(ps);
  Tape<float> t(ps, g);
  if (dirty_arena) {  // fill the arena's memory with NaN, then reuse it
    Var junk = t.make(64, 64);
    std::fill_n(t.value(junk), 64 * 64, std::nanf(""));
    std::fill_n(t.grad(junk), 64 * 64, std::nanf(""));
    t.reset();
  }
  Var X = t.param("x"), M = t.param("m");
  for (index_t k = 0; k < 2; ++k) {
    const bool dropped = ps[ps.find("m")].value[static_cast<std::size_t>(k)] == 0.0f;
    Tape<float>::Block b{};
    const std::size_t begin = t.closures();
    if (blocks) b = t.open_block();
    Var h = unary(t, Unary::gelu, linear(t, X, t.param("w"), t.param("b")));
    Var out = linear(t, h, t.param("w2"));
    if (blocks)
      t.close_block(b, dropped);
    else if (dropped)
      t.skip_backward(begin, t.closures());
    X = select_blend(t, M, k, out, X);
  }
  std::vector<float> r(static_cast<std::size_t>(t.rows(X) * t.cols(X)));
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = 0.25f * static_cast<float>(i % 5) - 0.4f;
  Var loss = weighted_sum(t, X, std::span<const float>(r));
  t.backward(loss);
  std::vector<std::vector<float>> out;
  for (int i = 0; i < ps.size(); ++i) out.push_back(g.grad(i));
  return out;
}

}  // namespace

TEST_CASE("tape blocks: kept and dropped blocks give the unblocked graph's gradients bit for bit") {
  ParamSet<float> ps = make_params();
  const auto want = gradients(ps, false, false);
  for (const bool dirty : {false, true}) {
    CAPTURE(dirty);
    const auto got = gradients(ps, true, dirty);
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      for (float v : got[i]) CHECK(std::isfinite(v));
      CHECK(got[i] == want[i]);
    }
  }
  // The mask's gradient reaches both blocks; the first block's weights get gradient, and the
  // dropped block adds none of its own (both blocks share w: compare with everything kept).
  CHECK(want[static_cast<std::size_t>(ps.find("m"))][1] != 0.0f);
  ps[ps.find("m")].value = {1.0f, 1.0f};
  const auto both = gradients(ps, true, true);
  CHECK(both[static_cast<std::size_t>(ps.find("w"))] != want[static_cast<std::size_t>(ps.find("w"))]);
  CHECK(both == gradients(ps, false, false));
}

namespace {
// A tape whose arena's first chunk is full of NaN (stale memory from an earlier use).
void poison(Tape<float>& t) {
  Var junk = t.make(1 << 16, 1);
  std::fill_n(t.value(junk), 1 << 16, std::nanf(""));
  std::fill_n(t.grad(junk), 1 << 16, std::nanf(""));
  t.reset();
}
bool all_zero(const float* p, index_t n) {
  for (index_t i = 0; i < n; ++i)
    if (p[i] != 0.0f || std::signbit(p[i])) return false;
  return true;
}
}  // namespace

TEST_CASE("lazy gradients: the first writer overwrites, readers and grad() see zeros, reshapes share the state") {
  ParamSet<float> ps = make_params();
  GradSet<float> g(ps);
  Tape<float> t(ps, g);
  poison(t);
  Var y = t.make_output(3, 4);
  const auto w1 = t.grad_to_write(y);
  CHECK(w1.overwrite);
  CHECK_FALSE(t.grad_to_write(y).overwrite);  // the second writer adds
  Var z = t.make_output(5, 2);
  CHECK(all_zero(t.grad_to_read(z), 10));  // nothing written: zeroed for the reader
  CHECK_FALSE(t.grad_to_write(z).overwrite);
  Var u = t.make(2, 6);
  CHECK(all_zero(t.grad(u), 12));  // raw access: zeroed
  CHECK_FALSE(t.grad_to_write(u).overwrite);
  Var v = t.make_output(4, 3);
  Var r = t.reshape(v, 2, 6);
  CHECK(t.grad_to_write(r).overwrite);
  CHECK_FALSE(t.grad_to_write(v).overwrite);  // the same storage
  float other[4] = {std::nanf(""), 0, 0, 0};
  Var a = t.alias(1, 4, other, other);  // storage from elsewhere: always added to
  CHECK_FALSE(t.grad_to_write(a).overwrite);
  CHECK_FALSE(t.grad_to_write(t.param("w")).overwrite);
}

TEST_CASE("tape blocks: kept blocks zero what grad() handed out at close; dropped ones never; misuse is an error") {
  ParamSet<float> ps = make_params();
  GradSet<float> g(ps);
  Tape<float> t(ps, g);
  poison(t);
  Var before = t.make_output(2, 2);  // outside any block: grad() zeroes at once
  auto b = t.open_block();
  CHECK_THROWS_WITH_AS(t.open_block(), doctest::Contains("already open"), fofa::Error);
  CHECK(all_zero(t.grad(before), 4));
  Var y = t.make_output(32, 32);
  float* yg = t.grad(y);  // zeroed at close_block
  Var lazy = t.make_output(4, 4);  // never handed out: stays unwritten
  Var one = t.make(1, 1);
  CHECK_THROWS_WITH_AS(t.backward(one), doctest::Contains("open block"), fofa::Error);
  t.close_block(b, false);
  CHECK(all_zero(yg, 32 * 32));
  CHECK(t.grad_to_write(lazy).overwrite);
  CHECK_THROWS_WITH_AS(t.close_block(b, false), doctest::Contains("without open_block"), fofa::Error);
  // A dropped block's gradients are never zeroed, and whoever writes them may overwrite.
  b = t.open_block();
  Var d = t.make_output(4, 4);
  float* dg = t.grad(d);
  t.close_block(b, true);
  CHECK(std::isnan(dg[0]));
  CHECK(std::isnan(t.grad(d)[0]));
  CHECK(t.grad_to_write(d).overwrite);
  // reset() forgets an open block.
  t.open_block();
  t.reset();
  CHECK_NOTHROW(t.close_block(t.open_block(), true));
}
