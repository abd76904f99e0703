// The trainer's slice-parallel gradient reduction, clipping and Adam step: bit-identical to the
// serial GradSet::add + clip_grad_norm + Adam::step for any number of reduction workers, with
// sparse embedding-row gradients keeping their semantics (only touched rows, touched order).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "fofa/autograd/optim.hpp"
#include "fofa/train/random.hpp"
#include "fofa/train/synthetic.hpp"
#include "fofa/train/trainer.hpp"
#include "train_test_util.hpp"

using namespace fofa;
using namespace fofa::autograd;

namespace {

ParamSet<float> make_params() {
  ParamSet<float> ps;
  ps.add("emb", Shape{37, 5}, true);  // sparse rows; rows not a multiple of any worker count
  ps.add("w", Shape{13, 11});
  ps.add("b", Shape{3});
  ps.add("big", Shape{1000});
  train::Rng rng(7);
  for (auto& p : ps)
    for (auto& v : p.value) v = static_cast<float>(rng.normal());
  return ps;
}

// Fills thread-local gradient sets as backward passes would: dense everywhere, sparse rows touched
// in a random order with repeats (rows shared between sets and rows only one set touches).
void fill(GradSet<float>& g, const ParamSet<float>& ps, std::uint64_t seed, float magnitude) {
  train::Rng rng(seed);
  for (int i = 0; i < ps.size(); ++i) {
    if (g.sparse(i)) {
      for (int k = 0; k < 12; ++k) {
        const auto r = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(ps[i].rows())));
        g.touch(i, r);
        for (index_t c = 0; c < ps[i].cols(); ++c)
          g.data(i)[r * ps[i].cols() + c] += magnitude * static_cast<float>(rng.normal());
      }
    } else {
      for (auto& v : g.grad(i)) v = magnitude * static_cast<float>(rng.normal());
    }
  }
}

struct Run {
  ParamSet<float> ps = make_params();
  std::vector<GradSet<float>> grads;
  Adam<float> adam;
  explicit Run(int sets, AdamOptions o) : adam(ps, o) {
    for (int t = 0; t < sets; ++t) grads.emplace_back(ps);
  }
  void fill_all(std::uint64_t step, float magnitude) {
    for (std::size_t t = 0; t < grads.size(); ++t) {
      grads[t].zero();
      fill(grads[t], ps, 100 * step + t, magnitude);
    }
  }
};

// The serial path the trainer used before the reduction was parallelised.
double serial_step(Run& r, double clip) {
  for (std::size_t t = 1; t < r.grads.size(); ++t) r.grads[0].add(r.grads[t]);
  const double norm = clip_grad_norm(r.grads[0], clip);
  r.adam.step(r.ps, r.grads[0]);
  return norm;
}

// The trainer's path: serial row bookkeeping, W workers on slices, step_norm, W workers for
// clipping + Adam + zeroing.
StepNorm sliced_step(Run& r, double clip, int W) {
  auto& g = r.grads[0];
  for (std::size_t t = 1; t < r.grads.size(); ++t) g.merge_touched(r.grads[t]);
  auto run = [&](auto fn) {
    std::vector<std::thread> pool;
    for (int w = 1; w < W; ++w) pool.emplace_back(fn, w);
    fn(0);
    for (auto& th : pool) th.join();
  };
  run([&](int w) {
    for (int i = 0; i < g.size(); ++i) {
      const auto [b, e] = g.slice(i, w, W);
      for (std::size_t t = 1; t < r.grads.size(); ++t) g.add_slice(r.grads[t], i, b, e);
    }
  });
  const StepNorm norm = step_norm(g, clip);
  const float s = clip_scale<float>(norm.norm, clip);
  r.adam.begin_step(r.ps, g);
  run([&](int w) {
    for (int i = 0; i < g.size(); ++i) {
      const auto [b, e] = g.slice(i, w, W);
      r.adam.update(r.ps, g, i, b, e, s);
      g.zero_slice(i, b, e);
    }
  });
  g.clear_touched();
  return norm;
}

bool same_state(Run& a, Run& b) {
  for (int i = 0; i < a.ps.size(); ++i) {
    const auto u = static_cast<std::size_t>(i);
    if (a.ps[i].value != b.ps[i].value) return false;
    if (a.adam.first_moments()[u] != b.adam.first_moments()[u]) return false;
    if (a.adam.second_moments()[u] != b.adam.second_moments()[u]) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("slices of a parameter are disjoint, cover it, and keep sparse rows whole") {
  const ParamSet<float> ps = make_params();
  const GradSet<float> g(ps);
  for (int W : {1, 2, 3, 4, 7, 64})
    for (int i = 0; i < ps.size(); ++i) {
      std::size_t next = 0;
      for (int w = 0; w < W; ++w) {
        const auto [b, e] = g.slice(i, w, W);
        CHECK(b == next);
        CHECK(e >= b);
        if (g.sparse(i)) CHECK(b % static_cast<std::size_t>(ps[i].cols()) == 0);
        next = e;
      }
      CHECK(next == ps[i].value.size());
    }
}

TEST_CASE("sliced reduction + clipping + Adam is bit-identical to the serial path for 1..5 workers") {
  for (const bool decoupled : {false, true})
    for (const double clip : {0.0, 1.0}) {  // magnitudes below make 1.0 clip every step
      CAPTURE(decoupled);
      CAPTURE(clip);
      const AdamOptions o{.lr = 1e-2, .weight_decay = 0.01, .decoupled = decoupled};
      for (int sets : {1, 2, 3}) {
        Run ref(sets, o);
        std::vector<Run> runs;
        for (int W = 1; W <= 5; ++W) runs.emplace_back(sets, o);
        for (std::uint64_t step = 0; step < 4; ++step) {
          ref.fill_all(step, 0.7f);
          const double nref = serial_step(ref, clip);
          if (clip > 0) CHECK(nref > clip);
          for (int W = 1; W <= 5; ++W) {
            Run& r = runs[static_cast<std::size_t>(W - 1)];
            r.fill_all(step, 0.7f);
            const StepNorm n = sliced_step(r, clip, W);
            CHECK(n.exact == (clip > 0));  // clip 1.0 clips every step: the serial sum decides it
            if (n.exact)
              CHECK(n.norm == nref);
            else
              CHECK(std::abs(n.norm - nref) <= 1e-12 * nref);
            CHECK(same_state(ref, r));
            // grads_[0] is left zero with no touched rows, as zero() would leave it
            CHECK(r.grads[0].squared_norm() == 0);
            CHECK(r.grads[0].touched_rows(0).empty());
            for (int i = 0; i < r.grads[0].size(); ++i)
              for (float v : r.grads[0].grad(i)) CHECK(v == 0.0f);
          }
        }
      }
    }
}

TEST_CASE("the unordered squared norm: close to the serial one, same entries, NaN and inf kept") {
  const ParamSet<float> ps = make_params();
  GradSet<float> g(ps);
  fill(g, ps, 5, 0.3f);
  const auto [quick, n] = g.squared_norm_unordered();
  std::size_t entries = 0;
  for (int i = 0; i < ps.size(); ++i)
    entries += g.sparse(i) ? g.touched_rows(i).size() * static_cast<std::size_t>(ps[i].cols()) : g.grad(i).size();
  CHECK(n == entries);
  CHECK(n < 37 * 5 + 13 * 11 + 3 + 1000);  // the untouched embedding rows are not counted
  const double serial = g.squared_norm();
  CHECK(serial > 0);
  CHECK(std::abs(quick - serial) <= 1e-13 * serial);
  // An untouched sparse row's value does not count, as in squared_norm().
  const index_t r = [&] {
    for (index_t k = 0; k < ps[0].rows(); ++k)
      if (std::find(g.touched_rows(0).begin(), g.touched_rows(0).end(), k) == g.touched_rows(0).end()) return k;
    return index_t{-1};
  }();
  REQUIRE(r >= 0);
  g.data(0)[r * ps[0].cols()] = 1e30f;
  CHECK(g.squared_norm_unordered().first == quick);
  g.grad(3)[999] = std::numeric_limits<float>::infinity();  // the last entry: the scalar tail
  CHECK(std::isinf(g.squared_norm_unordered().first));
  g.grad(1)[4] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(g.squared_norm_unordered().first));
}

TEST_CASE("step_norm: the serial norm whenever clipping may apply, so the clip factor never changes") {
  const ParamSet<float> ps = make_params();
  GradSet<float> g(ps);
  fill(g, ps, 9, 0.3f);
  const double exact = std::sqrt(g.squared_norm());
  struct Case {
    double clip;
    bool exact;
  };
  // Far below the limit or no clipping: the unordered sum; at or near the limit (within the
  // 1e-6 margin on the square) or above it: the serial sum.
  for (const Case c : {Case{0.0, false}, Case{exact * 2, false}, Case{exact * (1 + 1e-5), false},
                       Case{exact * (1 + 1e-7), true}, Case{exact * (1 + 1e-15), true}, Case{exact, true},
                       Case{std::nextafter(exact, 0.0), true}, Case{exact * 0.5, true}}) {
    CAPTURE(c.clip);
    const StepNorm sn = step_norm(g, c.clip);
    CHECK(sn.exact == c.exact);
    if (sn.exact) CHECK(sn.norm == exact);
    CHECK(clip_scale<float>(sn.norm, c.clip) == clip_scale<float>(exact, c.clip));
  }
  g.grad(1)[0] = std::numeric_limits<float>::infinity();
  CHECK(step_norm(g, 0.0).exact);
  CHECK(std::isinf(step_norm(g, 0.0).norm));
  g.grad(1)[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK(step_norm(g, 5.0).exact);
  CHECK(std::isnan(step_norm(g, 5.0).norm));
}

TEST_CASE("sliced reduction marks sparse rows touched in the order add() does") {
  const ParamSet<float> ps = make_params();
  GradSet<float> a(ps), b(ps), o1(ps), o2(ps);
  fill(a, ps, 1, 1.0f);
  fill(b, ps, 1, 1.0f);
  fill(o1, ps, 2, 1.0f);
  fill(o2, ps, 3, 1.0f);
  a.add(o1);
  a.add(o2);
  b.merge_touched(o1);
  b.merge_touched(o2);
  for (int w = 0; w < 3; ++w) {
    const auto [lo, hi] = b.slice(0, w, 3);
    b.add_slice(o1, 0, lo, hi);
    b.add_slice(o2, 0, lo, hi);
  }
  CHECK(a.touched_rows(0) == b.touched_rows(0));
  CHECK(a.grad(0) == b.grad(0));
  // a zeroed set forgets its touched rows: a row touched again is listed again
  for (int w = 0; w < 2; ++w) {
    const auto [lo, hi] = b.slice(0, w, 2);
    b.zero_slice(0, lo, hi);
  }
  b.clear_touched();
  const index_t r = a.touched_rows(0).front();
  b.touch(0, r);
  CHECK(b.touched_rows(0) == std::vector<index_t>{r});
}

TEST_CASE("trainer steps are bit-identical for 1, 2 and 3 reduction workers") {
  const ModelConfig c = train::test::small_config(300, 10);
  const auto data = train::split_leave_one_out(train::make_synthetic({.items = 300, .users = 120}).data);
  for (const double clip : {5.0, 0.05}) {  // 0.05 clips every step
    CAPTURE(clip);
    std::vector<std::unique_ptr<train::Trainer>> trainers;
    for (int W = 1; W <= 3; ++W) {
      train::TrainerOptions o;
      o.batch = 40;
      o.threads = 2;
      o.reduce_threads = W;
      o.clip = clip;
      o.progress = false;
      trainers.push_back(std::make_unique<train::Trainer>(c, data, o));
    }
    for (std::int64_t s = 0; s < 3; ++s) {
      const auto samples = trainers[0]->batch_samples(0, s);
      const double loss = trainers[0]->step(samples, 1.0, 0, s).first;
      for (std::size_t k = 1; k < trainers.size(); ++k) CHECK(trainers[k]->step(samples, 1.0, 0, s).first == loss);
    }
    for (std::size_t k = 1; k < trainers.size(); ++k)
      for (int i = 0; i < trainers[0]->model().params().size(); ++i)
        CHECK(trainers[0]->model().params()[i].value == trainers[k]->model().params()[i].value);
  }
}
