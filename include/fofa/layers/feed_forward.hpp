// fofa/layers/feed_forward.hpp — the position-wise FFN: FFN(x) = W2 act(W1 x + b1) + b2.
//
// W1 [f, d] and W2 [d, f] in nn.Linear layout (a Conv1d(k=1) weight [out, in, 1] is the same
// bytes). An optional gate g [d] (the mapper's 1 + tanh(G q)) is folded into W2 and b2 at
// construction, so a gated FFN costs exactly what an ungated one does.
#pragma once

#include "fofa/layers/linear.hpp"

namespace fofa {

template <class D = Extent<>, class F = Extent<>>
class FeedForward {
 public:
  FeedForward() = default;
  // gate: [d] multiplier of the output, or nullptr for none.
  FeedForward(TensorView<const float> w1, TensorView<const float> b1, TensorView<const float> w2,
              TensorView<const float> b2, kernels::Activation act, const float* gate = nullptr)
      : act_(act) {
    w1_ = Linear<D, F>(w1, b1);
    w2_ = Linear<F, D>(w2, b2, gate);
    FOFA_CHECK(w2_.in() == w1_.out() && w2_.out() == w1_.in(), "FFN shapes do not chain: w1 ",
               w1.shape().str(), ", w2 ", w2.shape().str());
  }

  index_t dim() const { return w1_.in(); }
  index_t hidden() const { return w1_.out(); }
  kernels::Activation activation() const { return act_; }
  const Linear<D, F>& w1() const { return w1_; }
  const Linear<F, D>& w2() const { return w2_; }  // weights as given (gate not applied)

  static WorkspacePlan workspace(index_t rows, index_t f) { return WorkspacePlan().add<float>(rows * f); }

  // y (+)= FFN(x) for x[rows, d]; x may alias y (the hidden layer is complete before y is written).
  void forward(index_t rows, const float* x, index_t ldx, float* y, index_t ldy, bool accumulate,
               Workspace& ws) const {
    const std::size_t mark = ws.used();
    const index_t f = hidden();
    float* h = ws.take<float>(rows * f);
    w1_.forward(rows, x, ldx, h, f, act_, false);
    w2_.forward(rows, h, f, y, ldy, kernels::Activation::none, accumulate);
    ws.rewind(mark);
  }

 private:
  Linear<D, F> w1_;
  Linear<F, D> w2_;
  kernels::Activation act_ = kernels::Activation::gelu;
};

}  // namespace fofa
