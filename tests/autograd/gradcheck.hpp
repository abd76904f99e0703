// Finite-difference gradient checking in double for tests/autograd and tests/train.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>

#include "fofa/autograd/ops.hpp"
#include "fofa/train/random.hpp"

namespace fofa::testing {

using autograd::GradSet;
using autograd::ParamSet;
using autograd::Tape;
using autograd::Var;

inline void fill_normal(ParamSet<double>& ps, std::uint64_t seed, double scale = 1.0) {
  train::Rng rng(seed);
  for (auto& p : ps)
    for (auto& v : p.value) v = scale * rng.normal();
}

// sum_i w_i y_i with fixed pseudo-random weights: a scalar that depends on every element of y.
inline Var random_projection(Tape<double>& t, Var y, std::uint64_t seed) {
  const index_t n = t.rows(y) * t.cols(y);
  std::vector<double> w(static_cast<std::size_t>(n));
  train::Rng rng(seed, 99);
  for (auto& x : w) x = rng.normal();
  return autograd::weighted_sum(t, t.reshape(y, 1, n), std::span<const double>(w));
}

// Compares the tape's gradient of build() with central differences for every parameter entry.
// Returns the largest error max|a - n| / max(1, |a|, |n|).
inline double max_gradient_error(ParamSet<double>& ps, const std::function<Var(Tape<double>&)>& build,
                                 double h = 1e-6, std::string* worst = nullptr,
                                 const std::function<bool(const std::string&)>& include = {}) {
  GradSet<double> grads(ps);
  {
    Tape<double> tape(ps, grads);
    tape.backward(build(tape));
  }
  // One tape for all the perturbed forwards: its arena is reused instead of reallocated each time.
  GradSet<double> scratch_grads(ps);
  Tape<double> scratch(ps, scratch_grads);
  const auto loss = [&] {
    scratch.reset();
    return scratch.scalar(build(scratch));
  };
  double worst_err = 0;
  for (int i = 0; i < ps.size(); ++i) {
    auto& p = ps[i];
    if (include && !include(p.name)) continue;
    for (std::size_t k = 0; k < p.value.size(); ++k) {
      const double saved = p.value[k];
      p.value[k] = saved + h;
      const double up = loss();
      p.value[k] = saved - h;
      const double down = loss();
      p.value[k] = saved;
      const double numeric = (up - down) / (2 * h);
      const double analytic = grads.grad(i)[k];
      const double err = std::abs(analytic - numeric) / std::max({1.0, std::abs(analytic), std::abs(numeric)});
      if (err > worst_err) {
        worst_err = err;
        if (worst)
          *worst = p.name + "[" + std::to_string(k) + "] analytic " + std::to_string(analytic) + " numeric " +
                   std::to_string(numeric);
      }
    }
  }
  return worst_err;
}

}  // namespace fofa::testing
