// fofa/layers/gru.hpp — a single-layer GRU (torch.nn.GRU, batch 1, h_0 = 0) returning h_T.
//
// PyTorch gate order r, z, n:
//   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h
// Input projections of all steps are one gemm; each step is one gemv plus element-wise kernels.
#pragma once

#include <cstring>

#include "fofa/layers/linear.hpp"

namespace fofa {

template <class In = Extent<>, class Hidden = Extent<>>
class GRU {
 public:
  GRU() = default;
  // weight_ih [3h, in], weight_hh [3h, h], bias_ih [3h], bias_hh [3h].
  GRU(TensorView<const float> weight_ih, TensorView<const float> weight_hh, TensorView<const float> bias_ih,
      TensorView<const float> bias_hh) {
    FOFA_CHECK(weight_hh.rank() == 2 && weight_hh.dim(0) == 3 * weight_hh.dim(1),
               "GRU weight_hh must be [3h, h], got ", weight_hh.shape().str());
    hidden_ = Hidden(weight_hh.dim(1));
    check_shape("GRU weight_ih rows", Shape{weight_ih.dim(0)}, Shape{3 * hidden()});
    ih_ = Linear<In, Extent<>>(weight_ih, bias_ih);
    hh_ = Linear<Hidden, Extent<>>(weight_hh, bias_hh);
  }

  index_t in() const { return ih_.in(); }
  index_t hidden() const { return static_cast<index_t>(hidden_); }
  const Linear<In, Extent<>>& ih() const { return ih_; }
  const Linear<Hidden, Extent<>>& hh() const { return hh_; }

  static WorkspacePlan workspace(index_t steps, index_t h) {
    return WorkspacePlan().add<float>(steps * 3 * h).add<float>(3 * h).add<float>(h);
  }

  // h_out[h] = the hidden state after reading x[steps, in] (h_out = 0 when steps == 0).
  void forward(index_t steps, const float* x, index_t ldx, float* h_out, Workspace& ws) const {
    const std::size_t mark = ws.used();
    const index_t H = hidden();
    const auto& k = kernels::kernels();
    std::memset(h_out, 0, static_cast<std::size_t>(H) * sizeof(float));
    if (steps > 0) {
      float* gi = ws.take<float>(steps * 3 * H);
      float* gh = ws.take<float>(3 * H);
      float* tmp = ws.take<float>(H);
      ih_.forward(steps, x, ldx, gi, 3 * H);
      for (index_t t = 0; t < steps; ++t) {
        const float* g = gi + t * 3 * H;
        hh_.forward(1, h_out, H, gh, 3 * H);
        // r, z in place in gh[0 .. 2H)
        k.add_scaled(2 * H, g, 1.0f, gh, gh);
        k.unary(kernels::UnaryOp::sigmoid, 2 * H, gh, gh);
        // n = tanh(g_n + r * gh_n)
        k.mul(H, gh, gh + 2 * H, tmp);
        k.add_scaled(H, g + 2 * H, 1.0f, tmp, tmp);
        k.unary(kernels::UnaryOp::tanh, H, tmp, tmp);
        // h' = n + z * (h - n)
        k.add_scaled(H, h_out, -1.0f, tmp, h_out);
        k.mul(H, gh + H, h_out, h_out);
        k.add_scaled(H, tmp, 1.0f, h_out, h_out);
      }
    }
    ws.rewind(mark);
  }

 private:
  Hidden hidden_{};
  Linear<In, Extent<>> ih_;
  Linear<Hidden, Extent<>> hh_;
};

}  // namespace fofa
