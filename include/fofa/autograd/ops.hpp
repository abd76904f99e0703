// fofa/autograd/ops.hpp — differentiable ops on a Tape<T>: everything the Forward-OFA training
// graph uses (GEMMs, causal multi-head attention, LayerNorm, activations, embedding gather with
// sparse row gradients, straight-through Gumbel-sigmoid, BCE-with-logits, mask products).
//
// Each op computes its value now and records a closure that ADDS into its inputs' gradients
// (so a value used twice accumulates both contributions). Shapes are checked and mismatches throw
// fofa::Error naming both shapes. Every backward is checked by finite differences in double
// (tests/autograd). The small dense GEMMs are written in axpy form (contiguous inner loops the
// compiler vectorises for any T), so the same code serves the float and double paths.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "fofa/autograd/tape.hpp"

namespace fofa::autograd {

// ---- dense kernels (row-major, leading dimension = cols) ---------------------------------

namespace detail {

// BestIsa<&f>::run(args...) calls f compiled for the widest of AVX-512F, AVX2 + FMA and baseline
// x86-64 that the CPU has, chosen on the first call. The library's users build for baseline x86-64,
// so the autograd's float loops below would otherwise run at SSE2 width; the double instances
// (gradient checks) call f directly. FOFA_ISA=avx512|avx2|scalar, the kernels' override (scalar:
// baseline here), picks that version instead when the CPU runs it, so a forced ISA holds for the
// whole training step. Each wrapper is flattened so f and the templates it calls are compiled for
// its ISA (Clang 14 flattens one level only, so the helpers two calls down, axpy_gemm and sum8, are
// always_inline). The choice names ISA features, not CPU models ("arch=skylake-avx512" matches only
// that Intel model, so AMD CPUs ran the baseline). Plain target() wrappers and
// __builtin_cpu_supports rather than target_clones, which Clang 14 rejects with flatten and,
// without it, links to multiple definitions from inline functions.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FOFA_NO_XSIMD)
#define FOFA_AUTOGRAD_ISA_VERSIONS 1  // BestIsa has the three x86-64 versions
#endif
template <auto F>
struct BestIsa;
template <class... A, void (*F)(A...)>
struct BestIsa<F> {
  using Fn = void (*)(A...);
  struct Version {
    const char* isa;
    Fn fn;
  };
#ifdef FOFA_AUTOGRAD_ISA_VERSIONS
  [[gnu::target("avx512f"), gnu::flatten]] static void avx512(A... a) { F(a...); }
  [[gnu::target("avx2,fma"), gnu::flatten]] static void avx2(A... a) { F(a...); }
  [[gnu::flatten]] static void baseline(A... a) { F(a...); }
  // The versions this CPU runs, widest first (run()'s default); the tests compare them all.
  static std::vector<Version> versions() {
    __builtin_cpu_init();
    std::vector<Version> v;
    if (__builtin_cpu_supports("avx512f")) v.push_back({"avx512", &avx512});
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) v.push_back({"avx2", &avx2});
    v.push_back({"baseline", &baseline});
    return v;
  }
#else
  static std::vector<Version> versions() { return {{"portable", F}}; }
#endif
  // The version run() calls, chosen once.
  static Fn chosen() {
    static const Fn fn = [] {
      const std::vector<Version> v = versions();
      const char* forced = std::getenv("FOFA_ISA");
      const std::string want = !forced ? "" : std::strcmp(forced, "scalar") == 0 ? "baseline" : forced;
      for (const Version& x : v)
        if (want == x.isa) return x.fn;
      return v.front().fn;
    }();
    return fn;
  }
  static void run(A... a) { chosen()(a...); }
};

// C[M,N] += a(i, p) B[K,N] with a(i, p) = A[i * sa + p * sp] (sa = K, sp = 1: A is [M,K]; sa = 1,
// sp = M: A is [K,M] transposed). Full 4 x 32 tiles of C stay in registers across the K loop (the
// axpy form would load and store C once per p); ragged edges use the plain axpy loop.
template <class T>
[[gnu::always_inline]] inline void axpy_gemm(index_t M, index_t N, index_t K, const T* A, index_t sa, index_t sp,
                                             const T* B, T* C) {
  constexpr index_t TM = 4, TN = 32;
  const index_t M4 = M / TM * TM, N32 = N / TN * TN;
  for (index_t i0 = 0; i0 < M4; i0 += TM) {
    for (index_t j0 = 0; j0 < N32; j0 += TN) {
      T acc[TM][TN] = {};
      for (index_t p = 0; p < K; ++p) {
        const T* __restrict b = B + p * N + j0;
        for (index_t ii = 0; ii < TM; ++ii) {
          const T a = A[(i0 + ii) * sa + p * sp];
          for (index_t jj = 0; jj < TN; ++jj) acc[ii][jj] += a * b[jj];
        }
      }
      for (index_t ii = 0; ii < TM; ++ii)
        for (index_t jj = 0; jj < TN; ++jj) C[(i0 + ii) * N + j0 + jj] += acc[ii][jj];
    }
  }
  // Ragged edges: columns N32.. of the first M4 rows, then all columns of rows M4..
  auto edge = [&](index_t i_begin, index_t i_end, index_t j_begin) {
    for (index_t i = i_begin; i < i_end; ++i) {
      T* __restrict c = C + i * N;
      for (index_t p = 0; p < K; ++p) {
        const T a = A[i * sa + p * sp];
        const T* __restrict b = B + p * N;
        for (index_t j = j_begin; j < N; ++j) c[j] += a * b[j];
      }
    }
  };
  if (N32 < N) edge(0, M4, N32);
  edge(M4, M, 0);
}
template <class T>
inline void axpy_nn(index_t M, index_t N, index_t K, const T* A, const T* B, T* C) {
  axpy_gemm(M, N, K, A, K, 1, B, C);
}
template <class T>
inline void axpy_tn(index_t M, index_t N, index_t K, const T* A, const T* B, T* C) {
  axpy_gemm(M, N, K, A, 1, M, B, C);
}
inline void axpy_nn_f32(index_t M, index_t N, index_t K, const float* A, const float* B, float* C) {
  BestIsa<&axpy_nn<float>>::run(M, N, K, A, B, C);
}
inline void axpy_tn_f32(index_t M, index_t N, index_t K, const float* A, const float* B, float* C) {
  BestIsa<&axpy_tn<float>>::run(M, N, K, A, B, C);
}

}  // namespace detail

// C[M,N] (+)= A[M,K] B[K,N]
template <class T>
void gemm_nn(index_t M, index_t N, index_t K, const T* A, const T* B, T* C, bool accumulate) {
  if (!accumulate) std::fill_n(C, M * N, T(0));
  if constexpr (std::is_same_v<T, float>)
    detail::axpy_nn_f32(M, N, K, A, B, C);
  else
    detail::axpy_nn(M, N, K, A, B, C);
}
// C[M,N] (+)= A[K,M]^T B[K,N]
template <class T>
void gemm_tn(index_t M, index_t N, index_t K, const T* A, const T* B, T* C, bool accumulate) {
  if (!accumulate) std::fill_n(C, M * N, T(0));
  if constexpr (std::is_same_v<T, float>)
    detail::axpy_tn_f32(M, N, K, A, B, C);
  else
    detail::axpy_tn(M, N, K, A, B, C);
}
// <a, b> over n with 8 independent partial sums, so the compiler vectorises it without fast-math.
template <class T>
T dot(index_t n, const T* __restrict a, const T* __restrict b) {
  T acc[8] = {};
  index_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// C[M,N] (+)= A[M,K] B[N,K]^T. Few rows (the mapper's per-user code, M = 1): dot products against
// B's rows; otherwise B is transposed into `scratch` (K*N) in cache-sized tiles and the product runs
// in axpy form, so the transposition is amortised over the M rows.
template <class T>
void gemm_nt(index_t M, index_t N, index_t K, const T* A, const T* B, T* C, bool accumulate, T* scratch) {
  if (M <= 4) {
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        const T v = dot(K, A + i * K, B + j * K);
        C[i * N + j] = accumulate ? C[i * N + j] + v : v;
      }
    return;
  }
  constexpr index_t tile = 16;
  for (index_t j0 = 0; j0 < N; j0 += tile)
    for (index_t p0 = 0; p0 < K; p0 += tile)
      for (index_t j = j0; j < std::min(N, j0 + tile); ++j)
        for (index_t p = p0; p < std::min(K, p0 + tile); ++p) scratch[p * N + j] = B[j * K + p];
  gemm_nn(M, N, K, A, scratch, C, accumulate);
}

namespace detail {
template <class T>
void check_same(Tape<T>& t, Var a, Var b, const char* op) {
  FOFA_CHECK(t.rows(a) == t.rows(b) && t.cols(a) == t.cols(b), op, ": shapes [", t.rows(a), ", ", t.cols(a),
             "] and [", t.rows(b), ", ", t.cols(b), "] differ");
}
template <class T>
T sigmoid(T x) {
  return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}
}  // namespace detail

// ---- elementwise -----------------------------------------------------------------------

template <class T>
Var add(Tape<T>& t, Var a, Var b) {
  detail::check_same(t, a, b, "add");
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T *av = t.value(a), *bv = t.value(b), *yv = t.value(y), *ag = t.grad(a), *bg = t.grad(b), *yg = t.grad(y);
  for (index_t i = 0; i < n; ++i) yv[i] = av[i] + bv[i];
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) ag[i] += yg[i], bg[i] += yg[i];
  });
  return y;
}

template <class T>
Var sub(Tape<T>& t, Var a, Var b) {
  detail::check_same(t, a, b, "sub");
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T *av = t.value(a), *bv = t.value(b), *yv = t.value(y), *ag = t.grad(a), *bg = t.grad(b), *yg = t.grad(y);
  for (index_t i = 0; i < n; ++i) yv[i] = av[i] - bv[i];
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) ag[i] += yg[i], bg[i] -= yg[i];
  });
  return y;
}

// y = a * b elementwise.
template <class T>
Var mul(Tape<T>& t, Var a, Var b) {
  detail::check_same(t, a, b, "mul");
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T *av = t.value(a), *bv = t.value(b), *yv = t.value(y), *ag = t.grad(a), *bg = t.grad(b), *yg = t.grad(y);
  for (index_t i = 0; i < n; ++i) yv[i] = av[i] * bv[i];
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) ag[i] += yg[i] * bv[i], bg[i] += yg[i] * av[i];
  });
  return y;
}

// y[r, :] = a[r, :] + row[0, :] (broadcast over rows).
template <class T>
Var add_row(Tape<T>& t, Var a, Var row) {
  const index_t R = t.rows(a), C = t.cols(a);
  FOFA_CHECK(t.rows(row) == 1 && t.cols(row) == C, "add_row: row [", t.rows(row), ", ", t.cols(row),
             "] does not broadcast to [", R, ", ", C, "]");
  Var y = t.make_output(R, C);
  T *av = t.value(a), *bv = t.value(row), *yv = t.value(y), *ag = t.grad(a), *bg = t.grad(row), *yg = t.grad(y);
  for (index_t r = 0; r < R; ++r)
    for (index_t c = 0; c < C; ++c) yv[r * C + c] = av[r * C + c] + bv[c];
  t.on_backward([=] {
    for (index_t r = 0; r < R; ++r)
      for (index_t c = 0; c < C; ++c) ag[r * C + c] += yg[r * C + c], bg[c] += yg[r * C + c];
  });
  return y;
}

// y[r, :] = a[r, :] * row[0, :] (the mapper's per-user FFN gate).
template <class T>
Var mul_row(Tape<T>& t, Var a, Var row) {
  const index_t R = t.rows(a), C = t.cols(a);
  FOFA_CHECK(t.rows(row) == 1 && t.cols(row) == C, "mul_row: row [", t.rows(row), ", ", t.cols(row),
             "] does not broadcast to [", R, ", ", C, "]");
  Var y = t.make_output(R, C);
  T *av = t.value(a), *bv = t.value(row), *yv = t.value(y), *ag = t.grad(a), *bg = t.grad(row), *yg = t.grad(y);
  for (index_t r = 0; r < R; ++r)
    for (index_t c = 0; c < C; ++c) yv[r * C + c] = av[r * C + c] * bv[c];
  t.on_backward([=] {
    for (index_t r = 0; r < R; ++r)
      for (index_t c = 0; c < C; ++c) ag[r * C + c] += yg[r * C + c] * bv[c], bg[c] += yg[r * C + c] * av[r * C + c];
  });
  return y;
}

// y = s * a with a constant s.
template <class T>
Var scale(Tape<T>& t, Var a, T s) {
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T *av = t.value(a), *yv = t.value(y), *ag = t.grad(a), *yg = t.grad(y);
  for (index_t i = 0; i < n; ++i) yv[i] = s * av[i];
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) ag[i] += s * yg[i];
  });
  return y;
}

// Mask product y = m * a + (1 - m) * b, m = gate[0, k] (a kept or skipped block; d/dm = <g, a - b>).
template <class T>
Var select_blend(Tape<T>& t, Var gate, index_t k, Var a, Var b) {
  detail::check_same(t, a, b, "select_blend");
  FOFA_CHECK(t.rows(gate) == 1 && k >= 0 && k < t.cols(gate), "select_blend: gate index ", k, " outside [1, ",
             t.cols(gate), "]");
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T *mv = t.value(gate) + k, *mg = t.grad(gate) + k;
  T *av = t.value(a), *bv = t.value(b), *yv = t.value(y);
  const T m = *mv;
  for (index_t i = 0; i < n; ++i) yv[i] = m * av[i] + (T(1) - m) * bv[i];
  Tape<T>* tp = &t;
  t.on_backward([=] {
    const T* yg = tp->grad_to_read(y);
    const auto [ag, fa] = tp->grad_to_write(a);  // fresh gradients: written as 0 + contribution
    const auto [bg, fb] = tp->grad_to_write(b);
    T dm = 0;
    for (index_t i = 0; i < n; ++i) {
      ag[i] = (fa ? T(0) : ag[i]) + m * yg[i];
      bg[i] = (fb ? T(0) : bg[i]) + (T(1) - m) * yg[i];
      dm += yg[i] * (av[i] - bv[i]);
    }
    *mg += dm;
  });
  return y;
}

enum class Unary { relu, gelu, tanh, sigmoid };

namespace detail {
// c ? a : b on the bits. GCC turns some float selects into conditional arithmetic (a division, a
// float -> int conversion), which -ftrapping-math keeps from vectorising without AVX-512's masks:
// gelu_backward's AVX2 version stayed scalar. Integer selects vectorise everywhere.
inline float select_bits(bool c, float a, float b) {
  std::uint32_t ab, bb;
  std::memcpy(&ab, &a, sizeof ab);
  std::memcpy(&bb, &b, sizeof bb);
  const std::uint32_t m = 0u - static_cast<std::uint32_t>(c);
  const std::uint32_t r = (ab & m) | (bb & ~m);
  float out;
  std::memcpy(&out, &r, sizeof out);
  return out;
}
// exp(z) for z <= 0 (Cephes expf: range reduction by ln 2, degree-6 polynomial, exponent bits),
// within 2 ulp of std::exp, in plain arithmetic so the compiler vectorises loops over it.
inline float exp_nonpositive(float z) {
  // Clamp into [-87, 0] with selects that also map NaN to -87: the float -> int conversion below
  // must never see NaN or a large value (undefined behaviour; UBSan). A NaN input still reaches the
  // callers' results through their other terms (gelu_backward: y / x).
  z = select_bits(z > -87.0f, select_bits(z < 0.0f, z, 0.0f), -87.0f);
  // Round to nearest with the 1.5 * 2^23 trick (floor() would not vectorise under -ftrapping-math).
  const float n = (z * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (z - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) * (std::int32_t{1} << 23);
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
// gx += gelu'(x) g from x and y = gelu(x): Phi(x) = y / x (its series near 0), phi from exp. g = gy,
// or under dropout (Masked: unary_dropout) the rounded product gy * mask, which the separate mul
// pass gave. Overwrite: gx holds no gradient yet (Tape::grad_to_write), so gx = contribution + 0,
// as 0 + contribution.
template <bool Masked, bool Overwrite>
inline void gelu_backward_loop(index_t n, const float* __restrict x, const float* __restrict y,
                               const float* __restrict gy, const float* __restrict mask, float* __restrict gx) {
  constexpr float inv_sqrt2pi = 0.39894228040143267794f;
  for (index_t i = 0; i < n; ++i) {
    const float xi = x[i];
    // Branch-free (selects of computed values) so the loop vectorises under -ftrapping-math.
    const bool near0 = std::abs(xi) < 1e-3f;
    const float q = y[i] / select_bits(near0, 1.0f, xi);
    const float cdf = select_bits(near0, 0.5f + inv_sqrt2pi * xi, q);
    const float pdf = inv_sqrt2pi * exp_nonpositive(-0.5f * xi * xi);
    const float g = Masked ? gy[i] * mask[i] : gy[i];
    if constexpr (Overwrite)
      gx[i] = (cdf + xi * pdf) * g + 0.0f;
    else
      gx[i] += (cdf + xi * pdf) * g;
  }
}
inline void gelu_backward_f32(index_t n, const float* x, const float* y, const float* gy, float* gx) {
  BestIsa<&gelu_backward_loop<false, false>>::run(n, x, y, gy, nullptr, gx);
}
inline void gelu_dropout_backward_f32(index_t n, const float* x, const float* y, const float* gy, const float* mask,
                                      float* gx, bool overwrite) {
  if (overwrite)
    BestIsa<&gelu_backward_loop<true, true>>::run(n, x, y, gy, mask, gx);
  else
    BestIsa<&gelu_backward_loop<true, false>>::run(n, x, y, gy, mask, gx);
}
}  // namespace detail

namespace detail {
// y = op(a) (float GELU on the SIMD kernel).
template <class T>
void unary_forward(Unary op, index_t n, const T* av, T* yv) {
  if constexpr (std::is_same_v<T, float>) {
    if (op == Unary::gelu) {
      kernels::kernels().unary(kernels::UnaryOp::gelu, n, av, yv);
      return;
    }
  }
  constexpr T inv_sqrt2 = T(0.70710678118654752440);
  switch (op) {
    case Unary::relu:
      for (index_t i = 0; i < n; ++i) yv[i] = av[i] > T(0) ? av[i] : T(0);
      break;
    case Unary::gelu:
      for (index_t i = 0; i < n; ++i) yv[i] = T(0.5) * av[i] * (T(1) + std::erf(av[i] * inv_sqrt2));
      break;
    case Unary::tanh:
      for (index_t i = 0; i < n; ++i) yv[i] = std::tanh(av[i]);
      break;
    case Unary::sigmoid:
      for (index_t i = 0; i < n; ++i) yv[i] = detail::sigmoid(av[i]);
      break;
  }
}
// ag += op'(a) yg from a and y = op(a) (float GELU vectorised).
template <class T>
void unary_backward(Unary op, index_t n, const T* av, const T* yv, const T* yg, T* ag) {
  if constexpr (std::is_same_v<T, float>) {
    if (op == Unary::gelu) {
      gelu_backward_f32(n, av, yv, yg, ag);
      return;
    }
  }
  constexpr T inv_sqrt2 = T(0.70710678118654752440), inv_sqrt2pi = T(0.39894228040143267794);
  switch (op) {
    case Unary::relu:
      for (index_t i = 0; i < n; ++i) ag[i] += av[i] > T(0) ? yg[i] : T(0);
      break;
    case Unary::gelu:
      for (index_t i = 0; i < n; ++i) {
        const T x = av[i];
        ag[i] += (T(0.5) * (T(1) + std::erf(x * inv_sqrt2)) + x * inv_sqrt2pi * std::exp(T(-0.5) * x * x)) * yg[i];
      }
      break;
    case Unary::tanh:
      for (index_t i = 0; i < n; ++i) ag[i] += (T(1) - yv[i] * yv[i]) * yg[i];
      break;
    case Unary::sigmoid:
      for (index_t i = 0; i < n; ++i) ag[i] += yv[i] * (T(1) - yv[i]) * yg[i];
      break;
  }
}
}  // namespace detail

template <class T>
Var unary(Tape<T>& t, Unary op, Var a) {
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T *av = t.value(a), *yv = t.value(y), *ag = t.grad(a), *yg = t.grad(y);
  detail::unary_forward(op, n, av, yv);
  t.on_backward([=] { detail::unary_backward(op, n, av, yv, yg, ag); });
  return y;
}

namespace detail {
// A 32-bit avalanche hash (lowbias32): every output bit depends on every input bit.
inline std::uint32_t mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}
// Counter-based keep mask: element i is kept iff mix32(mix32(i ^ k0) + k1) >= threshold, so the
// draws are independent per element and the loop vectorises (a serial RNG chain cost ~3 ns per
// element). mask[i] = kept ? scale : 0, y[i] = a[i] * mask[i].
template <class T>
inline void dropout_forward(index_t n, std::uint32_t k0, std::uint32_t k1, std::uint32_t threshold, T scale,
                            const T* __restrict a, T* __restrict y, T* __restrict mask) {
  for (index_t i = 0; i < n; ++i) {
    const std::uint32_t h = mix32(mix32(static_cast<std::uint32_t>(i) ^ k0) + k1);
    mask[i] = h >= threshold ? scale : T(0);
    y[i] = a[i] * mask[i];
  }
}
inline void dropout_forward_f32(index_t n, std::uint32_t k0, std::uint32_t k1, std::uint32_t threshold, float scale,
                                const float* a, float* y, float* mask) {
  BestIsa<&dropout_forward<float>>::run(n, k0, k1, threshold, scale, a, y, mask);
}
// The keep threshold of dropout probability p in [0, 1): P(h >= threshold) = 1 - p to 2^-32.
inline std::uint32_t dropout_threshold(double p) {
  const double t = std::round(p * 4294967296.0);
  return t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(t);
}
}  // namespace detail

// Inverted dropout (p = 0: identity, no node). The keep mask is a hash of (key, element index):
// the same key gives the same mask, so callers draw one key per call from their seeded stream.
template <class T>
Var dropout(Tape<T>& t, Var a, double p, std::uint64_t key) {
  FOFA_CHECK(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  if (p == 0.0) return a;
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T* mask = t.scratch_uninit(n);
  const T keep_scale = T(1.0 / (1.0 - p));
  T *av = t.value(a), *yv = t.value(y), *ag = t.grad(a), *yg = t.grad(y);
  const auto k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  if constexpr (std::is_same_v<T, float>)
    detail::dropout_forward_f32(n, k0, k1, detail::dropout_threshold(p), keep_scale, av, yv, mask);
  else
    detail::dropout_forward<T>(n, k0, k1, detail::dropout_threshold(p), keep_scale, av, yv, mask);
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) ag[i] += yg[i] * mask[i];
  });
  return y;
}

namespace detail {
// y = base + mask * z (* row), the fused residual branch; mask from dropout_forward's hash.
template <class T>
inline void residual_dropout_forward(index_t R, index_t C, std::uint32_t k0, std::uint32_t k1, std::uint32_t threshold,
                                     T scale, const T* __restrict base, const T* __restrict z, const T* __restrict row,
                                     T* __restrict y, T* __restrict mask) {
  for (index_t r = 0; r < R; ++r)
    for (index_t c = 0; c < C; ++c) {
      const index_t i = r * C + c;
      const std::uint32_t h = mix32(mix32(static_cast<std::uint32_t>(i) ^ k0) + k1);
      mask[i] = h >= threshold ? scale : T(0);
      y[i] = base[i] + mask[i] * (row ? z[i] * row[c] : z[i]);
    }
}
inline void residual_dropout_forward_f32(index_t R, index_t C, std::uint32_t k0, std::uint32_t k1,
                                         std::uint32_t threshold, float scale, const float* base, const float* z,
                                         const float* row, float* y, float* mask) {
  BestIsa<&residual_dropout_forward<float>>::run(R, C, k0, k1, threshold, scale, base, z, row, y, mask);
}
// The backward of residual_dropout: gb += gy; gz += mask gy row; grow += sum_r mask gy z (mask and
// row may be nullptr: all ones; grow only with row).
// FreshB / FreshZ: bg / zg hold no gradient yet (Tape::grad_to_write) and are written as
// 0 + contribution.
template <class T, bool FreshB = false, bool FreshZ = false>
inline void residual_dropout_backward(index_t R, index_t C, const T* __restrict yg, const T* __restrict mask,
                                      const T* __restrict zv, const T* __restrict rv, T* __restrict bg,
                                      T* __restrict zg, T* __restrict rg) {
  for (index_t r = 0; r < R; ++r) {
    const T* gy = yg + r * C;
    const T* m = mask ? mask + r * C : nullptr;
    T* gz = zg + r * C;
    T* gb = bg + r * C;
    for (index_t c = 0; c < C; ++c) gb[c] = (FreshB ? T(0) : gb[c]) + gy[c];
    if (!rv) {
      if (m)
        for (index_t c = 0; c < C; ++c) gz[c] = (FreshZ ? T(0) : gz[c]) + gy[c] * m[c];
      else
        for (index_t c = 0; c < C; ++c) gz[c] = (FreshZ ? T(0) : gz[c]) + gy[c];
      continue;
    }
    const T* z = zv + r * C;
    for (index_t c = 0; c < C; ++c) {
      const T g = m ? gy[c] * m[c] : gy[c];
      gz[c] = (FreshZ ? T(0) : gz[c]) + g * rv[c];
      rg[c] += g * z[c];
    }
  }
}
inline void residual_dropout_backward_f32(index_t R, index_t C, const float* yg, const float* mask, const float* zv,
                                          const float* rv, float* bg, float* zg, float* rg, bool fresh_b = false,
                                          bool fresh_z = false) {
  if (fresh_b && fresh_z)
    BestIsa<&residual_dropout_backward<float, true, true>>::run(R, C, yg, mask, zv, rv, bg, zg, rg);
  else if (fresh_b)
    BestIsa<&residual_dropout_backward<float, true, false>>::run(R, C, yg, mask, zv, rv, bg, zg, rg);
  else if (fresh_z)
    BestIsa<&residual_dropout_backward<float, false, true>>::run(R, C, yg, mask, zv, rv, bg, zg, rg);
  else
    BestIsa<&residual_dropout_backward<float>>::run(R, C, yg, mask, zv, rv, bg, zg, rg);
}
}  // namespace detail

// y = base + dropout(z * row) with row [1, C] broadcast over the rows of z (invalid Var: no row),
// the dropout mask exactly that of dropout(t, ., p, key) (p = 0: no dropout). One node for the
// residual branch of a block (the FFN gate, its dropout and the residual add).
template <class T>
Var residual_dropout(Tape<T>& t, Var base, Var z, Var row, double p, std::uint64_t key) {
  FOFA_CHECK(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  detail::check_same(t, base, z, "residual_dropout");
  const index_t R = t.rows(z), C = t.cols(z), n = R * C;
  if (row.valid())
    FOFA_CHECK(t.rows(row) == 1 && t.cols(row) == C, "residual_dropout: row [", t.rows(row), ", ", t.cols(row),
               "] does not broadcast to [", R, ", ", C, "]");
  FOFA_CHECK(t.value(base) != t.value(z), "residual_dropout: base and branch share storage");
  Var y = t.make_output(R, C);
  T *bv = t.value(base), *zv = t.value(z), *yv = t.value(y);
  T* rv = row.valid() ? t.value(row) : nullptr;
  T* rg = row.valid() ? t.grad(row) : nullptr;
  T* mask = nullptr;
  if (p > 0.0) {
    mask = t.scratch_uninit(n);
    const T keep_scale = T(1.0 / (1.0 - p));
    const auto k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
    if constexpr (std::is_same_v<T, float>)
      detail::residual_dropout_forward_f32(R, C, k0, k1, detail::dropout_threshold(p), keep_scale, bv, zv, rv, yv, mask);
    else
      detail::residual_dropout_forward<T>(R, C, k0, k1, detail::dropout_threshold(p), keep_scale, bv, zv, rv, yv, mask);
  } else {
    for (index_t r = 0; r < R; ++r)
      for (index_t c = 0; c < C; ++c) yv[r * C + c] = bv[r * C + c] + (rv ? zv[r * C + c] * rv[c] : zv[r * C + c]);
  }
  Tape<T>* tp = &t;
  t.on_backward([=] {
    const T* yg = tp->grad_to_read(y);
    const auto [bg, fb] = tp->grad_to_write(base);
    const auto [zg, fz] = tp->grad_to_write(z);
    if constexpr (std::is_same_v<T, float>) {
      detail::residual_dropout_backward_f32(R, C, yg, mask, zv, rv, bg, zg, rg, fb, fz);
    } else {
      if (fb) std::fill_n(bg, R * C, T(0));
      if (fz) std::fill_n(zg, R * C, T(0));
      detail::residual_dropout_backward<T>(R, C, yg, mask, zv, rv, bg, zg, rg);
    }
  });
  return y;
}

// dropout(unary(op, a), p, key) as one node: the same values, masks and gradients without the
// activation's node (its values live in scratch for the backward).
template <class T>
Var unary_dropout(Tape<T>& t, Unary op, Var a, double p, std::uint64_t key) {
  if (p == 0.0) return unary(t, op, a);
  FOFA_CHECK(p > 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T *av = t.value(a), *yv = t.value(y);
  T* u = t.scratch_uninit(n);
  T* mask = t.scratch_uninit(n);
  detail::unary_forward(op, n, av, u);
  const T keep_scale = T(1.0 / (1.0 - p));
  const auto k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  if constexpr (std::is_same_v<T, float>)
    detail::dropout_forward_f32(n, k0, k1, detail::dropout_threshold(p), keep_scale, u, yv, mask);
  else
    detail::dropout_forward<T>(n, k0, k1, detail::dropout_threshold(p), keep_scale, u, yv, mask);
  Tape<T>* tp = &t;
  t.on_backward([=] {
    const T* yg = tp->grad_to_read(y);
    if constexpr (std::is_same_v<T, float>) {
      if (op == Unary::gelu) {  // the product and GELU's derivative in one pass
        const auto [ag, fresh] = tp->grad_to_write(a);
        detail::gelu_dropout_backward_f32(n, av, u, yg, mask, ag, fresh);
        return;
      }
    }
    T* ag = tp->grad_to_read(a);  // added to
    T* gu = tp->temp(n, 3);  // the activation's gradient, mask * dy
    if constexpr (std::is_same_v<T, float>)
      kernels::kernels().mul(n, yg, mask, gu);  // one rounded product each, as the loop below
    else
      for (index_t i = 0; i < n; ++i) gu[i] = yg[i] * mask[i];
    detail::unary_backward(op, n, av, u, gu, ag);
  });
  return y;
}

// ---- shape ops -------------------------------------------------------------------------

// Rows [begin, end) of a.
template <class T>
Var slice_rows(Tape<T>& t, Var a, index_t begin, index_t end) {
  const index_t C = t.cols(a);
  FOFA_CHECK(begin >= 0 && begin <= end && end <= t.rows(a), "slice_rows [", begin, ", ", end, ") of ", t.rows(a),
             " rows");
  Var y = t.make_output(end - begin, C);
  T *av = t.value(a) + begin * C, *ag = t.grad(a) + begin * C, *yv = t.value(y), *yg = t.grad(y);
  const index_t n = (end - begin) * C;
  std::copy_n(av, n, yv);
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) ag[i] += yg[i];
  });
  return y;
}

// [1, a + b] from two row vectors.
template <class T>
Var concat_cols(Tape<T>& t, Var a, Var b) {
  FOFA_CHECK(t.rows(a) == 1 && t.rows(b) == 1, "concat_cols needs row vectors");
  const index_t na = t.cols(a), nb = t.cols(b);
  Var y = t.make_output(1, na + nb);
  T *yv = t.value(y), *yg = t.grad(y), *ag = t.grad(a), *bg = t.grad(b);
  std::copy_n(t.value(a), na, yv);
  std::copy_n(t.value(b), nb, yv + na);
  t.on_backward([=] {
    for (index_t i = 0; i < na; ++i) ag[i] += yg[i];
    for (index_t i = 0; i < nb; ++i) bg[i] += yg[na + i];
  });
  return y;
}

// [n, C] from n row vectors [1, C] (the mapper codes of a batch of samples).
template <class T>
Var stack_rows(Tape<T>& t, std::span<const Var> rows) {
  FOFA_CHECK(!rows.empty(), "stack_rows of no rows");
  const index_t n = static_cast<index_t>(rows.size()), C = t.cols(rows[0]);
  for (Var r : rows)
    FOFA_CHECK(t.rows(r) == 1 && t.cols(r) == C, "stack_rows: row [", t.rows(r), ", ", t.cols(r), "] among rows of ", C);
  Var y = t.make_output(n, C);
  T *yv = t.value(y), *yg = t.grad(y);
  std::vector<T*> grads(rows.size());
  for (index_t i = 0; i < n; ++i) {
    std::copy_n(t.value(rows[static_cast<std::size_t>(i)]), C, yv + i * C);
    grads[static_cast<std::size_t>(i)] = t.grad(rows[static_cast<std::size_t>(i)]);
  }
  t.on_backward([=, grads = std::move(grads)] {
    for (index_t i = 0; i < n; ++i)
      for (index_t c = 0; c < C; ++c) grads[static_cast<std::size_t>(i)][c] += yg[i * C + c];
  });
  return y;
}

// [1, C] mean over the rows of a.
template <class T>
Var mean_rows(Tape<T>& t, Var a) {
  const index_t R = t.rows(a), C = t.cols(a);
  FOFA_CHECK(R >= 1, "mean_rows of an empty matrix");
  Var y = t.make(1, C);
  T *av = t.value(a), *ag = t.grad(a), *yv = t.value(y), *yg = t.grad(y);
  const T inv = T(1) / static_cast<T>(R);
  for (index_t r = 0; r < R; ++r)
    for (index_t c = 0; c < C; ++c) yv[c] += av[r * C + c] * inv;
  t.on_backward([=] {
    for (index_t r = 0; r < R; ++r)
      for (index_t c = 0; c < C; ++c) ag[r * C + c] += yg[c] * inv;
  });
  return y;
}

// ---- GEMMs -----------------------------------------------------------------------------

namespace detail {
// bg[j] += y[0, j] + ... + y[M-1, j] (a bias gradient), rows in order with one add per element, so
// every ISA version gives the bits of the plain loop. Blocks of 64 columns keep their sums in
// registers across the rows (the plain loop loads and stores bg once per row).
template <class T>
inline void add_column_sums_loop(index_t M, index_t N, const T* y, T* bg) {
  constexpr index_t B = 64;
  index_t j0 = 0;
  for (; j0 + B <= N; j0 += B) {
    T acc[B];
    for (index_t j = 0; j < B; ++j) acc[j] = bg[j0 + j];
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < B; ++j) acc[j] += y[i * N + j0 + j];
    for (index_t j = 0; j < B; ++j) bg[j0 + j] = acc[j];
  }
  for (index_t i = 0; i < M; ++i)
    for (index_t j = j0; j < N; ++j) bg[j] += y[i * N + j];
}
// Named outside a template, as the other loops' _f32 wrappers: named only as a template argument
// inside add_column_sums<T>, the loop was left undefined by GCC 12 in the portable build (where
// BestIsa only stores its address), which failed to link.
inline void add_column_sums_f32(index_t M, index_t N, const float* y, float* bg) {
  BestIsa<&add_column_sums_loop<float>>::run(M, N, y, bg);
}
template <class T>
void add_column_sums(index_t M, index_t N, const T* y, T* bg) {
  if constexpr (std::is_same_v<T, float>)
    add_column_sums_f32(M, N, y, bg);
  else
    add_column_sums_loop(M, N, y, bg);
}

// gather's prefetch distance (rows) and the prefetch of one row of n elements, every 64-byte line.
inline constexpr index_t kGatherAhead = 4;
template <class T>
inline void prefetch_row(const T* p, index_t n) {
  const auto* b = reinterpret_cast<const char*>(p);
  const auto bytes = static_cast<std::size_t>(n) * sizeof(T);
  for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(b + off, 0, 3);
}

// Products with at least this many rows use the packed SIMD GEMM (float); fewer rows (the
// mapper's and controller's one-row products) stay in dot / axpy form.
inline constexpr index_t kPackedGemmMinRows = 5;
}  // namespace detail

// y = x W^T (+ b): x [M, K], W [N, K] (nn.Linear layout), b [1, N] or invalid Var.
// float with M >= 5 rows: kernels::gemm with W packed (cached per step when the tape caches
// parameter packs); dW = dy^T x runs as a GEMM over the M rows reading dy transposed and x in place (gemm_b).
template <class T>
Var linear(Tape<T>& t, Var x, Var w, Var b = {}) {
  const index_t M = t.rows(x), K = t.cols(x), N = t.rows(w);
  FOFA_CHECK(t.cols(w) == K, "linear: x [", M, ", ", K, "] and W [", N, ", ", t.cols(w), "] do not match");
  if (b.valid())
    FOFA_CHECK(t.rows(b) * t.cols(b) == N, "linear: bias has ", t.rows(b) * t.cols(b), " elements, W has ", N,
               " rows");
  Var y = t.make_output(M, N);
  T *xv = t.value(x), *wv = t.value(w), *wg = t.grad(w), *yv = t.value(y);
  T* bv = b.valid() ? t.value(b) : nullptr;
  T* bg = b.valid() ? t.grad(b) : nullptr;
  if constexpr (std::is_same_v<T, float>) {
    if (M >= detail::kPackedGemmMinRows) {
      const kernels::KernelTable& kt = kernels::kernels();
      kt.gemm(M, xv, K, t.packed_weight(w, bv, false), yv, N, kernels::Activation::none, false);
      Tape<T>* tp = &t;
      t.on_backward([=] {
        const T* yg = tp->grad_to_read(y);
        const auto [xg, fresh] = tp->grad_to_write(x);  // fresh: dx is written, not added (a +0 chain)
        if (tp->caches_packed(w))  // dx = dy W: a parameter's per-step pack, any other W read in place
          kt.gemm(M, yg, N, tp->packed_weight(w, nullptr, true), xg, K, kernels::Activation::none, !fresh);
        else
          kt.gemm_b(M, yg, N, 1, K, N, wv, K, xg, K, !fresh);
        kt.gemm_b(N, yg, 1, N, K, M, xv, K, wg, K, true);  // dW = dy^T x: dy read transposed, x in place
        if (bg) detail::add_column_sums(M, N, yg, bg);
      });
      return y;
    }
    if (t.caches_packed(w)) {  // few rows against a parameter: GEMV on the per-step packed copy
      T *xg = t.grad(x), *yg = t.grad(y);
      const kernels::KernelTable& kt = kernels::kernels();
      const kernels::PackedMatrix& pw = t.packed_weight(w, bv, false);
      for (index_t i = 0; i < M; ++i) kt.gemv(xv + i * K, pw, yv + i * N, kernels::Activation::none, false);
      Tape<T>* tp = &t;
      t.on_backward([=] {
        const kernels::PackedMatrix& pt = tp->packed_weight(w, nullptr, true);
        for (index_t i = 0; i < M; ++i) kt.gemv(yg + i * N, pt, xg + i * K, kernels::Activation::none, true);
        gemm_tn(N, K, M, yg, xv, wg, true);  // dW = dy^T x (outer products)
        if (bg) detail::add_column_sums(M, N, yg, bg);
      });
      return y;
    }
  }
  T *xg = t.grad(x), *yg = t.grad(y);
  T* scratch = M <= 4 ? nullptr : t.scratch_uninit(N * K);
  gemm_nt(M, N, K, xv, wv, yv, false, scratch);
  if (bv)
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) yv[i * N + j] += bv[j];
  t.on_backward([=] {
    gemm_nn(M, K, N, yg, wv, xg, true);  // dx = dy W
    gemm_tn(N, K, M, yg, xv, wg, true);  // dW = dy^T x
    if (bg) detail::add_column_sums(M, N, yg, bg);
  });
  return y;
}

namespace detail {
// y (+)= a b for matmul / matmul_acc: a [M, K], b [K, N], y [M, N] already on the tape.
template <class T>
Var matmul_into(Tape<T>& t, Var a, Var b, Var y, bool accumulate) {
  const index_t M = t.rows(a), K = t.cols(a), N = t.cols(b);
  T *av = t.value(a), *bv = t.value(b), *bg = t.grad(b), *yv = t.value(y);
  if constexpr (std::is_same_v<T, float>) {
    if (M >= kPackedGemmMinRows) {
      const kernels::KernelTable& kt = kernels::kernels();
      if (t.caches_packed(b))  // a parameter's per-step pack; any other b (a generated factor) read in place
        kt.gemm(M, av, K, t.packed_weight(b, nullptr, true), yv, N, kernels::Activation::none, accumulate);
      else
        kt.gemm_b(M, av, K, 1, N, K, bv, N, yv, N, accumulate);
      Tape<T>* tp = &t;
      t.on_backward([=] {
        const T* yg = tp->grad_to_read(y);
        const auto [ag, fresh] = tp->grad_to_write(a);  // fresh: da is written, not added (a +0 chain)
        kt.gemm(M, yg, N, tp->packed_weight(b, nullptr, false), ag, K, kernels::Activation::none, !fresh);  // da = dy b^T
        // db = a^T dy: a read transposed, dy in place. A narrow b (a rank-8 factor, K rows of N <= 8)
        // runs as db^T = dy^T a, whose right operand is a's whole rows instead of 8 floats gathered
        // from each of M rows per tile (36 against ~80 GFLOP/s); the same sums, added transposed.
        if (N <= 8 && K >= 32) {
          float* dbt = tp->temp(N * K, 0);
          kt.gemm_b(N, yg, 1, N, K, M, av, K, dbt, K, false);
          for (index_t k = 0; k < K; ++k)
            for (index_t n = 0; n < N; ++n) bg[k * N + n] += dbt[n * K + k];
        } else {
          kt.gemm_b(K, av, 1, K, N, M, yg, N, bg, N, true);
        }
      });
      return y;
    }
  }
  gemm_nn(M, N, K, av, bv, yv, accumulate);
  T *ag = t.grad(a), *yg = t.grad(y);
  T* scratch = t.scratch_uninit(K * N);
  t.on_backward([=] {
    gemm_nt(M, K, N, yg, bv, ag, true, scratch);  // da = dy b^T
    gemm_tn(K, N, M, av, yg, bg, true);           // db = a^T dy
  });
  return y;
}
}  // namespace detail

// y = a b: a [M, K], b [K, N].
template <class T>
Var matmul(Tape<T>& t, Var a, Var b) {
  const index_t M = t.rows(a), K = t.cols(a), N = t.cols(b);
  FOFA_CHECK(t.rows(b) == K, "matmul: [", M, ", ", K, "] x [", t.rows(b), ", ", N, "]");
  return detail::matmul_into(t, a, b, t.make_output(M, N), false);
}

// y += a b in place: a [M, K], b [K, N], y [M, N] an existing node that no op has read yet (so its
// consumers see the sum, and its gradient is the sum's). Saves the product node and the add (the
// mapper's low-rank correction x W^T + (x U) V lands in the linear's output).
template <class T>
Var matmul_acc(Tape<T>& t, Var a, Var b, Var y) {
  const index_t M = t.rows(a), K = t.cols(a), N = t.cols(b);
  FOFA_CHECK(t.rows(b) == K && t.rows(y) == M && t.cols(y) == N, "matmul_acc: [", M, ", ", K, "] x [", t.rows(b), ", ",
             N, "] into [", t.rows(y), ", ", t.cols(y), "]");
  return detail::matmul_into(t, a, b, y, true);
}

// ---- normalisation and attention -------------------------------------------------------

namespace detail {
// sum_c f(c) over [0, n) in 8 interleaved partial sums (vectorisable without reassociation flags).
// always_inline: see BestIsa.
template <class T, class F>
[[gnu::always_inline]] inline T sum8(index_t n, F f) {
  T acc[8] = {};
  index_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int l = 0; l < 8; ++l) acc[l] += f(c + l);
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; c < n; ++c) s += f(c);
  return s;
}
template <class T>
inline void layernorm_forward(index_t R, index_t C, const T* __restrict xv, const T* __restrict gv,
                              const T* __restrict bv, T eps, T* __restrict xhat, T* __restrict rstd, T* __restrict yv) {
  for (index_t r = 0; r < R; ++r) {
    const T* xr = xv + r * C;
    const T mean = sum8<T>(C, [&](index_t c) { return xr[c]; }) / static_cast<T>(C);
    const T var = sum8<T>(C, [&](index_t c) { return (xr[c] - mean) * (xr[c] - mean); }) / static_cast<T>(C);
    const T rs = T(1) / std::sqrt(var + eps);
    rstd[r] = rs;
    T* xh = xhat + r * C;
    T* y = yv + r * C;
    for (index_t c = 0; c < C; ++c) {
      xh[c] = (xr[c] - mean) * rs;
      y[c] = xh[c] * gv[c] + bv[c];
    }
  }
}
// Fresh: xg holds no gradient yet (Tape::grad_to_write) and is written as 0 + contribution.
template <class T, bool Fresh = false>
inline void layernorm_backward(index_t R, index_t C, const T* __restrict yg, const T* __restrict xhat,
                               const T* __restrict rstd, const T* __restrict gv, T* __restrict xg, T* __restrict gg,
                               T* __restrict bg) {
  for (index_t r = 0; r < R; ++r) {
    const T* g = yg + r * C;
    const T* xh = xhat + r * C;
    for (index_t c = 0; c < C; ++c) {
      gg[c] += g[c] * xh[c];
      bg[c] += g[c];
    }
    const T mean_gg = sum8<T>(C, [&](index_t c) { return g[c] * gv[c]; }) / static_cast<T>(C);
    const T mean_ggx = sum8<T>(C, [&](index_t c) { return g[c] * gv[c] * xh[c]; }) / static_cast<T>(C);
    T* gx = xg + r * C;
    for (index_t c = 0; c < C; ++c) gx[c] = (Fresh ? T(0) : gx[c]) + rstd[r] * (g[c] * gv[c] - mean_gg - xh[c] * mean_ggx);
  }
}
inline void layernorm_forward_f32(index_t R, index_t C, const float* xv, const float* gv, const float* bv, float eps,
                                  float* xhat, float* rstd, float* yv) {
  BestIsa<&layernorm_forward<float>>::run(R, C, xv, gv, bv, eps, xhat, rstd, yv);
}
inline void layernorm_backward_f32(index_t R, index_t C, const float* yg, const float* xhat, const float* rstd,
                                   const float* gv, float* xg, float* gg, float* bg, bool fresh = false) {
  if (fresh)
    BestIsa<&layernorm_backward<float, true>>::run(R, C, yg, xhat, rstd, gv, xg, gg, bg);
  else
    BestIsa<&layernorm_backward<float>>::run(R, C, yg, xhat, rstd, gv, xg, gg, bg);
}
}  // namespace detail

// Row LayerNorm with biased variance: y = (x - mean) / sqrt(var + eps) * gamma + beta.
template <class T>
Var layernorm(Tape<T>& t, Var x, Var gamma, Var beta, T eps) {
  const index_t R = t.rows(x), C = t.cols(x);
  FOFA_CHECK(t.rows(gamma) * t.cols(gamma) == C && t.rows(beta) * t.cols(beta) == C, "layernorm: gamma/beta size ",
             t.rows(gamma) * t.cols(gamma), " for rows of ", C);
  Var y = t.make_output(R, C);
  T *xv = t.value(x), *gv = t.value(gamma), *gg = t.grad(gamma), *bv = t.value(beta), *bg = t.grad(beta),
    *yv = t.value(y);
  T* xhat = t.scratch_uninit(R * C);
  T* rstd = t.scratch_uninit(R);
  if constexpr (std::is_same_v<T, float>)
    detail::layernorm_forward_f32(R, C, xv, gv, bv, eps, xhat, rstd, yv);
  else
    detail::layernorm_forward<T>(R, C, xv, gv, bv, eps, xhat, rstd, yv);
  Tape<T>* tp = &t;
  t.on_backward([=] {
    const T* yg = tp->grad_to_read(y);
    const auto [xg, fresh] = tp->grad_to_write(x);
    if constexpr (std::is_same_v<T, float>)
      detail::layernorm_backward_f32(R, C, yg, xhat, rstd, gv, xg, gg, bg, fresh);
    else if (fresh)
      detail::layernorm_backward<T, true>(R, C, yg, xhat, rstd, gv, xg, gg, bg);
    else
      detail::layernorm_backward<T>(R, C, yg, xhat, rstd, gv, xg, gg, bg);
  });
  return y;
}

namespace detail {
// The causal attention's element-wise passes over [R, R] row-major squares (lower triangle), in
// BestIsa versions: only multiplies and a subtraction, nothing a wider ISA could contract, so
// every version gives the plain loops' bits.
inline void scale_lower_loop(index_t R, float* p, float s) {
  for (index_t i = 0; i < R; ++i)
    for (index_t j = 0; j <= i; ++j) p[i * R + j] *= s;
}
inline void scale_lower(index_t R, float* p, float s) { BestIsa<&scale_lower_loop>::run(R, p, s); }
// ds[i, j] = p[i, j] (ds[i, j] - dots[i]) sc for j <= i, 0 above the diagonal.
inline void softmax_grad_rows_loop(index_t R, const float* p, const float* dots, float sc, float* ds) {
  for (index_t i = 0; i < R; ++i) {
    const float dot = dots[i];
    for (index_t j = 0; j <= i; ++j) ds[i * R + j] = p[i * R + j] * (ds[i * R + j] - dot) * sc;
    for (index_t j = i + 1; j < R; ++j) ds[i * R + j] = 0.0f;
  }
}
inline void softmax_grad_rows(index_t R, const float* p, const float* dots, float sc, float* ds) {
  BestIsa<&softmax_grad_rows_loop>::run(R, p, dots, sc, ds);
}
}  // namespace detail

// Causal multi-head attention over one sequence: q [Tq, D], k and v [Tq, D] (same rows), head h
// uses columns h*D/H .. (h+1)*D/H - 1; scores scaled by 1/sqrt(D/H); output [Tq, D] (before out-proj).
template <class T>
Var causal_attention(Tape<T>& t, Var q, Var k, Var v, index_t heads) {
  const index_t R = t.rows(q), D = t.cols(q);
  detail::check_same(t, q, k, "attention q/k");
  detail::check_same(t, q, v, "attention q/v");
  FOFA_CHECK(heads >= 1 && D % heads == 0, "attention: width ", D, " not divisible by ", heads, " heads");
  const index_t dh = D / heads;
  const T sc = T(1) / std::sqrt(static_cast<T>(dh));
  if constexpr (std::is_same_v<T, float>) {
    // Per head as packed GEMMs: S = Q K^T, P = softmax(S * sc), Y = P V; backward dP = dY V^T,
    // dS = P (dP - rowsum(P dP)) sc, dV += P^T dY, dQ += dS K, dK += dS^T Q. P and dS are lower
    // triangular, so every product runs per block of kBlock rows on the part that can be nonzero
    // (gemm_range): query rows [i0, i1) see keys [0, i1), key rows [j0, j1) get gradient from query
    // rows [j0, R). Bit-exact to the full squares (the skipped terms are exact zeros), about 40%
    // fewer FLOPs at 50 rows.
    constexpr index_t kBlock = 16;
    auto blocks = [R](auto&& f) {  // f(r0, r1) for each block [r0, r1) of kBlock rows
      for (index_t r0 = 0; r0 < R; r0 += kBlock) f(r0, std::min(r0 + kBlock, R));
    };
    Var y = t.make_output(R, D);
    float *qv = t.value(q), *kv = t.value(k), *vv = t.value(v), *yv = t.value(y);
    float* P = t.scratch_uninit(heads * R * R);
    const kernels::KernelTable& kt = kernels::kernels();
    const auto none = kernels::Activation::none;
    kernels::PackedMatrix& pk = t.packed_scratch();
    for (index_t h = 0; h < heads; ++h) {
      const index_t o = h * dh;
      float* Ph = P + h * R * R;
      kt.pack_linear(R, dh, kv + o, D, nullptr, pk);  // S = Q K^T, columns up to the block's last row
      blocks([&](index_t i0, index_t i1) {
        kt.gemm_range(i1 - i0, qv + i0 * D + o, D, 1, pk, 0, dh, i1, Ph + i0 * R, R, none, false);
      });
      detail::scale_lower(R, Ph, sc);
      kt.softmax_rows(R, R, Ph, R, true, 0, 0);  // writes the upper triangle as zeros
      blocks([&](index_t i0, index_t i1) {  // Y = P V, V read in place
        kt.gemm_b(i1 - i0, Ph + i0 * R, R, 1, dh, i1, vv + o, D, yv + i0 * D + o, D, false);
      });
    }
    Tape<T>* tp = &t;
    t.on_backward([=] {
      const float* yg = tp->grad_to_read(y);
      // Fresh gradients are written, not added (GEMM chains from +0), by each head's columns once.
      // Asked in the order of the first writes (dV, dQ, dK) in case q, k, v share a node.
      // (Plain variables: Clang 14 cannot capture structured bindings in the lambdas below.)
      const auto wv = tp->grad_to_write(v), wq = tp->grad_to_write(q), wk = tp->grad_to_write(k);
      float *vg = wv.grad, *qg = wq.grad, *kg = wk.grad;
      const bool fv = wv.overwrite, fq = wq.overwrite, fk = wk.overwrite;
      kernels::PackedMatrix& pb = tp->packed_scratch();
      float* dS = tp->temp(R * R, 1);
      for (index_t h = 0; h < heads; ++h) {
        const index_t o = h * dh;
        const float* Ph = P + h * R * R;
        kt.pack_linear(R, dh, vv + o, D, nullptr, pb);  // dP = dY V^T (lower part)
        blocks([&](index_t i0, index_t i1) {
          kt.gemm_range(i1 - i0, yg + i0 * D + o, D, 1, pb, 0, dh, i1, dS + i0 * R, R, none, false);
        });
        // dS = P (dP - rowsum(P dP)) sc: the row sums here, in order (a wider ISA's version would
        // contract them into FMAs), the rest in detail::softmax_grad_rows.
        float* dots = tp->temp(R, 2);
        for (index_t i = 0; i < R; ++i) {
          const float *p = Ph + i * R, *ds = dS + i * R;
          float dot = 0;
          for (index_t j = 0; j <= i; ++j) dot += p[j] * ds[j];
          dots[i] = dot;
        }
        detail::softmax_grad_rows(R, Ph, dots, sc, dS);
        // Key rows [j0, j1) take gradient from query rows [j0, R): x is P^T / dS^T, k from j0. The
        // right operands (dY, K, Q) are read in place.
        blocks([&](index_t j0, index_t j1) {  // dV += P^T dY
          kt.gemm_b(j1 - j0, Ph + j0 * R + j0, 1, R, dh, R - j0, yg + j0 * D + o, D, vg + j0 * D + o, D, !fv);
        });
        blocks([&](index_t i0, index_t i1) {  // dQ += dS K
          kt.gemm_b(i1 - i0, dS + i0 * R, R, 1, dh, i1, kv + o, D, qg + i0 * D + o, D, !fq);
        });
        blocks([&](index_t j0, index_t j1) {  // dK += dS^T Q
          kt.gemm_b(j1 - j0, dS + j0 * R + j0, 1, R, dh, R - j0, qv + j0 * D + o, D, kg + j0 * D + o, D, !fk);
        });
      }
    });
    return y;
  }
  Var y = t.make(R, D);
  T *qv = t.value(q), *kv = t.value(k), *vv = t.value(v), *qg = t.grad(q), *kg = t.grad(k), *vg = t.grad(v);
  T *yv = t.value(y), *yg = t.grad(y);
  T* P = t.scratch(heads * R * R);  // softmax probabilities, [H, R, R] lower triangle
  for (index_t h = 0; h < heads; ++h) {
    const index_t o = h * dh;
    for (index_t i = 0; i < R; ++i) {
      T* p = P + (h * R + i) * R;
      T mx = -INFINITY;
      for (index_t j = 0; j <= i; ++j) {
        T s = 0;
        for (index_t c = 0; c < dh; ++c) s += qv[i * D + o + c] * kv[j * D + o + c];
        p[j] = s * sc;
        mx = std::max(mx, p[j]);
      }
      T sum = 0;
      for (index_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
      for (index_t j = 0; j <= i; ++j) {
        p[j] /= sum;
        for (index_t c = 0; c < dh; ++c) yv[i * D + o + c] += p[j] * vv[j * D + o + c];
      }
    }
  }
  T* dp = t.scratch(R);
  t.on_backward([=] {
    for (index_t h = 0; h < heads; ++h) {
      const index_t o = h * dh;
      for (index_t i = 0; i < R; ++i) {
        const T* p = P + (h * R + i) * R;
        const T* g = yg + i * D + o;
        T dot = 0;
        for (index_t j = 0; j <= i; ++j) {
          T s = 0;
          for (index_t c = 0; c < dh; ++c) {
            s += g[c] * vv[j * D + o + c];
            vg[j * D + o + c] += p[j] * g[c];
          }
          dp[j] = s;
          dot += p[j] * s;
        }
        for (index_t j = 0; j <= i; ++j) {
          const T ds = p[j] * (dp[j] - dot) * sc;
          for (index_t c = 0; c < dh; ++c) {
            qg[i * D + o + c] += ds * kv[j * D + o + c];
            kg[j * D + o + c] += ds * qv[i * D + o + c];
          }
        }
      }
    }
  });
  return y;
}

// ---- embeddings, scores, losses --------------------------------------------------------

// y[r, :] = scale * table[ids[r], :] for a row-sparse parameter; gradient rows are recorded as touched.
template <class T>
Var gather(Tape<T>& t, int param_index, std::span<const std::int32_t> ids, T scale_by = T(1)) {
  auto& p = t.params()[param_index];
  const index_t V = p.rows(), C = p.cols();
  const auto R = static_cast<index_t>(ids.size());
  Var y = t.make_output(R, C);
  T* yv = t.value(y);
  for (index_t r = 0; r < R; ++r) {
    const index_t id = ids[static_cast<std::size_t>(r)];
    FOFA_CHECK(id >= 0 && id < V, "gather from ", p.name, ": id ", id, " outside [0, ", V, ")");
  }
  // Rows of a large table (the item embeddings) are random reads that usually miss the caches: the
  // row kGatherAhead places ahead is requested while this one is copied (hints only).
  const T* table = p.value.data();
  for (index_t r = 0; r < R; ++r) {
    if (r + detail::kGatherAhead < R) detail::prefetch_row(table + ids[static_cast<std::size_t>(r + detail::kGatherAhead)] * C, C);
    const T* src = table + ids[static_cast<std::size_t>(r)] * C;
    for (index_t c = 0; c < C; ++c) yv[r * C + c] = scale_by * src[c];
  }
  std::vector<std::int32_t> rows(ids.begin(), ids.end());
  T* yg = t.grad(y);
  GradSet<T>* gs = &t.grads();
  t.on_backward([=, rows = std::move(rows)] {
    T* g = gs->data(param_index);
    const bool sparse = gs->sparse(param_index);
    for (index_t r = 0; r < R; ++r) {
      const index_t id = rows[static_cast<std::size_t>(r)];
      if (sparse) gs->touch(param_index, id);
      if (scale_by == T(1))  // a row of adds: any ISA's version gives the plain loop's bits
        detail::add_column_sums(1, C, yg + r * C, g + id * C);
      else  // scale * g + table would contract into an FMA in a wider ISA's version: kept plain
        for (index_t c = 0; c < C; ++c) g[id * C + c] += scale_by * yg[r * C + c];
    }
  });
  return y;
}

// y[r] = <a[r, :], b[r, :]>, [R, 1] (logits of (state, item) pairs).
template <class T>
Var rowwise_dot(Tape<T>& t, Var a, Var b) {
  detail::check_same(t, a, b, "rowwise_dot");
  const index_t R = t.rows(a), C = t.cols(a);
  Var y = t.make_output(R, 1);
  T *av = t.value(a), *bv = t.value(b), *ag = t.grad(a), *bg = t.grad(b), *yv = t.value(y), *yg = t.grad(y);
  for (index_t r = 0; r < R; ++r) {
    T s = 0;
    for (index_t c = 0; c < C; ++c) s += av[r * C + c] * bv[r * C + c];
    yv[r] = s;
  }
  t.on_backward([=] {
    for (index_t r = 0; r < R; ++r)
      for (index_t c = 0; c < C; ++c) ag[r * C + c] += yg[r] * bv[r * C + c], bg[r * C + c] += yg[r] * av[r * C + c];
  });
  return y;
}

// weight * sum_i BCE(logit_i, target), numerically stable; scalar [1, 1].
template <class T>
Var bce_with_logits_sum(Tape<T>& t, Var logits, T target, T weight) {
  const index_t n = t.rows(logits) * t.cols(logits);
  Var y = t.make(1, 1);
  T *xv = t.value(logits), *xg = t.grad(logits), *yg = t.grad(y);
  T s = 0;
  for (index_t i = 0; i < n; ++i) {
    const T x = xv[i];
    s += std::max(x, T(0)) - x * target + std::log1p(std::exp(-std::abs(x)));
  }
  t.value(y)[0] = weight * s;
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) xg[i] += yg[0] * weight * (detail::sigmoid(xv[i]) - target);
  });
  return y;
}

// Straight-through Gumbel-sigmoid: forward m = [sigmoid((alpha + noise) / tau) > 0.5] (0/1),
// backward d m / d alpha := d sigmoid((alpha + noise) / tau) / d alpha. noise: logistic samples.
// hard = false returns the soft relaxation itself (same backward), for finite-difference checks.
template <class T>
Var gumbel_sigmoid_st(Tape<T>& t, Var alpha, std::span<const T> noise, T tau, bool hard = true) {
  const index_t n = t.rows(alpha) * t.cols(alpha);
  FOFA_CHECK(static_cast<index_t>(noise.size()) == n, "gumbel_sigmoid_st: ", noise.size(), " noise values for ", n,
             " logits");
  FOFA_CHECK(tau > T(0), "gumbel_sigmoid_st: temperature must be > 0, got ", tau);
  Var y = t.make_output(t.rows(alpha), t.cols(alpha));
  T *av = t.value(alpha), *ag = t.grad(alpha), *yv = t.value(y), *yg = t.grad(y);
  T* soft = t.scratch_uninit(n);
  for (index_t i = 0; i < n; ++i) {
    soft[i] = detail::sigmoid((av[i] + noise[static_cast<std::size_t>(i)]) / tau);
    yv[i] = hard ? (soft[i] > T(0.5) ? T(1) : T(0)) : soft[i];
  }
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) ag[i] += yg[i] * soft[i] * (T(1) - soft[i]) / tau;
  });
  return y;
}

// sum_k w_k a_k for a row vector a and constant weights w; scalar [1, 1].
template <class T>
Var weighted_sum(Tape<T>& t, Var a, std::span<const T> w) {
  const index_t n = t.rows(a) * t.cols(a);
  FOFA_CHECK(static_cast<index_t>(w.size()) == n, "weighted_sum: ", w.size(), " weights for ", n, " values");
  Var y = t.make(1, 1);
  T *av = t.value(a), *ag = t.grad(a), *yg = t.grad(y);
  std::vector<T> ws(w.begin(), w.end());
  T s = 0;
  for (index_t i = 0; i < n; ++i) s += ws[static_cast<std::size_t>(i)] * av[i];
  t.value(y)[0] = s;
  t.on_backward([=, ws = std::move(ws)] {
    for (index_t i = 0; i < n; ++i) ag[i] += yg[0] * ws[static_cast<std::size_t>(i)];
  });
  return y;
}

// max(a - shift, 0) elementwise (the budget hinge).
template <class T>
Var relu_shifted(Tape<T>& t, Var a, T shift) {
  const index_t n = t.rows(a) * t.cols(a);
  Var y = t.make_output(t.rows(a), t.cols(a));
  T *av = t.value(a), *ag = t.grad(a), *yv = t.value(y), *yg = t.grad(y);
  for (index_t i = 0; i < n; ++i) yv[i] = std::max(av[i] - shift, T(0));
  t.on_backward([=] {
    for (index_t i = 0; i < n; ++i) ag[i] += av[i] - shift > T(0) ? yg[i] : T(0);
  });
  return y;
}

}  // namespace fofa::autograd
