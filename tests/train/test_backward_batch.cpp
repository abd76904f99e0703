// TrainableModel::backward_batch (the trainer's path: structures and mapper heads of a group of
// samples on one tape, each backbone on another) against forward_loss + backward per sample: the
// same losses, statistics and gradients for every system and block variant, with dropout on.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fofa/train/model_graph.hpp"
#include "train_test_util.hpp"

using namespace fofa;
using namespace fofa::train;

namespace {

ModelConfig sized_config(std::int32_t items, index_t d, index_t max_len, index_t ffn) {
  ModelConfig c = test::small_config(items, max_len);
  c.d = d;
  c.ffn = ffn;
  return c;
}

// Samples of varied length, session start and loss rows, `per_row` negatives per loss row.
std::vector<TrainSample> make_samples(const ModelConfig& cfg, int count, int per_row, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<TrainSample> out;
  for (int i = 0; i < count; ++i) {
    TrainSample s;
    const auto t = static_cast<index_t>(1 + rng.below(static_cast<std::uint64_t>(cfg.max_len)));
    for (index_t r = 0; r < t; ++r) s.input.push_back(static_cast<std::int32_t>(1 + rng.below(static_cast<std::uint64_t>(cfg.items))));
    s.prefix = static_cast<index_t>(1 + rng.below(static_cast<std::uint64_t>(t)));
    s.loss_begin = i % 3 == 0 ? 0 : s.prefix - 1;
    for (index_t r = s.loss_begin; r < t; ++r) {
      s.positives.push_back(static_cast<std::int32_t>(1 + rng.below(static_cast<std::uint64_t>(cfg.items))));
      for (int j = 0; j < per_row; ++j)
        s.negatives.push_back(static_cast<std::int32_t>(1 + rng.below(static_cast<std::uint64_t>(cfg.items))));
    }
    s.budget = 0.2 + 0.8 * rng.uniform();
    for (index_t k = 0; k < cfg.blocks; ++k) s.noise.push_back(rng.logistic());
    s.dropout_seed = rng.next();
    out.push_back(std::move(s));
  }
  return out;
}

struct Result {
  double loss = 0;
  std::vector<SampleStats> stats;
  std::vector<std::vector<double>> grads;
};

template <class T>
std::vector<std::vector<double>> gradients(const ParamSet<T>& ps, const autograd::GradSet<T>& g) {
  std::vector<std::vector<double>> out;
  for (int i = 0; i < ps.size(); ++i) out.emplace_back(g.grad(i).begin(), g.grad(i).end());
  return out;
}

template <class T>
Result per_sample(TrainableModel<T>& m, const std::vector<TrainSample>& samples, const LossWeights& w,
                  const TrainOptions& opt) {
  Result r;
  autograd::GradSet<T> g(m.params());
  autograd::Tape<T> tape(m.params(), g);
  for (const auto& s : samples) {
    tape.reset();
    SampleStats st;
    tape.backward(m.forward_loss(tape, s, w, opt, &st));
    r.loss += st.loss;
    r.stats.push_back(st);
  }
  r.grads = gradients(m.params(), g);
  return r;
}

template <class T>
Result batched(TrainableModel<T>& m, const std::vector<TrainSample>& samples, const LossWeights& w,
               const TrainOptions& opt, std::size_t group, bool cache_packs) {
  Result r;
  autograd::GradSet<T> g(m.params());
  autograd::Tape<T> outer(m.params(), g), inner(m.params(), g);
  if constexpr (std::is_same_v<T, float>) {
    outer.cache_packed_weights(cache_packs);
    inner.cache_packed_weights(cache_packs);
  }
  for (std::size_t b = 0; b < samples.size(); b += group) {
    std::vector<SampleStats> st;
    const std::size_t n = std::min(group, samples.size() - b);
    r.loss += m.backward_batch(outer, inner, std::span<const TrainSample>(samples.data() + b, n), w, opt, &st);
    REQUIRE(st.size() == n);
    r.stats.insert(r.stats.end(), st.begin(), st.end());
  }
  r.grads = gradients(m.params(), g);
  return r;
}

// max |a - b| / max(1, |a|, |b|) over every gradient entry, naming the worst parameter.
double max_error(const Result& a, const Result& b, const ParamSet<double>& ps, std::string& worst) {
  double err = 0;
  for (std::size_t i = 0; i < a.grads.size(); ++i)
    for (std::size_t k = 0; k < a.grads[i].size(); ++k) {
      const double x = a.grads[i][k], y = b.grads[i][k];
      const double e = std::abs(x - y) / std::max({1.0, std::abs(x), std::abs(y)});
      if (e > err) {
        err = e;
        worst = ps[static_cast<int>(i)].name;
      }
    }
  return err;
}

}  // namespace

TEST_CASE("backward_batch equals forward_loss + backward per sample (double, every system, dropout on)") {
  for (const auto& v : test::kModelVariants) {
    ModelConfig cfg = sized_config(30, 8, 7, 12);
    v.edit(cfg);
    TrainableModel<double> m(cfg);
    m.init(3, {.mapper_scale = 0.3f, .controller_head_bias = 0.0f});
    const auto samples = make_samples(cfg, 9, 2, 17);
    const LossWeights w{.positive = 0.05, .negative = 0.02, .sparsity = 0.1, .hinge = 0.3};
    const TrainOptions opt{.dropout = 0.3, .tau = 0.7, .hard_mask = true};
    const Result ref = per_sample(m, samples, w, opt);
    for (std::size_t group : {std::size_t{1}, std::size_t{4}, std::size_t{9}}) {
      INFO(v.name, ", groups of ", group);
      const Result got = batched(m, samples, w, opt, group, false);
      CHECK(got.loss == doctest::Approx(ref.loss).epsilon(1e-12));
      REQUIRE(got.stats.size() == ref.stats.size());
      for (std::size_t i = 0; i < ref.stats.size(); ++i) {
        CHECK(got.stats[i].loss == doctest::Approx(ref.stats[i].loss).epsilon(1e-12));
        CHECK(got.stats[i].bce == doctest::Approx(ref.stats[i].bce).epsilon(1e-12));
        CHECK(got.stats[i].flops_fraction == doctest::Approx(ref.stats[i].flops_fraction).epsilon(1e-12));
        CHECK(got.stats[i].mask == ref.stats[i].mask);
        CHECK(got.stats[i].pi == ref.stats[i].pi);
      }
      std::string worst;
      const double err = max_error(got, ref, m.params(), worst);
      INFO("worst: ", worst);
      CHECK(err < 1e-12);
    }
  }
}

// The float path: groups of >= 5 samples run the heads on the packed GEMM (cached packs as in the
// trainer), fewer on the GEMV path; both against the float per-sample path.
TEST_CASE("backward_batch in float matches the per-sample float path") {
  for (const auto& v : test::kModelVariants) {
    ModelConfig cfg = sized_config(40, 16, 12, 40);
    v.edit(cfg);
    TrainableModel<float> m(cfg);
    m.init(4, {.mapper_scale = 0.3f, .controller_head_bias = 0.0f});
    TrainableModel<double> md(cfg);  // for parameter names only
    const auto samples = make_samples(cfg, 11, 1, 23);
    const LossWeights w{.positive = 0.05, .negative = 0.05, .sparsity = 0.1, .hinge = 0.3};
    const TrainOptions opt{.dropout = 0.2, .tau = 0.7, .hard_mask = true};
    const Result ref = per_sample(m, samples, w, opt);
    for (std::size_t group : {std::size_t{3}, std::size_t{11}}) {
      INFO(v.name, ", groups of ", group);
      const Result got = batched(m, samples, w, opt, group, true);
      CHECK(got.loss == doctest::Approx(ref.loss).epsilon(1e-5));
      std::string worst;
      const double err = max_error(got, ref, md.params(), worst);
      INFO("worst: ", worst);
      CHECK(err < 1e-5);
    }
  }
}

// Gradients are zeroed lazily (Tape::grad_to_write / grad_to_read, blocks): on tapes whose arenas
// still hold NaN from earlier use, every gradient must still be written or zeroed before it is read.
TEST_CASE("backward_batch on NaN-filled tape arenas gives the fresh tapes' gradients bit for bit") {
  for (const auto& v : test::kModelVariants) {
    INFO(v.name);
    ModelConfig cfg = sized_config(40, 16, 12, 40);
    v.edit(cfg);
    TrainableModel<float> m(cfg);
    m.init(4, {.mapper_scale = 0.3f, .controller_head_bias = 0.0f});
    const auto samples = make_samples(cfg, 11, 1, 29);
    const LossWeights w{.positive = 0.05, .negative = 0.05, .sparsity = 0.1, .hinge = 0.3};
    const TrainOptions opt{.dropout = 0.2, .tau = 0.7, .hard_mask = true};
    std::vector<std::vector<float>> want;
    for (const bool poisoned : {false, true}) {
      autograd::GradSet<float> g(m.params());
      autograd::Tape<float> outer(m.params(), g), inner(m.params(), g);
      if (poisoned)
        for (auto* t : {&outer, &inner}) {
          autograd::Var junk = t->make(1 << 21, 1);  // one arena chunk larger than the run needs
          std::fill_n(t->value(junk), 1 << 21, std::nanf(""));
          std::fill_n(t->grad(junk), 1 << 21, std::nanf(""));
          t->reset();
        }
      int dropped = 0;
      for (std::size_t b = 0; b < samples.size(); b += 4) {
        std::vector<SampleStats> st;
        const std::size_t n = std::min<std::size_t>(4, samples.size() - b);
        m.backward_batch(outer, inner, std::span<const TrainSample>(samples.data() + b, n), w, opt, &st);
        for (const SampleStats& s : st)
          for (double k : s.mask) dropped += k == 0.0;
      }
      std::vector<std::vector<float>> got;
      for (int i = 0; i < m.params().size(); ++i) got.push_back(g.grad(i));
      for (const auto& p : got)
        for (float x : p) REQUIRE(std::isfinite(x));
      if (!poisoned) {
        want = got;
        if (cfg.controller.enabled) CHECK(dropped > 0);  // dropped blocks (never zeroed) are exercised
      } else {
        CHECK(got == want);
      }
    }
  }
}
