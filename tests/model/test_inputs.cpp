// ForwardOfa's documented input rules (model/forward_ofa.hpp), the block-selection rule, weight
// and config validation, seeded init, and the workspace contract.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

#include "fofa/model/forward_ofa.hpp"
#include "fofa/model/init.hpp"
#include "../common/small_config.hpp"

using namespace fofa;

namespace {

ModelConfig small_config() { return testing::small_config({.items = 40, .blocks = 3, .max_len = 10}); }

std::vector<std::int32_t> ids(std::initializer_list<int> v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("item ids outside [1, V] are errors naming the id") {
  const ModelConfig c = small_config();
  const ForwardOfa m(c, random_weights(c, 7));
  const auto cand = ids({1, 2, 3});
  CHECK_THROWS_WITH_AS(m.score(ids({1, 0, 2}), cand, 1.0f), doctest::Contains("history item id 0"), Error);
  CHECK_THROWS_WITH_AS(m.score(ids({1, 41}), cand, 1.0f), doctest::Contains("history item id 41 is outside [1, 40]"),
                       Error);
  CHECK_THROWS_WITH_AS(m.score(ids({1, -3}), cand, 1.0f), doctest::Contains("-3"), Error);
  CHECK_THROWS_WITH_AS(m.score(ids({1, 2}), ids({5, 99}), 1.0f), doctest::Contains("candidate item id 99"), Error);
  CHECK_THROWS_WITH_AS(m.adapt(ids({40, 77}), 1.0f), doctest::Contains("77"), Error);
  // An invalid id older than the window is still refused.
  std::vector<std::int32_t> long_bad(30, 3);
  long_bad[0] = 1000;
  CHECK_THROWS_WITH_AS(m.score(long_bad, cand, 1.0f), doctest::Contains("1000"), Error);
}

TEST_CASE("empty history is an error, empty candidates give an empty result") {
  const ModelConfig c = small_config();
  const ForwardOfa m(c, random_weights(c, 7));
  CHECK_THROWS_WITH_AS(m.score({}, ids({1}), 1.0f), doctest::Contains("empty history"), Error);
  CHECK_THROWS_WITH_AS(m.adapt({}, 1.0f), doctest::Contains("empty history"), Error);
  CHECK(m.score(ids({1, 2}), {}, 1.0f).empty());
  const Ranking r = m.rerank(ids({1, 2}), {}, 0.5f);
  CHECK(r.order.empty());
  CHECK(r.items.empty());
}

TEST_CASE("history longer than max_len keeps the newest max_len items") {
  const ModelConfig c = small_config();
  const ForwardOfa m(c, random_weights(c, 7, {0.05f}));
  std::vector<std::int32_t> h;
  for (int i = 0; i < 25; ++i) h.push_back(1 + (i * 7) % 40);
  const std::vector<std::int32_t> newest(h.end() - c.max_len, h.end());
  const auto cand = ids({3, 9, 27, 40});
  for (float b : {1.0f, 0.5f}) {
    CHECK(m.score(h, cand, b) == m.score(newest, cand, b));
    const DevicePlan p1 = m.adapt(h, b), p2 = m.adapt(newest, b);
    CHECK(p1.pi == p2.pi);
  }
  // and the dropped items do matter when they are in the window
  const std::vector<std::int32_t> shifted(h.end() - c.max_len - 1, h.end() - 1);
  CHECK(m.score(shifted, cand, 1.0f) != m.score(newest, cand, 1.0f));
}

TEST_CASE("duplicate candidates are scored independently and keep their order on ties") {
  const ModelConfig c = small_config();
  const ForwardOfa m(c, random_weights(c, 7));
  const auto cand = ids({5, 8, 5, 8, 5});
  const Ranking r = m.rerank(ids({1, 2, 3}), cand, 1.0f);
  REQUIRE(r.scores.size() == 5);
  CHECK(r.scores[0] == r.scores[2]);
  CHECK(r.scores[0] == r.scores[4]);
  CHECK(r.scores[1] == r.scores[3]);
  CHECK(r.scores[0] != r.scores[1]);
  // the equal scores appear in their given order
  std::vector<index_t> fives;
  for (index_t i : r.order)
    if (cand[static_cast<std::size_t>(i)] == 5) fives.push_back(i);
  CHECK(fives == std::vector<index_t>{0, 2, 4});
  for (std::size_t i = 0; i + 1 < r.order.size(); ++i)
    CHECK(r.scores[static_cast<std::size_t>(r.order[i])] >= r.scores[static_cast<std::size_t>(r.order[i + 1])]);
}

// Finite weights near the float limit pass the weight checks but overflow in the forward pass:
// every result that would be inf or NaN is an error naming what overflowed instead.
TEST_CASE("weights that overflow float give an error, not inf or NaN results") {
  const ModelConfig c = small_config();
  const ModelWeights base = random_weights(c, 7);
  auto with = [&](const ModelConfig& cfg, auto edit) {
    ModelWeights w = random_weights(cfg, 7);
    edit(w);
    return ForwardOfa(cfg, std::move(w));
  };
  auto row7_extreme = [d = c.d](ModelWeights& w) {
    std::fill_n(w.get_mut("item_emb.weight").data() + 7 * d, d, 3e38f);  // finite, so the model loads
  };
  const auto h = ids({1, 2, 3});

  // An extreme candidate row: its logit overflows; other candidates score exactly as before.
  const ForwardOfa row7 = with(c, row7_extreme);
  CHECK(row7.score(h, ids({4, 5, 6}), 1.0f) == ForwardOfa(c, base).score(h, ids({4, 5, 6}), 1.0f));
  CHECK_THROWS_WITH_AS(row7.score(h, ids({4, 7, 6}), 1.0f), doctest::Contains("of candidate 7 (position 1)"), Error);
  CHECK_THROWS_WITH_AS(row7.score(h, ids({4, 7, 6}), 1.0f), doctest::Contains("weights overflow float"), Error);
  CHECK_THROWS_AS(row7.rerank(h, ids({7}), 0.5f), Error);

  // An extreme final LayerNorm: the user state overflows.
  const ForwardOfa ln = with(c, [](ModelWeights& w) {
    w.get_mut("final_ln.weight").fill(3e38f);
    w.get_mut("final_ln.bias").fill(3e38f);
  });
  CHECK_THROWS_WITH_AS(ln.score(h, ids({4}), 1.0f), doctest::Contains("non-finite user state"), Error);
  CHECK_THROWS_AS(ln.rerank(h, ids({4, 5}), 1.0f), Error);

  // An extreme history row: the controller's pi, else the mapper's code, else the user state.
  const auto h7 = ids({1, 7});
  CHECK_THROWS_WITH_AS(row7.adapt(h7, 1.0f), doctest::Contains("non-finite controller pi"), Error);
  ModelConfig duet = c;
  duet.controller.enabled = false;
  CHECK_THROWS_WITH_AS(with(duet, row7_extreme).adapt(h7, 1.0f), doctest::Contains("non-finite mapper code"), Error);
  ModelConfig plain = duet;
  plain.mapper.mode = MapperMode::off;
  const ForwardOfa plain7 = with(plain, row7_extreme);
  CHECK_THROWS_WITH_AS(plain7.score(h7, ids({4}), 1.0f), doctest::Contains("non-finite user state"), Error);
  CHECK_THROWS_AS(plain7.score(h7, ids({4}), plain7.static_plan()), Error);
}

TEST_CASE("budget must be a number in (0, 1]") {
  const ModelConfig c = small_config();
  const ForwardOfa m(c, random_weights(c, 7));
  const auto h = ids({1, 2});
  for (float b : {std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.5f, 1.5f, std::numeric_limits<float>::infinity()}) {
    CAPTURE(b);
    CHECK_THROWS_WITH_AS(m.adapt(h, b), doctest::Contains("budget must be in (0, 1]"), Error);
    CHECK_THROWS_AS(m.score(h, ids({1}), b), Error);
  }
  CHECK_NOTHROW(m.adapt(h, 1.0f));
  CHECK_NOTHROW(m.adapt(h, 1e-6f));
}

TEST_CASE("select_blocks: threshold, budget drops lowest pi, ties, min_blocks") {
  const std::vector<double> cost(4, 1.0);
  using M = std::vector<std::uint8_t>;
  CHECK(select_blocks(std::vector<float>{0.9f, 0.2f, 0.6f, 0.51f}, cost, 1.0, 1) == M{1, 0, 1, 1});
  // budget 0.5 of 4 blocks: at most 2 kept, drop the lowest pi first
  CHECK(select_blocks(std::vector<float>{0.9f, 0.8f, 0.6f, 0.7f}, cost, 0.5, 1) == M{1, 1, 0, 0});
  // tie on the lowest pi: the higher index is dropped
  CHECK(select_blocks(std::vector<float>{0.9f, 0.6f, 0.6f, 0.9f}, cost, 0.75, 1) == M{1, 1, 0, 1});
  // nothing above 0.5: argmax is kept (ties: lowest index) unless min_blocks = 0
  CHECK(select_blocks(std::vector<float>{0.1f, 0.4f, 0.4f, 0.2f}, cost, 1.0, 1) == M{0, 1, 0, 0});
  CHECK(select_blocks(std::vector<float>{0.1f, 0.4f, 0.4f, 0.2f}, cost, 1.0, 0) == M{0, 0, 0, 0});
  // a budget below one block drops everything, then min_blocks restores the best one
  CHECK(select_blocks(std::vector<float>{0.7f, 0.9f, 0.8f, 0.6f}, cost, 0.1, 1) == M{0, 1, 0, 0});
  CHECK(select_blocks(std::vector<float>{0.7f, 0.9f, 0.8f, 0.6f}, cost, 0.1, 0) == M{0, 0, 0, 0});
  // unequal costs: drop until the kept cost fits
  CHECK(select_blocks(std::vector<float>{0.9f, 0.8f, 0.7f}, std::vector<double>{1, 1, 2}, 0.5, 1) == M{1, 1, 0});
}

TEST_CASE("adapt: mask follows the budget, cost and bytes follow the mask") {
  ModelConfig c = small_config();
  c.blocks = 4;
  InitOptions opt;
  opt.controller_head_bias = 3.0f;  // every pi ~0.95: the budget alone decides
  const ForwardOfa m(c, random_weights(c, 11, opt));
  const auto h = ids({4, 5, 6});
  for (const auto& budget_kept : {std::pair{1.0f, 4}, std::pair{0.5f, 2}, std::pair{0.3f, 1}, std::pair{0.01f, 1}}) {
    const float b = budget_kept.first;  // named copies: clang 14 cannot capture structured bindings
    const int kept = budget_kept.second;
    CAPTURE(b);
    const DevicePlan p = m.adapt(h, b);
    CHECK(static_cast<int>(p.kept().size()) == kept);
    CHECK(static_cast<int>(p.ffn.size()) == kept);
    CHECK(p.flops == doctest::Approx(kept * c.block_flops()));
    CHECK(p.bytes == static_cast<std::size_t>(device_parameter_floats(c, kept)) * 4);
    for (const BlockFfnWeights& f : p.ffn) CHECK(p.mask[static_cast<std::size_t>(f.block)] == 1);
  }
  // min_blocks = 0 with a controller that rejects every block: no block runs, u = LNf(X0[last])
  c.controller.min_blocks = 0;
  opt.controller_head_bias = -5.0f;
  const ForwardOfa empty(c, random_weights(c, 11, opt));
  const DevicePlan p = empty.adapt(h, 1.0f);
  CHECK(p.kept().empty());
  const std::vector<float> y = empty.score(h, ids({1, 2}), p);
  CHECK(std::isfinite(y[0]));
  CHECK(y[0] != y[1]);
}

TEST_CASE("zero-initialised mapper reproduces the static model") {
  for (MapperMode mode : {MapperMode::lowrank, MapperMode::full}) {
    ModelConfig c = small_config();
    c.mapper.mode = mode;
    const ForwardOfa m(c, random_weights(c, 3));  // head bias +2: every block kept at budget 1
    const auto h = ids({7, 1, 30, 2}), cand = ids({1, 2, 3, 39});
    const DevicePlan p = m.adapt(h, 1.0f);
    REQUIRE(p.kept().size() == 3);
    for (const BlockFfnWeights& f : p.ffn) {
      const Tensor<float>& w1 = m.weights().get(block_name(f.block, "ffn.w1.weight"));
      CHECK(std::equal(w1.data(), w1.data() + w1.numel(), f.w1.data()));
      for (index_t i = 0; i < c.d; ++i) CHECK(f.gate[i] == 1.0f);
    }
    CHECK(m.score(h, cand, p) == m.score(h, cand, m.static_plan()));
    // a non-zero mapper changes the scores
    const ForwardOfa m2(c, random_weights(c, 3, {0.05f}));
    CHECK(m2.score(h, cand, 1.0f) != m2.score(h, cand, m2.static_plan()));
  }
}

TEST_CASE("random_weights is deterministic per seed and matches the expected tensor list") {
  const ModelConfig c = small_config();
  const ModelWeights a = random_weights(c, 5), b = random_weights(c, 5), other = random_weights(c, 6);
  CHECK_NOTHROW(check_weights(c, a));
  const auto& ea = a.get("item_emb.weight");
  CHECK(std::equal(ea.data(), ea.data() + ea.numel(), b.get("item_emb.weight").data()));
  CHECK(!std::equal(ea.data(), ea.data() + ea.numel(), other.get("item_emb.weight").data()));
  for (index_t j = 0; j < c.d; ++j) CHECK(ea(0, j) == 0.0f);  // padding row
  CHECK(a.get("blocks.0.ln1.weight")[0] == 1.0f);
  CHECK(a.get("mapper.heads.0.a1.weight")[0] == 0.0f);
}

TEST_CASE("bad weights and configs are refused with the reason") {
  const ModelConfig c = small_config();
  {
    ModelWeights w = random_weights(c, 1);
    ModelWeights missing;
    for (const auto& [n, t] : w.tensors())
      if (n != "blocks.1.attn.v.bias") missing.set(n, Tensor<float>::from(t.view()));
    CHECK_THROWS_WITH_AS(ForwardOfa(c, missing), doctest::Contains("missing tensor \"blocks.1.attn.v.bias\""), Error);
  }
  {
    ModelWeights w = random_weights(c, 1);
    w.set("pos_emb.weight", Tensor<float>({c.max_len + 1, c.d}));
    CHECK_THROWS_WITH_AS(ForwardOfa(c, w), doctest::Contains("pos_emb.weight: shape [11, 16]"), Error);
  }
  {
    ModelWeights w = random_weights(c, 1);
    w.get_mut("blocks.2.ffn.w2.weight")[5] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(ForwardOfa(c, w), doctest::Contains("non-finite value at flat index 5"), Error);
  }
  {
    ModelWeights w = random_weights(c, 1);
    w.set("blocks.9.ln1.weight", Tensor<float>({c.d}));
    CHECK_THROWS_WITH_AS(ForwardOfa(c, w), doctest::Contains("unexpected tensor \"blocks.9.ln1.weight\""), Error);
  }
  ModelConfig bad = c;
  bad.heads = 3;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("not divisible"), Error);
  bad = c;
  bad.max_len = 0;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("max_len"), Error);
  bad = c;
  bad.eps = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("eps"), Error);
  bad = c;
  bad.items = 0;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("items"), Error);
  // Sizes that could only end in an out-of-memory are refused by name first.
  bad = c;
  bad.d = 3000000000;
  bad.heads = 1;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("config.d must be in [1, 16384]"), Error);
  bad = c;
  bad.ffn = 4 * ModelConfig::kMaxWidth + 1;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("config.ffn must be in"), Error);
  bad = c;
  bad.items = (index_t{1} << 31) - 2;
  bad.d = 4096;
  bad.heads = 1;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("exceeds 2^32 embedding values"), Error);
  bad = c;
  bad.mapper.mode = MapperMode::full;
  bad.d = 4096;
  bad.ffn = 16384;
  bad.heads = 1;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("mapper.mode full would generate"), Error);
  bad.d = c.d;  // the small model's full mapper is fine
  bad.ffn = c.ffn;
  bad.heads = c.heads;
  CHECK_NOTHROW(bad.validate());
  CHECK_THROWS_WITH_AS(parse_norm("pre-ln"), doctest::Contains("unknown norm \"pre-ln\""), Error);
}

TEST_CASE("a plan from another model is refused by prepare") {
  const ModelConfig c = small_config();
  ModelConfig c4 = c;
  c4.blocks = 4;
  const ForwardOfa m3(c, random_weights(c, 1)), m4(c4, random_weights(c4, 1));
  const DevicePlan p4 = m4.adapt(ids({1, 2}), 1.0f);
  CHECK_THROWS_WITH_AS(m3.prepare(p4), doctest::Contains("mask of 4 blocks"), Error);
  DevicePlan p3 = m3.adapt(ids({1, 2}), 1.0f);
  p3.ffn.pop_back();
  CHECK_THROWS_WITH_AS(m3.prepare(p3), doctest::Contains("no FFN weights for kept block"), Error);
  p3 = m3.adapt(ids({1, 2}), 1.0f);
  p3.ffn[0].w1 = Tensor<float>({c.ffn + 1, c.d});
  CHECK_THROWS_WITH_AS(m3.prepare(p3), doctest::Contains("plan w1"), Error);
}

TEST_CASE("score with a prepared plan stays inside the planned workspace; default config under 1 MB") {
  const ModelConfig c = small_config();
  const ForwardOfa m(c, random_weights(c, 1, {0.05f}));
  std::vector<std::int32_t> h;
  for (int i = 0; i < 30; ++i) h.push_back(1 + i % 40);
  const auto cand = ids({1, 2, 3});
  const auto prepared = m.prepare(m.adapt(h, 0.5f));
  Workspace ws(m.workspace_plan());
  std::vector<float> out(cand.size());
  for (int rep = 0; rep < 3; ++rep) {
    m.score(prepared, h, cand, out, ws);  // throws "workspace exhausted" if the plan were short
    CHECK(ws.used() == 0);
  }
  CHECK(out == m.score(h, cand, m.adapt(h, 0.5f)));
  ModelConfig def;  // SPEC default: d 64, n 50, f 256, L 6
  def.items = 1000;
  const ForwardOfa big(def, random_weights(def, 1));
  CHECK(big.workspace_plan().bytes() <= std::size_t{1} << 20);
  MESSAGE("default-config request workspace: ", big.workspace_plan().bytes(), " bytes");
}

TEST_CASE("one ForwardOfa serves two threads, each with its own workspace") {
  const ModelConfig c = small_config();
  const ForwardOfa m(c, random_weights(c, 2, {0.05f}));
  const auto h = ids({3, 1, 4, 1, 5, 9, 2, 6}), cand = ids({2, 7, 1, 8, 28});
  const std::vector<float> want = m.score(h, cand, 0.5f);
  std::vector<float> got[2];
  auto work = [&](int t) {
    const auto prepared = m.prepare(m.adapt(h, 0.5f));
    Workspace ws(m.workspace_plan());
    std::vector<float> out(cand.size());
    for (int rep = 0; rep < 50; ++rep) m.score(prepared, h, cand, out, ws);
    got[t] = out;
  };
  std::thread a(work, 0), b(work, 1);
  a.join();
  b.join();
  CHECK(got[0] == want);
  CHECK(got[1] == want);
}
