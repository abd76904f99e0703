// The trainer's slice-parallel gradient reduction, clipping and Adam step: bit-identical to the
// serial GradSet::add + clip_grad_norm + Adam::step for any number of reduction workers, with
// sparse embedding-row gradients keeping their semantics (only touched rows, touched order).
#include <doctest/doctest.h>

#include <cmath>
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

// The trainer's path: serial row bookkeeping, W workers on slices, serial norm, W workers for
// clipping + Adam + zeroing.
double sliced_step(Run& r, double clip, int W) {
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
  const double norm = std::sqrt(g.squared_norm());
  const float s = clip_scale<float>(norm, clip);
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
            CHECK(sliced_step(r, clip, W) == nref);
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
