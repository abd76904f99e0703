// fofa/kernels/checked.hpp — TensorView wrappers around a KernelTable that validate first.
//
// The table functions take raw pointers and trust their caller (they run in inner loops).
// These wrappers are for code paths where shapes come from files or users: every mismatch
// (rank, shape, stride, packed family, id range, scratch size) throws fofa::Error naming
// the shapes involved, before any output is written.
#pragma once

#include <cmath>
#include <span>
#include <utility>

#include "fofa/core/tensor.hpp"
#include "fofa/kernels/kernel_table.hpp"

namespace fofa::kernels {

namespace detail {
template <class T>
void check_matrix(const char* what, const TensorView<T>& v) {
  FOFA_CHECK(v.rank() == 2, what, ": expected a matrix, got shape ", v.shape().str());
  FOFA_CHECK(v.stride(1) == 1 || v.dim(1) <= 1, what, ": last dimension of ", v.shape().str(),
             " must be contiguous, stride is ", v.stride(1));
  FOFA_CHECK(v.stride(0) >= v.dim(1) || v.dim(0) <= 1, what, ": rows of ", v.shape().str(), " overlap (row stride ",
             v.stride(0), ")");
}
template <class T>
void check_vector(const char* what, const TensorView<T>& v, index_t n) {
  FOFA_CHECK(v.rank() == 1 && v.dim(0) == n, what, ": shape ", v.shape().str(), " does not match expected [", n, "]");
  FOFA_CHECK(v.stride(0) == 1 || n <= 1, what, ": vector ", v.shape().str(), " must be contiguous");
}
// True when the memory spans of two row-major matrices intersect (the kernels do not
// support an output that overlaps an input, except where a table function says so).
template <class A, class B>
bool overlaps(const TensorView<A>& a, const TensorView<B>& b) {
  if (a.empty() || b.empty()) return false;
  auto span = [](const auto& v) {
    const auto* first = reinterpret_cast<const char*>(v.data());
    const index_t last = (v.dim(0) - 1) * v.stride(0) + v.dim(1);  // one past the last element
    return std::pair{first, first + last * static_cast<index_t>(sizeof(*v.data()))};
  };
  const auto [a0, a1] = span(a);
  const auto [b0, b1] = span(b);
  return a0 < b1 && b0 < a1;
}
// Leading dimension to pass to a kernel (any value >= 1 is fine for a single row).
template <class T>
index_t ld(const TensorView<T>& v) {
  return v.dim(0) <= 1 ? std::max<index_t>(v.dim(1), 1) : v.stride(0);
}
}  // namespace detail

// Packs w [N, K] (nn.Linear layout) and an optional bias [N] for table t.
inline PackedMatrix pack_linear(TensorView<const float> w, TensorView<const float> bias = {},
                                const KernelTable& t = kernels()) {
  detail::check_matrix("pack_linear weight", w);
  if (bias.data() || bias.rank() != 0) detail::check_vector("pack_linear bias", bias, w.dim(0));
  PackedMatrix p;
  t.pack_linear(w.dim(0), w.dim(1), w.data(), detail::ld(w), bias.data(), p);
  return p;
}

// y [M, N] = act(x [M, K] W^T + b) (+ y when accumulate). One row uses the table's gemv,
// whose summation order differs from gemm (a few ulp apart). y must not overlap x.
inline void linear(TensorView<const float> x, const PackedMatrix& w, TensorView<float> y,
                   Activation act = Activation::none, bool accumulate = false, const KernelTable& t = kernels()) {
  detail::check_matrix("linear input", x);
  detail::check_matrix("linear output", y);
  FOFA_CHECK(w.family == &t, "linear: the weight was packed by a different kernel family than '", t.name, "'");
  FOFA_CHECK(x.dim(1) == w.K, "linear: input ", x.shape().str(), " does not match weight [", w.N, ", ", w.K,
             "] (needs [M, ", w.K, "])");
  FOFA_CHECK(y.dim(0) == x.dim(0) && y.dim(1) == w.N, "linear: output ", y.shape().str(), " does not match [",
             x.dim(0), ", ", w.N, "] for input ", x.shape().str(), " and weight [", w.N, ", ", w.K, "]");
  FOFA_CHECK(!detail::overlaps(x, y), "linear: output ", y.shape().str(), " overlaps input ", x.shape().str());
  if (x.dim(0) == 1)
    t.gemv(x.data(), w, y.data(), act, accumulate);
  else
    t.gemm(x.dim(0), x.data(), detail::ld(x), w, y.data(), detail::ld(y), act, accumulate);
}

// Row-wise LayerNorm of x [rows, d] into y (same shape; y may be x).
inline void layernorm(TensorView<const float> x, TensorView<const float> gamma, TensorView<const float> beta,
                      float eps, TensorView<float> y, const KernelTable& t = kernels()) {
  detail::check_matrix("layernorm input", x);
  detail::check_matrix("layernorm output", y);
  FOFA_CHECK(x.shape() == y.shape(), "layernorm: output ", y.shape().str(), " does not match input ",
             x.shape().str());
  detail::check_vector("layernorm weight", gamma, x.dim(1));
  detail::check_vector("layernorm bias", beta, x.dim(1));
  FOFA_CHECK(eps > 0.0f && std::isfinite(eps), "layernorm: eps must be positive and finite, got ", eps);
  t.layernorm(x.dim(0), x.dim(1), x.data(), detail::ld(x), gamma.data(), beta.data(), eps, y.data(), detail::ld(y));
}

// In-place masked softmax of each row of x (see KernelTable::softmax_rows).
inline void softmax_rows(TensorView<float> x, bool causal = false, index_t causal_offset = 0, index_t col_begin = 0,
                         const KernelTable& t = kernels()) {
  detail::check_matrix("softmax input", x);
  FOFA_CHECK(col_begin >= 0 && col_begin <= x.dim(1), "softmax: col_begin ", col_begin, " outside [0, ", x.dim(1),
             "] for ", x.shape().str());
  FOFA_CHECK(causal_offset >= 0, "softmax: negative causal offset ", causal_offset);
  t.softmax_rows(x.dim(0), x.dim(1), x.data(), detail::ld(x), causal, causal_offset, col_begin);
}

// y = op(x) element-wise; x and y contiguous of the same shape (may be the same tensor).
inline void unary(UnaryOp op, TensorView<const float> x, TensorView<float> y, const KernelTable& t = kernels()) {
  FOFA_CHECK(x.shape() == y.shape(), "unary: output ", y.shape().str(), " does not match input ", x.shape().str());
  FOFA_CHECK(x.is_contiguous() && y.is_contiguous(), "unary: tensors ", x.shape().str(), " must be contiguous");
  t.unary(op, x.numel(), x.data(), y.data());
}

// out [rows, d] = scale * table[ids[r]] (+ add [rows, d]); every id must be in [0, table rows).
inline void gather_rows(TensorView<const float> table, std::span<const std::int32_t> ids, float scale,
                        TensorView<const float> add, TensorView<float> out, const KernelTable& t = kernels()) {
  detail::check_matrix("gather table", table);
  detail::check_matrix("gather output", out);
  const index_t rows = static_cast<index_t>(ids.size());
  FOFA_CHECK(out.dim(0) == rows && out.dim(1) == table.dim(1), "gather: output ", out.shape().str(),
             " does not match [", rows, ", ", table.dim(1), "] for ", rows, " ids into table ", table.shape().str());
  for (std::size_t r = 0; r < ids.size(); ++r)
    FOFA_CHECK(ids[r] >= 0 && ids[r] < table.dim(0), "gather: id ", ids[r], " at position ", r,
               " outside table ", table.shape().str());
  if (add.data()) {
    detail::check_matrix("gather addend", add);
    FOFA_CHECK(add.shape() == out.shape(), "gather: addend ", add.shape().str(), " does not match output ",
               out.shape().str());
  }
  t.gather_rows(rows, table.dim(1), table.data(), detail::ld(table), ids.data(), scale, add.data(),
                add.data() ? detail::ld(add) : 0, out.data(), detail::ld(out));
}

// Causal multi-head attention. q/out [q_rows, heads*head_dim]; k/v [q_offset + q_rows, heads*head_dim];
// scratch holds at least attention_scratch_floats(q_offset + q_rows) floats.
inline void attention(TensorView<const float> q, TensorView<const float> k, TensorView<const float> v, index_t heads,
                      index_t q_offset, index_t key_begin, TensorView<float> out, std::span<float> scratch,
                      const KernelTable& t = kernels()) {
  detail::check_matrix("attention q", q);
  detail::check_matrix("attention k", k);
  detail::check_matrix("attention v", v);
  detail::check_matrix("attention output", out);
  FOFA_CHECK(heads >= 1 && q.dim(1) % heads == 0, "attention: width of q ", q.shape().str(),
             " is not a multiple of heads = ", heads);
  FOFA_CHECK(q_offset >= 0 && key_begin >= 0, "attention: negative q_offset ", q_offset, " or key_begin ", key_begin);
  const index_t keys = q_offset + q.dim(0);
  FOFA_CHECK(k.dim(0) == keys && k.dim(1) == q.dim(1), "attention: keys ", k.shape().str(), " do not match [", keys,
             ", ", q.dim(1), "] for q ", q.shape().str(), " at offset ", q_offset);
  FOFA_CHECK(v.shape() == k.shape(), "attention: values ", v.shape().str(), " do not match keys ", k.shape().str());
  FOFA_CHECK(out.shape() == q.shape(), "attention: output ", out.shape().str(), " does not match q ",
             q.shape().str());
  FOFA_CHECK(!detail::overlaps(out, q) && !detail::overlaps(out, k) && !detail::overlaps(out, v),
             "attention: output ", out.shape().str(), " overlaps q, k or v");
  FOFA_CHECK(static_cast<index_t>(scratch.size()) >= attention_scratch_floats(keys), "attention: scratch of ",
             scratch.size(), " floats < ", attention_scratch_floats(keys), " needed for ", keys, " keys");
  AttentionArgs a;
  a.q_rows = q.dim(0);
  a.q_offset = q_offset;
  a.key_begin = key_begin;
  a.heads = heads;
  a.head_dim = q.dim(1) / heads;
  a.q = q.data(); a.ldq = detail::ld(q);
  a.k = k.data(); a.ldk = detail::ld(k);
  a.v = v.data(); a.ldv = detail::ld(v);
  a.out = out.data(); a.ldo = detail::ld(out);
  a.scale = 1.0f / std::sqrt(static_cast<float>(a.head_dim));
  a.scratch = scratch.data();
  t.attention(a);
}

}  // namespace fofa::kernels
