// On-device fine-tuning (SPEC 8, train/finetune.hpp): S = 0 is exactly the static evaluation, the
// SGD update is the finite-difference gradient of the user's own loss over the block and LayerNorm
// tensors only, fine-tuning lowers that loss, the shared model is untouched, threads do not change
// results, and bad options raise fofa::Error; evaluation refuses non-finite scores.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "fofa/train/evaluate.hpp"
#include "fofa/train/synthetic.hpp"
#include "train_test_util.hpp"

using namespace fofa;
using namespace fofa::train;

namespace {

const SplitData& data() {
  static const SplitData s = split_leave_one_out(make_synthetic({.items = 200, .users = 120, .seed = 5}).data);
  return s;
}

template <class T>
std::vector<std::vector<T>> values(const TrainableModel<T>& m) {
  std::vector<std::vector<T>> v;
  for (const auto& p : m.params()) v.push_back(p.value);
  return v;
}

bool same_metrics(const EvalResult& a, const EvalResult& b) {
  return a.users == b.users && a.sampled.hr == b.sampled.hr && a.sampled.ndcg == b.sampled.ndcg &&
         a.full.hr == b.full.hr && a.full.ndcg == b.full.ndcg && a.blocks_kept == b.blocks_kept &&
         a.finetune_flops == b.finetune_flops;
}

}  // namespace

TEST_CASE("fine-tuning with S = 0 is exactly the static evaluation") {
  TrainableModel<float> m(test::small_static_config(200));
  m.init(11);
  EvalOptions plain{.split = EvalSplit::test, .seed = 3, .full_ranking = true, .threads = 2};
  EvalOptions zero = plain;
  zero.finetune = {.steps = 0, .lr = 0.5};
  const EvalResult a = evaluate(m, data(), plain), b = evaluate(m, data(), zero);
  CHECK(same_metrics(a, b));
  CHECK(b.finetune_flops == 0.0);
  CHECK(b.finetune_steps == 0.0);
  // The fine-tuner's own scoring path with no steps equals the shared model's scores bit for bit.
  DeviceFinetuner<float> ft(m, {.steps = 0});
  const std::vector<std::int32_t> hist = {3, 9, 27, 81, 5}, cands = {1, 2, 3, 100, 199};
  CHECK(ft.run(hist, 1, 2) == 0);
  GradSet<float> g(m.params());
  Tape<float> tape(const_cast<ParamSet<float>&>(m.params()), g);
  CHECK(ft.scores(hist, cands, 1.0) == m.forward_scores(tape, hist, cands, 1.0));
}

TEST_CASE("one SGD step moves blocks and LayerNorms by -lr * (finite-difference gradient), embeddings frozen") {
  TrainableModel<double> m(test::small_static_config(200));
  m.init(4);
  const double lr = 1e-3;
  DeviceFinetuner<double> ft(m, {.steps = 1, .lr = lr, .negatives = 2});
  const std::vector<std::int32_t> hist = {7, 8, 9, 10, 11, 12, 13, 40, 41};
  Rng rng(21, 5);
  const TrainSample s = ft.sample(hist, rng);  // the sample of step 1 (same stream as run(hist, 21, 5))
  REQUIRE(ft.run(hist, 21, 5) == 1);
  const LossWeights w{.positive = 1.0 / static_cast<double>(s.positives.size()),
                      .negative = 1.0 / (2.0 * static_cast<double>(s.positives.size()))};
  auto loss_of = [&](const TrainableModel<double>& model) {
    GradSet<double> g(model.params());
    Tape<double> tape(const_cast<ParamSet<double>&>(model.params()), g);
    return tape.scalar(model.forward_loss(tape, s, w, TrainOptions{}));
  };
  int checked = 0, frozen = 0;
  for (int i = 0; i < m.params().size(); ++i) {
    const auto& before = m.params()[i].value;
    const auto& after = ft.model().params()[i].value;
    const std::string& name = m.params()[i].name;
    if (!finetuned_on_device(name)) {
      CHECK_MESSAGE(before == after, name, " must stay frozen");
      ++frozen;
      continue;
    }
    for (std::size_t k : {std::size_t{0}, before.size() / 2, before.size() - 1}) {
      TrainableModel<double> plus = m, minus = m;
      const double h = 1e-6;
      plus.params()[i].value[k] += h;
      minus.params()[i].value[k] -= h;
      const double fd = (loss_of(plus) - loss_of(minus)) / (2 * h);
      const double step = (before[k] - after[k]) / lr;
      // Absolute floor for zero gradients (e.g. attention key biases) where the difference is rounding.
      CHECK_MESSAGE(std::abs(step - fd) <= 1e-8 + 1e-5 * std::abs(fd), name, "[", k, "] step ", step, " fd ", fd);
      ++checked;
    }
  }
  CHECK(frozen == 2);  // item_emb.weight, pos_emb.weight
  CHECK(checked > 30);
}

TEST_CASE("fine-tuning lowers the user's own training loss and leaves the shared model unchanged") {
  TrainableModel<float> m(test::small_static_config(200));
  m.init(9);
  const auto shared_before = values(m);
  const auto& u = data().users[3];
  std::vector<std::int32_t> hist = u.train;
  hist.push_back(u.valid);
  REQUIRE(hist.size() >= 5);
  DeviceFinetuner<float> ft(m, {.steps = 10, .lr = 0.1});
  Rng rng(42, finetune_stream(3));
  const TrainSample s = ft.sample(hist, rng);
  ft.reset();
  const double before = ft.loss(s);
  REQUIRE(ft.run(hist, 42, finetune_stream(3)) == 10);
  const double after = ft.loss(s);
  MESSAGE("own loss before ", before, ", after 10 steps ", after);
  CHECK(after < 0.9 * before);
  ft.reset();
  CHECK(ft.loss(s) == before);  // reset restores the shared values

  EvalOptions o{.split = EvalSplit::test, .seed = 3, .full_ranking = true, .threads = 2};
  o.finetune = {.steps = 3, .lr = 0.05};
  const EvalResult r = evaluate(m, data(), o);
  const auto shared_after = values(m);
  REQUIRE(shared_after.size() == shared_before.size());
  for (std::size_t i = 0; i < shared_after.size(); ++i)
    CHECK(std::memcmp(shared_after[i].data(), shared_before[i].data(), shared_before[i].size() * sizeof(float)) == 0);
  CHECK(r.finetune_steps == 3.0);
  CHECK(r.finetune_flops == doctest::Approx(3 * finetune_step_flops(m.config())));
  const EvalResult plain = evaluate(m, data(), {.split = EvalSplit::test, .seed = 3, .full_ranking = true, .threads = 2});
  CHECK_FALSE(same_metrics(plain, r));  // the fine-tuned copies rank differently
}

TEST_CASE("fine-tuned evaluation does not depend on the thread count") {
  TrainableModel<float> m(test::small_static_config(200));
  m.init(2);
  EvalOptions o{.split = EvalSplit::validation, .seed = 8, .full_ranking = true, .threads = 1};
  o.finetune = {.steps = 2, .lr = 0.05, .negatives = 2};
  const EvalResult one = evaluate(m, data(), o);
  o.threads = 2;
  const EvalResult two = evaluate(m, data(), o);
  o.threads = 3;
  const EvalResult three = evaluate(m, data(), o);
  CHECK(same_metrics(one, two));
  CHECK(same_metrics(one, three));
}

TEST_CASE("bad fine-tuning options raise fofa::Error") {
  TrainableModel<float> m(test::small_static_config(200));
  m.init(1);
  auto with = [](FinetuneOptions f) {
    EvalOptions o{.split = EvalSplit::test};
    o.finetune = f;
    return o;
  };
  CHECK_THROWS_AS(evaluate(m, data(), with({.steps = -1})), Error);
  CHECK_THROWS_AS(evaluate(m, data(), with({.steps = 1, .lr = 0})), Error);
  CHECK_THROWS_AS(evaluate(m, data(), with({.steps = 1, .lr = -0.1})), Error);
  CHECK_THROWS_AS(evaluate(m, data(), with({.steps = 1, .lr = std::numeric_limits<double>::quiet_NaN()})), Error);
  CHECK_THROWS_AS(evaluate(m, data(), with({.steps = 1, .lr = std::numeric_limits<double>::infinity()})), Error);
  CHECK_THROWS_AS(evaluate(m, data(), with({.steps = 1, .negatives = 0})), Error);
  DeviceFinetuner<float> ft(m, {.steps = 1});
  const std::vector<std::int32_t> one_item = {4};
  CHECK(ft.run(one_item, 1, 1) == 0);  // nothing to learn from: the static model
  Rng rng(1);
  CHECK_THROWS_AS(ft.sample(one_item, rng), Error);

  ModelConfig adaptive = test::small_static_config(200);
  adaptive.controller.enabled = true;
  adaptive.controller.width = 8;
  TrainableModel<float> fo(adaptive);
  fo.init(1);
  CHECK_THROWS_WITH_AS(evaluate(fo, data(), with({.steps = 1})), doctest::Contains("static models"), Error);
  CHECK_NOTHROW(evaluate(fo, data(), with({.steps = 0})));
}

// Finite weights that overflow float: every score is +inf, which ranked as a silent HR of 0.
TEST_CASE("evaluation refuses non-finite scores, naming the user and the candidate") {
  TrainableModel<float> m(test::small_static_config(200));
  m.init(3);
  ModelWeights w = m.weights();
  w.get_mut("final_ln.weight").fill(0.0f);  // u = final_ln.bias = 1e37 in every dimension
  w.get_mut("final_ln.bias").fill(1e37f);
  w.get_mut("item_emb.weight").fill(3.0f);  // every logit 16 * 3 * 1e37 = +inf
  m.load(w);
  std::size_t first = 0;
  while (!data().users[first].evaluated()) ++first;
  const std::string user = "evaluation of user " + std::to_string(first) + " ";
  for (bool full : {false, true}) {
    CAPTURE(full);
    const EvalOptions o{.split = EvalSplit::test, .full_ranking = full, .threads = 1};
    CHECK_THROWS_WITH_AS(evaluate(m, data(), o), doctest::Contains(user.c_str()), Error);
    CHECK_THROWS_WITH_AS(evaluate(m, data(), o), doctest::Contains("non-finite score inf of candidate"), Error);
  }
}
