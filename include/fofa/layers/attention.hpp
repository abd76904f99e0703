// fofa/layers/attention.hpp — causal multi-head self-attention with a key/value cache layout.
//
// Q, K, V and out projections are nn.Linear [d, d]; K and V are packed together as one [2d, d]
// matrix so one gemm writes a row [k | v] of the cache. Head h uses columns h*dh .. h*dh+dh-1.
// project_kv() fills cache rows for new positions; attend() computes queries for new rows,
// runs the fused causal attention kernel over all cached keys and adds (or writes) the out
// projection. Queries may come from a different input than keys (pmixer's query-only LN).
#pragma once

#include <cmath>

#include "fofa/layers/linear.hpp"

namespace fofa {

template <class D = Extent<>>
class MultiHeadAttention {
 public:
  MultiHeadAttention() = default;
  // Weights [d, d] and biases [d] in nn.Linear layout.
  MultiHeadAttention(TensorView<const float> q_w, TensorView<const float> q_b, TensorView<const float> k_w,
                     TensorView<const float> k_b, TensorView<const float> v_w, TensorView<const float> v_b,
                     TensorView<const float> out_w, TensorView<const float> out_b, index_t heads)
      : heads_(heads) {
    q_ = Linear<D, D>(q_w, q_b);
    out_ = Linear<D, D>(out_w, out_b);
    d_ = D(q_.in());
    const index_t d = dim();
    FOFA_CHECK(heads >= 1 && d % heads == 0, "attention: d = ", d, " not divisible by heads = ", heads);
    check_shape("attention k weight", k_w.shape(), Shape{d, d});
    check_shape("attention v weight", v_w.shape(), Shape{d, d});
    check_shape("attention k bias", k_b.shape(), Shape{d});
    check_shape("attention v bias", v_b.shape(), Shape{d});
    Tensor<float> kv_w({2 * d, d}), kv_b({2 * d});
    Tensor<float>::copy(k_w, kv_w.view().slice_rows(0, d));
    Tensor<float>::copy(v_w, kv_w.view().slice_rows(d, 2 * d));
    Tensor<float>::copy(k_b, kv_b.view().slice_rows(0, d));
    Tensor<float>::copy(v_b, kv_b.view().slice_rows(d, 2 * d));
    kv_ = Linear<D, Extent<>>(kv_w.view(), kv_b.view());
  }

  index_t dim() const { return static_cast<index_t>(d_); }
  index_t heads() const { return heads_; }
  const Linear<D, D>& q() const { return q_; }
  const Linear<D, Extent<>>& kv() const { return kv_; }  // [2d, d]: rows 0..d-1 = k, d..2d-1 = v
  const Linear<D, D>& out() const { return out_; }

  // Floats of scratch attend() takes for q_rows queries over up to max_keys keys.
  static WorkspacePlan workspace(index_t q_rows, index_t max_keys, index_t d) {
    WorkspacePlan p;
    p.add<float>(q_rows * d).add<float>(q_rows * d).add<float>(kernels::attention_scratch_floats(max_keys));
    return p;
  }

  // kv[rows, 2d] (row stride ldkv) = [x K^T + bk | x V^T + bv] for x[rows, d].
  void project_kv(index_t rows, const float* x, index_t ldx, float* kv, index_t ldkv) const {
    kv_.forward(rows, x, ldx, kv, ldkv);
  }

  // For query rows at absolute positions q_offset .. q_offset + q_rows - 1 (inputs xq) over the
  // cache kv[0 .. q_offset + q_rows): y (+)= out(softmax(Q K^T / sqrt(dh), causal) V).
  // xq may alias y: queries are projected before y is written.
  void attend(index_t q_rows, index_t q_offset, const float* xq, index_t ldxq, const float* kv, index_t ldkv,
              float* y, index_t ldy, bool accumulate, Workspace& ws) const {
    const std::size_t mark = ws.used();
    const index_t d = dim();
    float* q = ws.take<float>(q_rows * d);
    float* o = ws.take<float>(q_rows * d);
    float* scratch = ws.take<float>(kernels::attention_scratch_floats(q_offset + q_rows));
    q_.forward(q_rows, xq, ldxq, q, d);
    kernels::AttentionArgs a;
    a.q_rows = q_rows;
    a.q_offset = q_offset;
    a.key_begin = 0;
    a.heads = heads_;
    a.head_dim = d / heads_;
    a.q = q;
    a.ldq = d;
    a.k = kv;
    a.ldk = ldkv;
    a.v = kv + d;
    a.ldv = ldkv;
    a.out = o;
    a.ldo = d;
    a.scale = 1.0f / std::sqrt(static_cast<float>(d / heads_));
    a.scratch = scratch;
    kernels::kernels().attention(a);
    out_.forward(q_rows, o, d, y, ldy, kernels::Activation::none, accumulate);
    ws.rewind(mark);
  }

 private:
  D d_{};
  index_t heads_ = 1;
  Linear<D, D> q_, out_;
  Linear<D, Extent<>> kv_;
};

}  // namespace fofa
