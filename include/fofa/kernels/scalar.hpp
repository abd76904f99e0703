// fofa/kernels/scalar.hpp — the scalar KernelTable: reference loops behind the table API.
//
// Always compiled; it is the fallback without xsimd, the oracle the SIMD families are tested
// against through the same function pointers, and the "scalar" row of the benchmarks. Its
// packed weight layout is the [N, K] weight copied row-major followed by the bias [N].
#pragma once

#include "fofa/kernels/kernel_table.hpp"
#include "fofa/kernels/reference.hpp"

namespace fofa::kernels::scalar {


inline void pack_linear(index_t N, index_t K, const float* w, index_t ldw, const float* bias, PackedMatrix& out);
inline void pack_linear_t(index_t N, index_t K, const float* wt, index_t ldwt, const float* bias, PackedMatrix& out);
inline void gemm(index_t M, const float* x, index_t ldx, const PackedMatrix& w, float* y, index_t ldy,
                 Activation act, bool accumulate);
inline void gemv(const float* x, const PackedMatrix& w, float* y, Activation act, bool accumulate) {
  gemm(1, x, w.K, w, y, w.N, act, accumulate);
}
inline void layernorm(index_t rows, index_t d, const float* x, index_t ldx, const float* gamma, const float* beta,
                      float eps, float* y, index_t ldy) {
  reference::layernorm<float>(rows, d, x, ldx, gamma, beta, eps, y, ldy);
}
inline void softmax_rows(index_t rows, index_t cols, float* x, index_t ldx, bool causal, index_t causal_offset,
                         index_t col_begin) {
  reference::softmax_rows<float>(rows, cols, x, ldx, causal, causal_offset, col_begin);
}
inline void unary(UnaryOp op, index_t n, const float* x, float* y) { reference::unary<float>(op, n, x, y); }
inline void add_scaled(index_t n, const float* a, float s, const float* b, float* y) {
  reference::add_scaled<float>(n, a, s, b, y);
}
inline void mul(index_t n, const float* a, const float* b, float* y) { reference::mul<float>(n, a, b, y); }
inline void gather_rows(index_t rows, index_t d, const float* table, index_t ldt, const std::int32_t* ids,
                        float scale, const float* add, index_t lda, float* out, index_t ldo) {
  reference::gather_rows<float>(rows, d, table, ldt, ids, scale, add, lda, out, ldo);
}
inline void dot_rows(index_t rows, index_t d, const float* u, const float* m, index_t ldm, float* out) {
  reference::dot_rows<float>(rows, d, u, m, ldm, out);
}
inline void gemm_at(index_t M, const float* xt, index_t ldxt, const PackedMatrix& w, float* y, index_t ldy,
                    Activation act, bool accumulate);
inline void adam_update(index_t n, float* p, const float* g, float* m, float* v, const AdamArgs& a) {
  reference::adam_update<float>(n, p, g, m, v, a);
}
inline void attention(const AttentionArgs& a) {
  reference::attention<float>(a.q_rows, a.q_offset, a.key_begin, a.heads, a.head_dim, a.q, a.ldq, a.k, a.ldk, a.v,
                              a.ldv, a.out, a.ldo, a.scale, a.scratch);
}

inline void gemm_range(index_t M, const float* x, index_t rsx, index_t csx, const PackedMatrix& w, index_t k_begin,
                       index_t k_end, index_t n_end, float* y, index_t ldy, Activation act, bool accumulate);
inline void gemm_b(index_t M, const float* x, index_t rsx, index_t csx, index_t N, index_t K, const float* b,
                   index_t ldb, float* y, index_t ldy, bool accumulate);

inline constexpr KernelTable table{"scalar", &pack_linear, &gemm, &gemv, &layernorm, &softmax_rows, &unary,
                                   &add_scaled, &mul, &gather_rows, &dot_rows, &attention, &pack_linear_t,
                                   &gemm_at, &adam_update, &gemm_range, &gemm_b};

inline void pack_linear(index_t N, index_t K, const float* w, index_t ldw, const float* bias, PackedMatrix& out) {
  if (out.data.size() < N * K + N) out.data.resize(N * K + N);  // grows only: repacks reuse the buffer
  for (index_t n = 0; n < N; ++n) {
    for (index_t k = 0; k < K; ++k) out.data[n * K + k] = w[n * ldw + k];
    out.data[N * K + n] = bias ? bias[n] : 0.0f;
  }
  out.K = K;
  out.N = N;
  out.family = &table;
}

inline void pack_linear_t(index_t N, index_t K, const float* wt, index_t ldwt, const float* bias, PackedMatrix& out) {
  if (out.data.size() < N * K + N) out.data.resize(N * K + N);  // grows only: repacks reuse the buffer
  for (index_t n = 0; n < N; ++n) out.data[N * K + n] = bias ? bias[n] : 0.0f;
  for (index_t k = 0; k < K; ++k)
    for (index_t n = 0; n < N; ++n) out.data[n * K + k] = wt[k * ldwt + n];
  out.K = K;
  out.N = N;
  out.family = &table;
}

// Packed as [N, K] row-major then the bias: the range is a sub-block of it.
inline void gemm_range(index_t M, const float* x, index_t rsx, index_t csx, const PackedMatrix& w, index_t k_begin,
                       index_t k_end, index_t n_end, float* y, index_t ldy, Activation act, bool accumulate) {
  if (w.family != &table) throw Error("fofa: scalar kernel given a matrix packed by another kernel family");
  if (k_begin < 0 || k_begin > k_end || k_end > w.K || n_end < 0 || n_end > w.N)
    detail::throw_bad_range(k_begin, k_end, n_end, w);
  const float* wd = w.data.data();
  auto run = [&] {
    reference::detail::linear_strided<float>(M, n_end, k_end - k_begin, x + k_begin * csx, rsx, csx,
                                             wd ? wd + k_begin : nullptr, w.K, wd ? wd + w.N * w.K : nullptr, y, ldy,
                                             act, accumulate);
  };
  if (gemm_observer) [[unlikely]]
    return detail::observed_gemm(M, n_end, k_end - k_begin, csx != 1, run);
  run();
}

inline void gemm(index_t M, const float* x, index_t ldx, const PackedMatrix& w, float* y, index_t ldy,
                 Activation act, bool accumulate) {
  gemm_range(M, x, ldx, 1, w, 0, w.K, w.N, y, ldy, act, accumulate);
}

inline void gemm_b(index_t M, const float* x, index_t rsx, index_t csx, index_t N, index_t K, const float* b,
                   index_t ldb, float* y, index_t ldy, bool accumulate) {
  auto run = [&] { reference::product_b<float>(M, N, K, x, rsx, csx, b, ldb, y, ldy, accumulate); };
  if (gemm_observer) [[unlikely]]
    return detail::observed_gemm(M, N, K, csx != 1, run);
  run();
}

inline void gemm_at(index_t M, const float* xt, index_t ldxt, const PackedMatrix& w, float* y, index_t ldy,
                    Activation act, bool accumulate) {
  gemm_range(M, xt, 1, ldxt, w, 0, w.K, w.N, y, ldy, act, accumulate);
}

}  // namespace fofa::kernels::scalar
