// fofa/kernels/reference.hpp — scalar reference kernels, templated on the element type.
//
// These loops define what every kernel family must compute. They are written for clarity,
// not speed, and work for float (the scalar KernelTable and the test oracle) and double
// (autograd finite-difference checks). Matrices are row-major with explicit leading
// dimensions; linear weights are nn.Linear [N, K] (out, in).
//
// Accumulation order is part of the contract where the SIMD kernels can honour it: linear()
// starts each output at its bias and adds x[k] * w[n, k] with a fused multiply-add for
// k = 0, 1, ..., K-1, so a SIMD GEMM that vectorises over N is bit-exact against it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fofa/kernels/kernel_table.hpp"

namespace fofa::kernels::reference {

// ---- scalar activations and their derivatives (d act / dx at x) ----

template <class T>
T relu(T x) { return x > T(0) ? x : T(0); }
// GELU, erf form (PyTorch nn.GELU() default).
template <class T>
T gelu(T x) { return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440))); }
template <class T>
T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }
template <class T>
T tanh(T x) { return std::tanh(x); }

template <class T>
T relu_grad(T x) { return x > T(0) ? T(1) : T(0); }
template <class T>
T gelu_grad(T x) {
  // d/dx [x Phi(x)] = Phi(x) + x phi(x)
  const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
  const T pdf = std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
  return cdf + x * pdf;
}
template <class T>
T sigmoid_grad(T x) { const T s = sigmoid(x); return s * (T(1) - s); }
template <class T>
T tanh_grad(T x) { const T t = std::tanh(x); return T(1) - t * t; }

template <class T>
T apply(Activation act, T x) {
  switch (act) {
    case Activation::relu: return relu(x);
    case Activation::gelu: return gelu(x);
    case Activation::none: break;
  }
  return x;
}
template <class T>
T apply(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::relu: return relu(x);
    case UnaryOp::gelu: return gelu(x);
    case UnaryOp::tanh: return tanh(x);
    case UnaryOp::sigmoid: return sigmoid(x);
  }
  return x;
}
template <class T>
T apply_grad(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::relu: return relu_grad(x);
    case UnaryOp::gelu: return gelu_grad(x);
    case UnaryOp::tanh: return tanh_grad(x);
    case UnaryOp::sigmoid: return sigmoid_grad(x);
  }
  return T(1);
}

// ---- matrix products ----

namespace detail {
// linear() over x[m, k] = x[m * rsx + k * csx] (row-major x: (ldx, 1); x given transposed: (1, ldxt)).
template <class T>
void linear_strided(index_t M, index_t N, index_t K, const T* x, index_t rsx, index_t csx, const T* w, index_t ldw,
                    const T* bias, T* y, index_t ldy, Activation act, bool accumulate) {
  for (index_t m = 0; m < M; ++m) {
    for (index_t n = 0; n < N; ++n) {
      T acc = bias ? bias[n] : T(0);
      for (index_t k = 0; k < K; ++k) acc = std::fma(x[m * rsx + k * csx], w[n * ldw + k], acc);
      const T v = apply(act, acc);
      y[m * ldy + n] = accumulate ? y[m * ldy + n] + v : v;
    }
  }
}
}  // namespace detail

// y[M,N] = act(x[M,K] w[N,K]^T + bias) (+ y when accumulate). bias may be nullptr.
// Order: acc = bias[n]; acc = fma(x[m,k], w[n,k], acc) for k ascending; y = act(acc) [+ y].
template <class T>
void linear(index_t M, index_t N, index_t K, const T* x, index_t ldx, const T* w, index_t ldw, const T* bias, T* y,
            index_t ldy, Activation act = Activation::none, bool accumulate = false) {
  detail::linear_strided(M, N, K, x, ldx, index_t{1}, w, ldw, bias, y, ldy, act, accumulate);
}

// linear() with x given transposed: x[m, k] = xt[k * ldxt + m] (xt is [K, M] row-major). The
// same order as linear(), so both give identical results for the same x.
template <class T>
void linear_at(index_t M, index_t N, index_t K, const T* xt, index_t ldxt, const T* w, index_t ldw, const T* bias,
               T* y, index_t ldy, Activation act = Activation::none, bool accumulate = false) {
  detail::linear_strided(M, N, K, xt, index_t{1}, ldxt, w, ldw, bias, y, ldy, act, accumulate);
}

// y[M,N] = x[M,K] b[K,N] (+ y when accumulate), b row-major with row stride ldb, x[m, k] =
// x[m * rsx + k * csx]. Order: acc = 0; acc = fma(x[m,k], b[k,n], acc) for k ascending; y = acc
// [+ y]: linear() with W = b^T and no bias.
template <class T>
void product_b(index_t M, index_t N, index_t K, const T* x, index_t rsx, index_t csx, const T* b, index_t ldb, T* y,
               index_t ldy, bool accumulate) {
  for (index_t m = 0; m < M; ++m) {
    for (index_t n = 0; n < N; ++n) {
      T acc = T(0);
      for (index_t k = 0; k < K; ++k) acc = std::fma(x[m * rsx + k * csx], b[k * ldb + n], acc);
      y[m * ldy + n] = accumulate ? y[m * ldy + n] + acc : acc;
    }
  }
}

// General BLAS-style product for backward passes:
// C[M,N] = alpha * op(A) op(B) + beta * C, op(A) is [M,K] (A stored [K,M] when trans_a),
// op(B) is [K,N] (B stored [N,K] when trans_b). beta == 0 ignores C's old contents.
template <class T>
void matmul(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
            const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  for (index_t m = 0; m < M; ++m) {
    for (index_t n = 0; n < N; ++n) {
      T acc = T(0);
      for (index_t k = 0; k < K; ++k) {
        const T a = trans_a ? A[k * lda + m] : A[m * lda + k];
        const T b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
        acc += a * b;
      }
      T& c = C[m * ldc + n];
      c = beta == T(0) ? alpha * acc : alpha * acc + beta * c;
    }
  }
}

// ---- row-wise ops ----

// y = (x - mean) / sqrt(var + eps) * gamma + beta per row (biased variance, two passes).
// gamma / beta may be nullptr (1 / 0).
template <class T>
void layernorm(index_t rows, index_t d, const T* x, index_t ldx, const T* gamma, const T* beta, T eps, T* y,
               index_t ldy) {
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * ldx;
    T* yr = y + r * ldy;
    T mean = T(0);
    for (index_t i = 0; i < d; ++i) mean += xr[i];
    mean /= T(d);
    T var = T(0);
    for (index_t i = 0; i < d; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= T(d);
    const T inv = T(1) / std::sqrt(var + eps);
    for (index_t i = 0; i < d; ++i) {
      const T g = gamma ? gamma[i] : T(1);
      const T b = beta ? beta[i] : T(0);
      yr[i] = (xr[i] - mean) * inv * g + b;
    }
  }
}

// Last kept column + 1 of softmax row r (see KernelTable::softmax_rows).
inline index_t softmax_col_end(index_t r, index_t cols, bool causal, index_t causal_offset) {
  return causal ? std::min(cols, std::max<index_t>(causal_offset + r + 1, 0)) : cols;
}

// In-place masked row softmax; columns outside [col_begin, col_end(r)) become 0.
template <class T>
void softmax_rows(index_t rows, index_t cols, T* x, index_t ldx, bool causal, index_t causal_offset,
                  index_t col_begin) {
  for (index_t r = 0; r < rows; ++r) {
    T* xr = x + r * ldx;
    const index_t b = std::max<index_t>(col_begin, 0);
    const index_t e = softmax_col_end(r, cols, causal, causal_offset);
    T mx = -std::numeric_limits<T>::infinity();
    for (index_t c = b; c < e; ++c) mx = std::max(mx, xr[c]);
    T sum = T(0);
    for (index_t c = b; c < e; ++c) {
      xr[c] = std::exp(xr[c] - mx);
      sum += xr[c];
    }
    for (index_t c = 0; c < cols; ++c) xr[c] = (c >= b && c < e) ? xr[c] / sum : T(0);
  }
}

// ---- element-wise ----

template <class T>
void unary(UnaryOp op, index_t n, const T* x, T* y) {
  for (index_t i = 0; i < n; ++i) y[i] = apply(op, x[i]);
}
template <class T>
void add_scaled(index_t n, const T* a, T s, const T* b, T* y) {
  for (index_t i = 0; i < n; ++i) y[i] = a[i] + s * b[i];
}
template <class T>
void mul(index_t n, const T* a, const T* b, T* y) {
  for (index_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

// out[r, :] = scale * table[ids[r], :] + (add ? add[r, :] : 0). Ids are not range-checked here
// (the checked API and the model validate them against the table size).
template <class T>
void gather_rows(index_t rows, index_t d, const T* table, index_t ldt, const std::int32_t* ids, T scale,
                 const T* add, index_t lda, T* out, index_t ldo) {
  for (index_t r = 0; r < rows; ++r) {
    const T* src = table + static_cast<index_t>(ids[r]) * ldt;
    for (index_t i = 0; i < d; ++i) out[r * ldo + i] = scale * src[i] + (add ? add[r * lda + i] : T(0));
  }
}

// out[r] = <u, m[r, :]>, accumulated in index order.
template <class T>
void dot_rows(index_t rows, index_t d, const T* u, const T* m, index_t ldm, T* out) {
  for (index_t r = 0; r < rows; ++r) {
    T acc = T(0);
    for (index_t i = 0; i < d; ++i) acc += u[i] * m[r * ldm + i];
    out[r] = acc;
  }
}

// ---- attention ----

// Causal multi-head attention with the semantics of AttentionArgs: query row i (position
// q_offset + i) of head h attends keys key_begin .. q_offset + i with weights
// softmax(scale * <q_i, k_j>); rows with no visible key are zeros. `scores` needs
// q_offset + q_rows elements (nullptr: a local vector is used).
template <class T>
void attention(index_t q_rows, index_t q_offset, index_t key_begin, index_t heads, index_t head_dim, const T* q,
               index_t ldq, const T* k, index_t ldk, const T* v, index_t ldv, T* out, index_t ldo, T scale,
               T* scores = nullptr) {
  std::vector<T> local;
  if (!scores) {
    local.resize(static_cast<std::size_t>(std::max<index_t>(q_offset + q_rows, 1)));
    scores = local.data();
  }
  const index_t kb = std::max<index_t>(key_begin, 0);
  for (index_t h = 0; h < heads; ++h) {
    const index_t c0 = h * head_dim;
    for (index_t i = 0; i < q_rows; ++i) {
      const index_t last = q_offset + i;  // inclusive
      T* o = out + i * ldo + c0;
      for (index_t c = 0; c < head_dim; ++c) o[c] = T(0);
      if (last < kb) continue;
      T mx = -std::numeric_limits<T>::infinity();
      for (index_t j = kb; j <= last; ++j) {
        T acc = T(0);
        for (index_t c = 0; c < head_dim; ++c) acc += q[i * ldq + c0 + c] * k[j * ldk + c0 + c];
        scores[j] = acc * scale;
        mx = std::max(mx, scores[j]);
      }
      T sum = T(0);
      for (index_t j = kb; j <= last; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      const T inv = T(1) / sum;
      for (index_t j = kb; j <= last; ++j) {
        const T p = scores[j] * inv;
        for (index_t c = 0; c < head_dim; ++c) o[c] += p * v[j * ldv + c0 + c];
      }
    }
  }
}

// ---- optimiser ----

// One Adam / AdamW step over n elements, exactly as kernel_table.hpp's AdamArgs describes (and
// as autograd::Adam<T>::update computes it), each operation rounded separately.
template <class T>
void adam_update(index_t n, T* p, const T* g, T* m, T* v, const AdamArgs& a) {
  const T gs = a.grad_scale, b1 = a.beta1, b2 = a.beta2, eps = a.eps, step_size = a.step_size;
  const T sqrt_bc2 = a.sqrt_bc2, wd = a.weight_decay, decay = T(1) - T(a.lr) * wd;
  const T one_b1 = T(1) - b1, one_b2 = T(1) - b2;
  for (index_t k = 0; k < n; ++k) {
    T gk = g[k] * gs;
    if (wd != T(0)) {
      if (a.decoupled)
        p[k] *= decay;
      else
        gk += wd * p[k];
    }
    m[k] = b1 * m[k] + one_b1 * gk;
    v[k] = b2 * v[k] + one_b2 * gk * gk;
    p[k] -= step_size * m[k] / (std::sqrt(v[k]) / sqrt_bc2 + eps);
  }
}

}  // namespace fofa::kernels::reference
