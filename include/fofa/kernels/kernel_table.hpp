// fofa/kernels/kernel_table.hpp — the contract every kernel family (scalar, AVX2, AVX-512,
// NEON) fulfils, as a table of function pointers chosen once at run time.
//
// Layers call kernels only through a KernelTable, so the ISA is picked in one place:
//   - header-only use (no FOFA_DISPATCH): kernels() is the table for the ISA the including
//     translation unit is compiled for (xsimd's best compiled arch, or scalar without xsimd);
//   - dispatch builds (FOFA_DISPATCH, CMake target fofa::fofa with FOFA_DISPATCH=ON):
//     per-ISA translation units each instantiate one table and kernels() picks the best
//     one the CPU supports. The environment variable FOFA_ISA=scalar|avx2|avx512|neon
//     forces a (compiled and supported) table, for benchmarks and tests.
//
// All matrices are row-major with an explicit leading dimension (elements between rows).
// Weights follow nn.Linear: W is [N, K] (out, in) and y = act(x W^T + b) [+ y].
#pragma once

#include <span>

#include "fofa/core/aligned.hpp"

namespace fofa::kernels {

enum class Activation { none, relu, gelu };        // gelu is the erf form
enum class UnaryOp { relu, gelu, tanh, sigmoid };

// A GEMM weight operand packed once into the layout of one kernel family, bias folded in.
// Only the table that packed it may consume it (checked through `family`).
struct PackedMatrix {
  index_t K = 0, N = 0;          // y[M, N] = x[M, K] * W^T
  const void* family = nullptr;  // the KernelTable that packed it
  AlignedBuffer<float> data;     // panels + bias, layout private to the family
};

// Causal multi-head self-attention over one sequence, rows = positions.
// Query row i (absolute position q_offset + i) attends keys key_begin .. q_offset + i.
// Rows of a query with no visible key (q_offset + i < key_begin) are written as zeros.
struct AttentionArgs {
  index_t q_rows = 0;      // new query rows
  index_t q_offset = 0;    // absolute position of query row 0 (cached rows before it)
  index_t key_begin = 0;   // keys before this position are padding
  index_t heads = 1, head_dim = 0;
  const float* q = nullptr; index_t ldq = 0;  // [q_rows, heads*head_dim]
  const float* k = nullptr; index_t ldk = 0;  // [q_offset+q_rows, heads*head_dim]
  const float* v = nullptr; index_t ldv = 0;  // [q_offset+q_rows, heads*head_dim]
  float* out = nullptr; index_t ldo = 0;      // [q_rows, heads*head_dim]
  float scale = 1.0f;                         // usually 1/sqrt(head_dim)
  float* scratch = nullptr;                   // attention_scratch_floats(...) floats, aligned
};
// Head widths up to this use the fast attention path (keys transposed into scratch);
// wider heads are still correct but use a slower per-key path.
inline constexpr index_t kAttentionFastHeadDim = 128;
// Rows of scores the attention kernel keeps in scratch at once.
inline constexpr index_t kAttentionRowBlock = 16;
// Scratch floats the attention kernel needs for keys up to `max_keys` (any head_dim).
inline index_t attention_scratch_floats(index_t max_keys) {
  return aligned_count<float>(max_keys) * (kAttentionFastHeadDim + kAttentionRowBlock) + 64;
}

// One Adam / AdamW step over contiguous elements (the per-step constants of
// autograd::Adam::begin_step, in float). Per element, in this order:
//   g' = g * grad_scale; decoupled ? p *= 1 - lr * weight_decay : g' += weight_decay * p
//     (neither when weight_decay == 0);
//   m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g' g';
//   p -= step_size * m / (sqrt(v) / sqrt_bc2 + eps)
struct AdamArgs {
  float grad_scale = 1.0f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float step_size = 0.0f;  // lr / (1 - beta1^t)
  float sqrt_bc2 = 1.0f;   // sqrt(1 - beta2^t)
  float lr = 0.0f, weight_decay = 0.0f;
  bool decoupled = false;  // true: AdamW
};

struct KernelTable {
  const char* name;  // "scalar", "avx2", "avx512", "neon"

  // Packs W (nn.Linear layout [N, K], row stride ldw) and optional bias[N] (nullptr = 0).
  void (*pack_linear)(index_t N, index_t K, const float* w, index_t ldw, const float* bias, PackedMatrix& out);
  // y[M,N] = act(x[M,K] W^T + b), or y += act(...) when accumulate. Any M, N, K >= 0.
  void (*gemm)(index_t M, const float* x, index_t ldx, const PackedMatrix& w, float* y, index_t ldy,
               Activation act, bool accumulate);
  // One row: y[N] = act(x[K] W^T + b) (+ y). Same packed operand as gemm.
  void (*gemv)(const float* x, const PackedMatrix& w, float* y, Activation act, bool accumulate);

  // y = (x - mean) / sqrt(var + eps) * gamma + beta per row of length d (biased variance).
  void (*layernorm)(index_t rows, index_t d, const float* x, index_t ldx, const float* gamma, const float* beta,
                    float eps, float* y, index_t ldy);
  // In-place row softmax of x[rows, cols]. Row r keeps columns [col_begin, col_end(r)) with
  // col_end(r) = causal ? min(cols, causal_offset + r + 1) : cols; other columns become 0
  // (a row with no kept column becomes all zeros).
  void (*softmax_rows)(index_t rows, index_t cols, float* x, index_t ldx, bool causal, index_t causal_offset,
                       index_t col_begin);
  // y[i] = op(x[i]); x == y allowed.
  void (*unary)(UnaryOp op, index_t n, const float* x, float* y);
  // y[i] = a[i] + s * b[i]; y may alias a or b.
  void (*add_scaled)(index_t n, const float* a, float s, const float* b, float* y);
  // y[i] = a[i] * b[i]; y may alias a or b.
  void (*mul)(index_t n, const float* a, const float* b, float* y);
  // out[r, :] = scale * table[ids[r], :] + (add ? add[r, :] : 0), rows of width d.
  void (*gather_rows)(index_t rows, index_t d, const float* table, index_t ldt, const std::int32_t* ids,
                      float scale, const float* add, index_t lda, float* out, index_t ldo);
  // Dot products of one vector with `rows` rows: out[r] = <u, m[r, :]>.
  void (*dot_rows)(index_t rows, index_t d, const float* u, const float* m, index_t ldm, float* out);
  // Fused causal multi-head attention (see AttentionArgs), sequences up to 512 keys.
  void (*attention)(const AttentionArgs& a);
  // pack_linear from the transposed weight: wt is W^T, [K, N] row-major (row stride ldwt), i.e.
  // W[n, k] = wt[k * ldwt + n]. The same packed layout as pack_linear of W, so gemm with it is
  // bit-exact to reference::linear with W (training uses it for dy W and a^T b products).
  void (*pack_linear_t)(index_t N, index_t K, const float* wt, index_t ldwt, const float* bias, PackedMatrix& out);
  // gemm with the left operand given transposed: x[m, k] = xt[k * ldxt + m] (xt is x^T, [K, M]
  // row-major, ldxt >= M). Same summation order as gemm, so bit-exact to reference::linear of x
  // (training uses it for dy^T x and a^T dy without materialising the transpose).
  void (*gemm_at)(index_t M, const float* xt, index_t ldxt, const PackedMatrix& w, float* y, index_t ldy,
                  Activation act, bool accumulate);
  // Adam update of n contiguous parameters p with gradients g and moments m, v (see AdamArgs).
  // Not bit-exact across families: SIMD families may contract the moment updates into FMAs.
  void (*adam_update)(index_t n, float* p, const float* g, float* m, float* v, const AdamArgs& a);
  // Part of a gemm: the first n_end columns, the sum over k in [k_begin, k_end) only:
  //   y[m, n] = act(bias[n] + sum_{k_begin <= k < k_end} x[m, k] W[n, k]) (+ y), n < n_end,
  // with x[m, k] = x[m * rsx + k * csx] ((ldx, 1) as gemm, (1, ldxt) as gemm_at; one stride is 1)
  // and 0 <= k_begin <= k_end <= w.K, 0 <= n_end <= w.N; columns from n_end on are not touched.
  // Same order as gemm over the range, so where x is zero outside it the result is bit-exact to
  // gemm's (training's causal attention skips the zero triangle with it).
  void (*gemm_range)(index_t M, const float* x, index_t rsx, index_t csx, const PackedMatrix& w, index_t k_begin,
                     index_t k_end, index_t n_end, float* y, index_t ldy, Activation act, bool accumulate);
  // y[M, N] = x B (+ y) with B [K, N] row-major (row stride ldb >= N) read where it lies, no pack:
  //   y[m, n] = sum_k x[m, k] b[k * ldb + n] (+ y), x[m, k] = x[m * rsx + k * csx] as gemm_range.
  // Reads b only inside its K rows of N floats. Same order as gemm with pack_linear_t(N, K, b, ldb,
  // nullptr), so bit-exact to it (training's dW = dy^T x and a^T dy products, and products with a
  // generated weight used once, skip the copy into a pack).
  void (*gemm_b)(index_t M, const float* x, index_t rsx, index_t csx, index_t N, index_t K, const float* b,
                 index_t ldb, float* y, index_t ldy, bool accumulate);
};

// One packed GEMM as gemm_observer sees it: y[M, N] from x[M, K] (x_transposed: the column
// layout of gemm_at), and the wall time it took.
struct GemmCall {
  index_t M, N, K;
  bool x_transposed;
  double seconds;
};
// Profiling hook (fofa-bench-train --gemm-profile): when set, every gemm, gemm_at and gemm_range
// of every family times itself and reports here, from the calling thread (so the observer must be
// thread-safe if kernels run on several). nullptr, the default, costs one branch per call. Change
// it only while no kernel runs.
inline void (*gemm_observer)(const GemmCall&) = nullptr;

// Header-only builds define these inline (fofa/kernels/select.hpp); dispatch builds define
// them once in src/kernels/dispatch.cpp.
#if defined(FOFA_DISPATCH)
#define FOFA_KERNELS_SELECT_API
#else
#define FOFA_KERNELS_SELECT_API inline
#endif

// The table used by layers: best for this CPU (dispatch builds) or this build (header-only).
FOFA_KERNELS_SELECT_API const KernelTable& kernels();
// The scalar reference table, always present.
FOFA_KERNELS_SELECT_API const KernelTable& scalar_kernels();
// Every table compiled into this program that the CPU can run, scalar first.
FOFA_KERNELS_SELECT_API std::span<const KernelTable* const> available_kernels();
// The table with this name, or nullptr when not compiled in / not supported by the CPU.
FOFA_KERNELS_SELECT_API const KernelTable* find_kernels(const char* name);

namespace detail {
// Allocation and the foreign-matrix error for the SIMD families. Out of line in dispatch
// builds, so the per-ISA translation units instantiate no shared non-template code.
FOFA_KERNELS_SELECT_API void resize_packed(PackedMatrix& p, index_t floats);
[[noreturn]] FOFA_KERNELS_SELECT_API void throw_foreign_matrix(const char* family);
// gemm_range's bounds outside the packed matrix.
[[noreturn]] FOFA_KERNELS_SELECT_API void throw_bad_range(index_t k_begin, index_t k_end, index_t n_end,
                                                          const PackedMatrix& w);
// Seconds on a steady clock, for gemm_observer.
FOFA_KERNELS_SELECT_API double gemm_clock();
// Runs run() timed and reports it to gemm_observer as y[M, N] from x[M, K]. Out of line, so a
// kernel's unobserved path compiles as lean as without the hook.
template <class F>
[[gnu::noinline]] void observed_gemm(index_t M, index_t N, index_t K, bool x_transposed, F&& run) {
  const double t0 = gemm_clock();
  run();
  gemm_observer(GemmCall{M, N, K, x_transposed, gemm_clock() - t0});
}
}  // namespace detail

}  // namespace fofa::kernels

#if !defined(FOFA_DISPATCH)
#include "fofa/kernels/select.hpp"
#endif
