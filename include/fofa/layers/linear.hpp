// fofa/layers/linear.hpp — Linear: y = act(x W^T + b), W in nn.Linear layout [out, in].
//
// The layer owns its weight and bias (named tensors, kept for export and inspection) and the
// PackedMatrix made from them once at construction by the kernel table in use; forward() is a
// single gemm (or gemv for one row) with the activation and the residual add fused into the
// store. In and Out are fofa::Extent types: Linear<Extent<64>, Extent<256>> refuses a weight of
// another shape at construction, Linear<> takes any.
#pragma once

#include <cstring>

#include "fofa/core/tensor.hpp"
#include "fofa/core/workspace.hpp"
#include "fofa/kernels/kernels.hpp"

namespace fofa {

// An owning copy of v; contiguous views (every weight) take one memcpy instead of the
// element-wise strided walk of Tensor::from.
template <class T>
Tensor<T> copy_of(TensorView<const T> v) {
  if (!v.is_contiguous()) return Tensor<T>::from(v);
  Tensor<T> t(v.shape());
  if (t.numel() > 0) std::memcpy(t.data(), v.data(), t.bytes());
  return t;
}

template <class In = Extent<>, class Out = Extent<>>
class Linear {
 public:
  Linear() = default;
  // weight [out, in]; bias [out], or a default (null) view for no bias.
  Linear(TensorView<const float> weight, TensorView<const float> bias)
      : Linear(weight, bias, nullptr) {}
  // As above, with row i of W and b[i] multiplied by row_scale[i] before packing (a gate
  // folded into the layer: diag(g) (W x + b) costs nothing at run time).
  Linear(TensorView<const float> weight, TensorView<const float> bias, const float* row_scale) {
    FOFA_CHECK(weight.rank() == 2, "Linear weight must be 2-D, got ", weight.shape().str());
    in_ = In(weight.dim(1));
    out_ = Out(weight.dim(0));
    weight_ = copy_of(weight);
    if (bias.data() != nullptr) {
      check_shape("Linear bias", bias.shape(), Shape{weight.dim(0)});
      bias_ = copy_of(bias);
    }
    const index_t N = out(), K = in();
    if (row_scale == nullptr) {
      table_ = &kernels::kernels();
      table_->pack_linear(N, K, weight_.data(), K, bias_.numel() ? bias_.data() : nullptr, packed_);
      return;
    }
    Tensor<float> w = copy_of(weight);
    Tensor<float> b({N});
    for (index_t i = 0; i < N; ++i) {
      for (index_t j = 0; j < K; ++j) w(i, j) *= row_scale[i];
      b[i] = (bias_.numel() ? bias_[i] : 0.0f) * row_scale[i];
    }
    table_ = &kernels::kernels();
    table_->pack_linear(N, K, w.data(), K, b.data(), packed_);
  }

  index_t in() const { return static_cast<index_t>(in_); }
  index_t out() const { return static_cast<index_t>(out_); }
  const Tensor<float>& weight() const { return weight_; }
  const Tensor<float>& bias() const { return bias_; }  // empty when the layer has no bias
  bool empty() const { return table_ == nullptr; }

  // y[rows, out] = act(x[rows, in] W^T + b), or y += ... when accumulate.
  void forward(index_t rows, const float* x, index_t ldx, float* y, index_t ldy,
               kernels::Activation act = kernels::Activation::none, bool accumulate = false) const {
    if (rows == 1)
      table_->gemv(x, packed_, y, act, accumulate);
    else
      table_->gemm(rows, x, ldx, packed_, y, ldy, act, accumulate);
  }

 private:
  In in_{};
  Out out_{};
  Tensor<float> weight_, bias_;
  kernels::PackedMatrix packed_;
  const kernels::KernelTable* table_ = nullptr;
};

}  // namespace fofa
