// fofa/layers/layer_norm.hpp — LayerNorm over the last dimension (biased variance, eps inside
// the square root, as torch.nn.LayerNorm), owning its weight and bias [d].
#pragma once

#include "fofa/core/tensor.hpp"
#include "fofa/core/workspace.hpp"
#include "fofa/kernels/kernels.hpp"

namespace fofa {

template <class D = Extent<>>
class LayerNorm {
 public:
  LayerNorm() = default;
  LayerNorm(TensorView<const float> weight, TensorView<const float> bias, float eps) : eps_(eps) {
    FOFA_CHECK(weight.rank() == 1, "LayerNorm weight must be 1-D, got ", weight.shape().str());
    d_ = D(weight.dim(0));
    check_shape("LayerNorm bias", bias.shape(), weight.shape());
    weight_ = copy_of(weight);
    bias_ = copy_of(bias);
  }

  index_t dim() const { return static_cast<index_t>(d_); }
  float eps() const { return eps_; }
  const Tensor<float>& weight() const { return weight_; }
  const Tensor<float>& bias() const { return bias_; }

  // y[rows, d] = LN(x[rows, d]); x and y must not overlap.
  void forward(index_t rows, const float* x, index_t ldx, float* y, index_t ldy) const {
    kernels::kernels().layernorm(rows, dim(), x, ldx, weight_.data(), bias_.data(), eps_, y, ldy);
  }

 private:
  D d_{};
  float eps_ = 1e-8f;
  Tensor<float> weight_, bias_;
};

}  // namespace fofa
