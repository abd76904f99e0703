// The training graph of the whole model: gradients by finite differences in double for every
// system of SPEC 8 and every block variant, and the evaluation path against the inference model
// (ForwardOfa) on the same weights.
#include <doctest/doctest.h>

#include <cmath>

#include "../autograd/gradcheck.hpp"
#include "../common/small_config.hpp"
#include "train_test_util.hpp"
#include "fofa/model/forward_ofa.hpp"
#include "fofa/train/model_graph.hpp"

using namespace fofa;
using namespace fofa::train;

namespace {

// Narrower controller and mapper widths than the shared small configuration (5, 4, 3).
ModelConfig tiny_config() {
  ModelConfig c = testing::small_config({.items = 15, .d = 8, .max_len = 6, .ffn = 12});
  c.eps = 1e-5f;
  c.controller.width = 5;
  c.mapper.code_width = 4;
  c.mapper.structure_width = 3;
  return c;
}

TrainSample tiny_sample() {
  TrainSample s;
  s.input = {3, 7, 1, 9, 4};
  s.prefix = 2;
  s.loss_begin = 1;
  s.positives = {1, 9, 4, 12};
  s.negatives = {2, 5, 6, 8, 10, 11, 13, 14};
  s.budget = 0.6;
  s.noise = {0.4, -0.3};
  return s;
}

double model_gradient_error(const ModelConfig& cfg, bool hard, std::string* worst,
                            const std::function<bool(const std::string&)>& include = {}) {
  TrainableModel<double> m(cfg);
  m.init(5, {.mapper_scale = 0.3f, .controller_head_bias = 0.0f});
  // Random LayerNorm affine parameters, so their gradients are not trivially symmetric.
  train::Rng rng(9);
  for (auto& p : m.params())
    if (p.name.find("ln") != std::string::npos)
      for (auto& v : p.value) v += 0.2 * rng.normal();
  const TrainSample s = tiny_sample();
  const LossWeights w{.positive = 0.25, .negative = 0.125, .sparsity = 0.3, .hinge = 0.7};
  const TrainOptions opt{.dropout = 0.0, .tau = 0.8, .hard_mask = hard};
  return fofa::testing::max_gradient_error(
      m.params(), [&](autograd::Tape<double>& t) { return m.forward_loss(t, s, w, opt); }, 1e-6, worst, include);
}

}  // namespace

TEST_CASE("whole-model gradient equals finite differences (soft mask) for every system and block variant") {
  for (const auto& v : train::test::kModelVariants) {
    ModelConfig cfg = tiny_config();
    v.edit(cfg);
    std::string worst;
    const double err = model_gradient_error(cfg, /*hard=*/false, &worst);
    INFO(v.name, " worst: ", worst);
    CHECK(err < 2e-6);
  }
}

// Parameters upstream of the controller (embeddings, controller) also receive the straight-through
// surrogate, which finite differences of the hard step cannot see; everything downstream must match.
TEST_CASE("hard straight-through mask: gradients downstream of the mask equal finite differences") {
  std::string worst;
  const double err = model_gradient_error(tiny_config(), /*hard=*/true, &worst, [](const std::string& n) {
    return n.rfind("blocks.", 0) == 0 || n.rfind("mapper.", 0) == 0 || n.rfind("final_ln.", 0) == 0;
  });
  INFO("worst: ", worst);
  CHECK(err < 2e-6);
}

TEST_CASE("training graph rejects bad samples") {
  TrainableModel<double> m(tiny_config());
  m.init(1);
  autograd::GradSet<double> g(m.params());
  autograd::Tape<double> t(m.params(), g);
  const LossWeights w;
  const TrainOptions opt;
  TrainSample s = tiny_sample();
  s.input[2] = 16;  // > items
  CHECK_THROWS_WITH_AS(m.forward_loss(t, s, w, opt), doctest::Contains("item id 16"), fofa::Error);
  s = tiny_sample();
  s.prefix = 0;
  CHECK_THROWS_AS(m.forward_loss(t, s, w, opt), fofa::Error);
  s = tiny_sample();
  s.input.assign(7, 1);  // longer than max_len
  CHECK_THROWS_AS(m.forward_loss(t, s, w, opt), fofa::Error);
  s = tiny_sample();
  s.budget = 0.0;
  CHECK_THROWS_AS(m.forward_loss(t, s, w, opt), fofa::Error);
  s = tiny_sample();
  s.positives.pop_back();
  CHECK_THROWS_AS(m.forward_loss(t, s, w, opt), fofa::Error);
  s = tiny_sample();
  s.noise.pop_back();
  CHECK_THROWS_AS(m.forward_loss(t, s, w, opt), fofa::Error);
  ModelConfig gru = tiny_config();
  gru.controller.extractor = ExtractorKind::gru;
  CHECK_THROWS_AS(TrainableModel<double>{gru}, fofa::Error);
}

TEST_CASE("evaluation path matches the inference model (ForwardOfa) on the same weights") {
  for (int variant = 0; variant < 3; ++variant) {
    ModelConfig cfg = tiny_config();
    if (variant == 1) {
      cfg.controller.enabled = false;
      cfg.mapper.mode = MapperMode::off;
    }
    if (variant == 2) cfg.norm = Norm::query_only;
    TrainableModel<float> m(cfg);
    m.init(17, {.mapper_scale = 0.3f, .controller_head_bias = 0.0f});
    ForwardOfa inference(cfg, m.weights());
    autograd::GradSet<float> g(m.params());
    autograd::Tape<float> t(m.params(), g);
    const std::vector<std::int32_t> history = {3, 7, 1, 9, 4, 2, 8, 11};  // longer than max_len
    const std::vector<std::int32_t> cands = {1, 5, 9, 15, 2};
    for (double budget : {1.0, 0.5}) {
      std::vector<int> kept;
      auto ours = m.forward_scores(t, history, cands, budget, &kept);
      auto plan = inference.adapt(history, static_cast<float>(budget));
      auto ref = inference.score(history, cands, plan);
      for (std::size_t k = 0; k < kept.size(); ++k) CHECK(kept[k] == plan.mask[k]);
      for (std::size_t i = 0; i < cands.size(); ++i) CHECK(ours[i] == doctest::Approx(ref[i]).epsilon(1e-4));
      t.reset();
    }
  }
}
