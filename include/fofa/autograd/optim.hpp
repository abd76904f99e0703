// fofa/autograd/optim.hpp — Adam / AdamW (PyTorch 1.13 semantics) and global-norm gradient clipping.
//
// Adam: g += weight_decay * p (L2); AdamW: p *= 1 - lr * weight_decay (decoupled). Both then
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// exactly as torch.optim.Adam(W) computes it, so 10 steps match PyTorch. Embedding tables are
// updated densely (their moments decay every step), as PyTorch does for nn.Embedding(sparse=False).
// The state (moments, step count) is plain data so checkpoints can save and restore it.
// Adam<float> runs the update through the kernel table's adam_update (SIMD sqrt and division);
// Adam<double> keeps the plain loop (same formula, no kernel family for double).
#pragma once

#include <cmath>
#include <type_traits>
#include <vector>

#include "fofa/autograd/tape.hpp"
#include "fofa/kernels/kernel_table.hpp"

namespace fofa::autograd {

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = false;  // true: AdamW
};

template <class T>
class Adam {
 public:
  Adam(const ParamSet<T>& params, AdamOptions opt) : opt_(opt) {
    FOFA_CHECK(opt.lr > 0 && std::isfinite(opt.lr), "Adam: learning rate must be > 0, got ", opt.lr);
    FOFA_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1, "Adam: betas must be in [0, 1)");
    FOFA_CHECK(opt.eps >= 0 && opt.weight_decay >= 0, "Adam: eps and weight_decay must be >= 0");
    m_.resize(static_cast<std::size_t>(params.size()));
    v_.resize(m_.size());
    for (int i = 0; i < params.size(); ++i) {
      m_[static_cast<std::size_t>(i)].assign(params[i].value.size(), T(0));
      v_[static_cast<std::size_t>(i)].assign(params[i].value.size(), T(0));
    }
  }

  void step(ParamSet<T>& params, const GradSet<T>& grads) {
    begin_step(params, grads);
    for (int i = 0; i < params.size(); ++i) update(params, grads, i, 0, params[i].value.size());
  }

  // step() in parts, for workers that own disjoint element ranges: begin_step() once, then
  // update() over ranges that cover every parameter exactly once, in any order or concurrently.
  // Each element gets exactly step()'s arithmetic. grad_scale multiplies each gradient first: the
  // same float product GradSet::scale would have stored (global-norm clipping fused into the step;
  // 1 leaves gradients exact).
  void begin_step(const ParamSet<T>& params, const GradSet<T>& grads) {
    FOFA_CHECK(params.size() == static_cast<int>(m_.size()) && grads.size() == params.size(),
               "Adam: parameter set changed since construction");
    ++steps_;
    const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(steps_));
    const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(steps_));
    step_size_ = static_cast<T>(opt_.lr / bc1);
    sqrt_bc2_ = static_cast<T>(std::sqrt(bc2));
  }
  void update(ParamSet<T>& params, const GradSet<T>& grads, int i, std::size_t begin, std::size_t end,
              T grad_scale = T(1)) {
    const T step_size = step_size_, sqrt_bc2 = sqrt_bc2_;
    const T b1 = static_cast<T>(opt_.beta1), b2 = static_cast<T>(opt_.beta2), eps = static_cast<T>(opt_.eps);
    const T wd = static_cast<T>(opt_.weight_decay), lr = static_cast<T>(opt_.lr);
    T* p = params[i].value.data();
    const T* g = grads.data(i);
    T* m = m_[static_cast<std::size_t>(i)].data();
    T* v = v_[static_cast<std::size_t>(i)].data();
    if constexpr (std::is_same_v<T, float>) {  // the same arithmetic, vectorised (sqrt and / included)
      if (end <= begin) return;
      kernels::AdamArgs a;
      a.grad_scale = grad_scale;
      a.beta1 = b1;
      a.beta2 = b2;
      a.eps = eps;
      a.step_size = step_size;
      a.sqrt_bc2 = sqrt_bc2;
      a.lr = lr;
      a.weight_decay = wd;
      a.decoupled = opt_.decoupled;
      kernels::kernels().adam_update(static_cast<index_t>(end - begin), p + begin, g + begin, m + begin, v + begin, a);
    } else {
      for (std::size_t k = begin; k < end; ++k) {  // double (gradient checks): the plain loop
        T gk = g[k] * grad_scale;
        if (wd != T(0)) {
          if (opt_.decoupled)
            p[k] *= T(1) - lr * wd;
          else
            gk += wd * p[k];
        }
        m[k] = b1 * m[k] + (T(1) - b1) * gk;
        v[k] = b2 * v[k] + (T(1) - b2) * gk * gk;
        p[k] -= step_size * m[k] / (std::sqrt(v[k]) / sqrt_bc2 + eps);
      }
    }
  }

  long long steps() const { return steps_; }
  void set_steps(long long s) { steps_ = s; }
  std::vector<std::vector<T>>& first_moments() { return m_; }
  std::vector<std::vector<T>>& second_moments() { return v_; }
  const AdamOptions& options() const { return opt_; }

 private:
  AdamOptions opt_;
  std::vector<std::vector<T>> m_, v_;
  long long steps_ = 0;
  T step_size_ = T(0), sqrt_bc2_ = T(1);  // of the current step (begin_step)
};

// Scales gradients so their global L2 norm is at most max_norm (torch.nn.utils.clip_grad_norm_);
// returns the norm before clipping. max_norm <= 0 disables clipping.
template <class T>
double clip_grad_norm(GradSet<T>& grads, double max_norm) {
  const double norm = std::sqrt(grads.squared_norm());
  if (max_norm > 0 && norm > max_norm) grads.scale(static_cast<T>(max_norm / (norm + 1e-6)));
  return norm;
}

// The factor clip_grad_norm applies for a gradient norm `norm` (1 when no clipping is needed).
template <class T>
T clip_scale(double norm, double max_norm) {
  return max_norm > 0 && norm > max_norm ? static_cast<T>(max_norm / (norm + 1e-6)) : T(1);
}

// The gradient norm as a training step needs it (Trainer::step): `norm` is what clip_grad_norm
// would compute (the serial squared_norm(), whose summation order is part of the clipped result)
// whenever clipping may apply or the norm is not finite; otherwise the step asks only "finite?" and
// "at most max_norm?", which the unordered sum answers (the serial chain of ~3M dependent additions
// was ~1% of a training step). That sum is trusted below max_norm^2 (1 - 1e-6) only: the two sums
// differ by at most ~2 n u relative (GradSet::squared_norm_unordered), under 2.3e-8 for the
// n < 1e8 entries it is used for, so both norms then lie below max_norm and
// clip_scale(norm, max_norm) is exactly 1 either way. `exact` says which sum `norm` came from.
struct StepNorm {
  double norm;
  bool exact;
};
template <class T>
StepNorm step_norm(const GradSet<T>& grads, double max_norm) {
  const auto [quick, n] = grads.squared_norm_unordered();
  const bool below = !(max_norm > 0) || quick < max_norm * max_norm * (1.0 - 1e-6);
  if (std::isfinite(quick) && below && n < std::size_t{100000000}) return {std::sqrt(quick), false};
  return {std::sqrt(grads.squared_norm()), true};
}

}  // namespace fofa::autograd
