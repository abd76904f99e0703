// fofa/kernels/simd_table.hpp — the xsimd kernel families, one per architecture.
//
// Every function here is a template on the xsimd Arch (xsimd::avx512bw, xsimd::fma3<avx2>,
// xsimd::neon64), so each ISA's instantiation is its own symbol and per-ISA translation
// units compiled with different flags never share code (see src/kernels/). `table<Arch>`
// is that family's KernelTable.
//
// GEMM: W [N, K] is packed once into column panels of NR = NVmax * W floats (W = lanes per
// vector): each panel holds K rows of NR floats (k-major) then its bias row, zero-padded
// past N. A micro-kernel keeps an MR x NR block of y in registers, starts it at the bias,
// adds x[m, k] * panel[k, :] with one FMA per vector for k ascending (the order of
// reference::linear, so the result is bit-exact before the activation), then applies the
// activation and the optional accumulate in the store. Rows are split into near-equal
// tiles of at most MRmax rows so no tail tile is tiny; column tails use a narrower panel
// and a partial store. GEMV splits k over several accumulator chains (latency-bound with
// one row), so it is not bit-exact: within a few ulp of the reference.
#pragma once

// GCC 12 reports _mm512_undefined_ps() inside its own AVX-512 intrinsics as "(may be) used
// uninitialized" (a false positive) wherever they are inlined into this file, xsimd's functions
// included; which of the two it says depends on inlining decisions. The check goes by source
// location, so the pragmas come before the includes that bring the intrinsics in.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "fofa/kernels/kernel_table.hpp"

#define FOFA_KERNELS_HAVE_SIMD 1

#if defined(__GNUC__) || defined(__clang__)
#define FOFA_KERNELS_ALWAYS_INLINE __attribute__((always_inline))
#else
#define FOFA_KERNELS_ALWAYS_INLINE
#endif

namespace fofa::kernels::simd {

template <class Arch>
using Vec = xsimd::batch<float, Arch>;

template <class Arch>
struct Traits {
  static constexpr int W = static_cast<int>(Vec<Arch>::size);
  static constexpr int regs = W == 8 ? 16 : 32;   // AVX2: 16 ymm; AVX-512 and NEON: 32
  static constexpr int nv_max = W == 8 ? 2 : 4;   // panel width NR = nv_max * W (64 / 16 / 16 floats)
  static constexpr int NR = nv_max * W;
  // Rows per micro-tile for a panel of nv vectors: accumulators + nv loads + 1 broadcast fit in registers.
  static constexpr int mr_max(int nv) { return (regs - nv - 1) / nv > 8 ? 8 : (regs - nv - 1) / nv; }
  static constexpr const char* name = W == 16 ? "avx512" : W == 8 ? "avx2" : "neon";
};

// The family's table (defined at the end); its address marks matrices this family packed.
template <class Arch>
const KernelTable* family();

// a * b + c with one rounding. xsimd 8.1's fma on plain AVX-512 batches may be mul + add.
template <class Arch>
inline Vec<Arch> fmadd(Vec<Arch> a, Vec<Arch> b, Vec<Arch> c) {
#if defined(__AVX512F__)
  if constexpr (Traits<Arch>::W == 16) return Vec<Arch>(_mm512_fmadd_ps(a, b, c));
#endif
  return xsimd::fma(a, b, c);
}

// First n (0 <= n < W) lanes from p, the others `fill`; never touches memory past p + n
// (masked loads on x86, a small copy elsewhere).
template <class Arch>
inline Vec<Arch> load_part(const float* p, index_t n, float fill = 0.0f) {
  constexpr int W = Traits<Arch>::W;
#if defined(__AVX512F__)
  if constexpr (W == 16)
    return Vec<Arch>(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << n) - 1u), p));
#endif
#if defined(__AVX2__)
  if constexpr (W == 8) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return Vec<Arch>(_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, mask), _mm256_castsi256_ps(mask)));
  }
#endif
  alignas(64) float t[W];
  for (int i = 0; i < W; ++i) t[i] = i < n ? p[i] : fill;
  return Vec<Arch>::load_aligned(t);
}
// Stores the first n (0 <= n < W) lanes of v to p.
template <class Arch>
inline void store_part(Vec<Arch> v, float* p, index_t n) {
  constexpr int W = Traits<Arch>::W;
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (W == 8) {
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), v);
    return;
  }
#endif
  alignas(64) float t[W];
  v.store_aligned(t);
  for (int i = 0; i < W; ++i)  // constant trip count: GCC 12 misreads a memcpy of n here
    if (i < n) p[i] = t[i];
}

// Largest lane (xsimd 8.1 has no horizontal max).
template <class Arch>
inline float hmax(Vec<Arch> v) {
#if defined(__AVX512F__)
  if constexpr (Traits<Arch>::W == 16) return _mm512_reduce_max_ps(v);
#endif
  alignas(64) float t[Traits<Arch>::W];
  v.store_aligned(t);
  float m = t[0];
  for (int i = 1; i < Traits<Arch>::W; ++i) m = t[i] > m ? t[i] : m;
  return m;
}

// erf(x) as an odd/even rational function on [-4, 4] (|erf| rounds to 1 outside), the
// approximation Eigen and XLA use for float: max abs error ~4e-7, no branches, about half
// the cost of xsimd::erf, which dominated GELU-fused GEMMs.
template <class Arch>
FOFA_KERNELS_ALWAYS_INLINE inline Vec<Arch> erf_rational(Vec<Arch> x) {
  using V = Vec<Arch>;
  x = xsimd::min(xsimd::max(x, V(-4.0f)), V(4.0f));
  const V x2 = x * x;
  V p = fmadd<Arch>(x2, V(-2.72614225801306e-10f), V(2.77068142495902e-08f));
  p = fmadd<Arch>(x2, p, V(-2.10102402082508e-06f));
  p = fmadd<Arch>(x2, p, V(-5.69250639462346e-05f));
  p = fmadd<Arch>(x2, p, V(-7.34990630326855e-04f));
  p = fmadd<Arch>(x2, p, V(-2.95459980854025e-03f));
  p = fmadd<Arch>(x2, p, V(-1.60960333262415e-02f));
  V q = fmadd<Arch>(x2, V(-1.45660718464996e-05f), V(-2.13374055278905e-04f));
  q = fmadd<Arch>(x2, q, V(-1.68282697438203e-03f));
  q = fmadd<Arch>(x2, q, V(-7.37332916720468e-03f));
  q = fmadd<Arch>(x2, q, V(-1.42647390514189e-02f));
  return p * x / q;
}

template <class Arch>
FOFA_KERNELS_ALWAYS_INLINE inline Vec<Arch> gelu(Vec<Arch> v) {
  using V = Vec<Arch>;
  // NaN would be clamped away by erf_rational's min/max: keep it.
  const V g = V(0.5f) * v * (V(1.0f) + erf_rational<Arch>(v * V(0.70710678118654752440f)));
  return xsimd::select(xsimd::isnan(v), v, g);
}
// x > 0 ? x : 0 like reference::relu, so NaN gives 0 on every ISA (max's NaN rule differs).
template <class Arch>
FOFA_KERNELS_ALWAYS_INLINE inline Vec<Arch> relu(Vec<Arch> v) {
  return xsimd::select(v > Vec<Arch>(0.0f), v, Vec<Arch>(0.0f));
}

// The activations are always inlined for the same reason as store_row below: a call in the
// micro-kernel's epilogue clobbers every vector register, and GCC 12 then keeps the accumulators
// in memory through the whole k loop (seen once gemm_b's instantiations grew the unit: -30%).
template <class Arch>
FOFA_KERNELS_ALWAYS_INLINE inline Vec<Arch> activate(Vec<Arch> v, Activation act) {
  if (act == Activation::relu) return relu<Arch>(v);
  if (act == Activation::gelu) return gelu<Arch>(v);
  return v;
}

// Applies act, adds the old y when accumulating, and stores n_valid columns of one row. Always
// inlined: called out of line, the micro-kernel spills its accumulators around each call (GCC 12
// stopped inlining it once the tiles were instantiated per x layout: ~5% on 64-wide GEMMs).
template <class Arch, int NV>
FOFA_KERNELS_ALWAYS_INLINE inline void store_row(const Vec<Arch>* c, float* y, index_t n_valid, Activation act, bool accumulate) {
  using V = Vec<Arch>;
  constexpr int W = Traits<Arch>::W;
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    const index_t left = n_valid - j * W;
    if (left <= 0) break;
    V v = activate<Arch>(c[j], act);
    if (left >= W) {
      if (accumulate) v = V::load_unaligned(y + j * W) + v;
      v.store_unaligned(y + j * W);
    } else {
      if (accumulate) v = load_part<Arch>(y + j * W, left) + v;
      store_part<Arch>(v, y + j * W, left);
    }
  }
}

// x operand layouts of the micro-kernel, fixed at compile time so the addressing is as cheap as
// with a single leading dimension: rows (x[i, k] = x[i * rsx + k], gemm) or cols
// (x[i, k] = x[i + k * csx], the transposed operand of gemm_at).
enum class XLayout { rows, cols };

// y[MR, n_valid] = act(bias + x[MR, K] b[K, NV*W]) (+ y); x[i, k] = x[i * rsx + k * csx]; b rows
// ldb apart; bias nullptr = 0.
template <class Arch, int MR, int NV, XLayout L>
inline void gemm_tile(index_t K, const float* x, index_t rsx, index_t csx, const float* b, index_t ldb,
                             const float* bias, float* y, index_t ldy, index_t n_valid, Activation act,
                             bool accumulate) {
  using V = Vec<Arch>;
  constexpr int W = Traits<Arch>::W;
  const index_t rs = L == XLayout::cols ? 1 : rsx, cs = L == XLayout::rows ? 1 : csx;
  // A transposed-x tile that accumulates is a weight gradient dW += dy^T x, whose y (a GradSet
  // entry, out of cache after a sample's backward) is fetched while the K loop runs rather than
  // stalling the stores after it. Only a hint: the bits do not change.
  if constexpr (L == XLayout::cols)
    if (accumulate)
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) __builtin_prefetch(y + i * ldy + j * W, 1, 3);
  V c[MR][NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    const V init = bias ? V::load_unaligned(bias + j * W) : V(0.0f);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) c[i][j] = init;
  }
  for (index_t k = 0; k < K; ++k) {
    V bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) bv[j] = V::load_unaligned(b + k * ldb + j * W);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const V a(x[i * rs + k * cs]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) c[i][j] = fmadd<Arch>(a, bv[j], c[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) store_row<Arch, NV>(c[i], y + i * ldy, n_valid, act, accumulate);
}

template <class Arch, int NV, XLayout L, int MR = 1>
inline void gemm_tile_rows(index_t mr, index_t K, const float* x, index_t rsx, index_t csx, const float* b,
                           index_t ldb, const float* bias, float* y, index_t ldy, index_t n_valid, Activation act,
                           bool accumulate) {
  if constexpr (MR <= Traits<Arch>::mr_max(NV)) {
    if (mr == MR)
      return gemm_tile<Arch, MR, NV, L>(K, x, rsx, csx, b, ldb, bias, y, ldy, n_valid, act, accumulate);
    gemm_tile_rows<Arch, NV, L, MR + 1>(mr, K, x, rsx, csx, b, ldb, bias, y, ldy, n_valid, act, accumulate);
  }
}

// All M rows against one panel of NV vectors, in near-equal tiles of at most mr_max(NV) rows.
template <class Arch, int NV, XLayout L>
inline void gemm_panel(index_t M, index_t K, const float* x, index_t rsx, index_t csx, const float* b, index_t ldb,
                       const float* bias, float* y, index_t ldy, index_t n_valid, Activation act, bool accumulate) {
  constexpr index_t mrx = Traits<Arch>::mr_max(NV);
  if (M <= 0) return;
  const index_t tiles = (M + mrx - 1) / mrx;
  const index_t base = M / tiles, extra = M % tiles;
  index_t m = 0;
  for (index_t t = 0; t < tiles; ++t) {
    const index_t mr = base + (t < extra ? 1 : 0);
    gemm_tile_rows<Arch, NV, L>(mr, K, x + m * rsx, rsx, csx, b, ldb, bias, y + m * ldy, ldy, n_valid, act,
                                accumulate);
    m += mr;
  }
}

template <class Arch, XLayout L, int NV = 1>
inline void gemm_panel_nv_layout(int nv, index_t M, index_t K, const float* x, index_t rsx, index_t csx,
                                 const float* b, index_t ldb, const float* bias, float* y, index_t ldy,
                                 index_t n_valid, Activation act, bool accumulate) {
  if constexpr (NV <= Traits<Arch>::nv_max) {
    if (nv == NV) return gemm_panel<Arch, NV, L>(M, K, x, rsx, csx, b, ldb, bias, y, ldy, n_valid, act, accumulate);
    gemm_panel_nv_layout<Arch, L, NV + 1>(nv, M, K, x, rsx, csx, b, ldb, bias, y, ldy, n_valid, act, accumulate);
  }
}

// y[M, n_valid] = act(bias + x[M, K] b[K, nv*W]) (+ y) for one panel of nv vectors, with
// x[m, k] = x[m * rsx + k * csx]: (ldx, 1) for a row-major x, (1, ldxt) for x given transposed
// (one of the two strides is always 1). The layout is chosen here, once, so every micro-tile is
// compiled for its strides.
template <class Arch>
inline void gemm_panel_nv(int nv, index_t M, index_t K, const float* x, index_t rsx, index_t csx, const float* b,
                          index_t ldb, const float* bias, float* y, index_t ldy, index_t n_valid, Activation act,
                          bool accumulate) {
  if (csx == 1)
    gemm_panel_nv_layout<Arch, XLayout::rows>(nv, M, K, x, rsx, 1, b, ldb, bias, y, ldy, n_valid, act, accumulate);
  else
    gemm_panel_nv_layout<Arch, XLayout::cols>(nv, M, K, x, 1, csx, b, ldb, bias, y, ldy, n_valid, act, accumulate);
}

// The half-width vector of a family (void: none). On AVX-512 a panel of at most 8 columns (the
// mapper's rank-8 factors) would leave half of every FMA's lanes idle; 8-lane AVX2 vectors run the
// same FMA chain per element, so the result is the same to the bit, in half the vector work
// (gemm_range_panels). pack_linear transposes the rows a 16 x 16 block leaves in 8 x 8 blocks.
template <class Arch>
struct HalfWidth {
  using type = void;
};
#if XSIMD_WITH_AVX512BW && XSIMD_WITH_FMA3_AVX2
template <>
struct HalfWidth<xsimd::avx512bw> {
  using type = xsimd::fma3<xsimd::avx2>;
};
#endif

// Whether transpose_block has a version for this family (x86; NEON packs element by element).
template <class Arch>
inline constexpr bool has_transpose_block =
#if defined(__AVX512F__)
    Traits<Arch>::W == 16 ||
#endif
#if defined(__AVX2__)
    Traits<Arch>::W == 8 ||
#endif
    false;

// dst[k * ldd + i] = src[i * lds + k] for a W x W block, in registers. Pure data movement, so the
// packed bits are the same as the element-by-element copy's.
template <class Arch>
FOFA_KERNELS_ALWAYS_INLINE inline void transpose_block(const float* src, index_t lds, float* dst, index_t ldd) {
#if defined(__AVX512F__)
  if constexpr (Traits<Arch>::W == 16) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; ++i) {  // per 128-bit lane: rows 2i, 2i+1 interleaved
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; ++g) {  // r[4g + c], lane l: rows 4g..4g+3 of column 4l + c
      r[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
      r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {  // gather lane l of r[c], r[4 + c], r[8 + c], r[12 + c]: column 4l + c
      const __m512 a = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), b = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
      const __m512 e = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88), f = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
      _mm512_storeu_ps(dst + c * ldd, _mm512_shuffle_f32x4(a, e, 0x88));
      _mm512_storeu_ps(dst + (4 + c) * ldd, _mm512_shuffle_f32x4(b, f, 0x88));
      _mm512_storeu_ps(dst + (8 + c) * ldd, _mm512_shuffle_f32x4(a, e, 0xDD));
      _mm512_storeu_ps(dst + (12 + c) * ldd, _mm512_shuffle_f32x4(b, f, 0xDD));
    }
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (Traits<Arch>::W == 8) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 2; ++g) {  // r[4g + c], lane l: rows 4g..4g+3 of column 4l + c
      r[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      r[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
      r[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      r[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {
      _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
      _mm256_storeu_ps(dst + (4 + c) * ldd, _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
    }
    return;
  }
#endif
  (void)src, (void)lds, (void)dst, (void)ldd;
}

template <class Arch>
inline void pack_linear(index_t N, index_t K, const float* w, index_t ldw, const float* bias, PackedMatrix& out) {
  constexpr index_t NR = Traits<Arch>::NR, W = Traits<Arch>::W;
  const index_t panels = (N + NR - 1) / NR;
  detail::resize_packed(out, panels * (K + 1) * NR);
  for (index_t p = 0; p < panels; ++p) {
    const index_t n0 = p * NR, nr = N - n0 < NR ? N - n0 : NR;
    const index_t width = (nr + W - 1) / W * W;
    float* dst = out.data.data() + p * (K + 1) * NR;
    if (nr < width)  // zero padding: the last vector of every row, before the values that share it
      for (index_t k = 0; k < K; ++k) Vec<Arch>(0.0f).store_unaligned(dst + k * width + width - W);
    // Whole W x W blocks in registers, then (AVX-512) whole 8 x 8 blocks of what they leave (narrow
    // panels, K = 8 factors): together rows [0, jh) x columns [0, kh). The rest element by element.
    index_t jw = 0, kw = 0, jh = 0, kh = 0;
    if constexpr (has_transpose_block<Arch>) {
      jw = jh = nr / W * W, kw = kh = K / W * W;
      for (index_t j = 0; j < jw; j += W)
        for (index_t k = 0; k < kw; k += W) transpose_block<Arch>(w + (n0 + j) * ldw + k, ldw, dst + k * width + j, width);
    }
    using Half = typename HalfWidth<Arch>::type;
    if constexpr (!std::is_void_v<Half>) {
      if constexpr (has_transpose_block<Half>) {
        constexpr index_t H = Traits<Half>::W;
        jh = nr / H * H, kh = K / H * H;
        for (index_t j = 0; j < jh; j += H)
          for (index_t k = j < jw ? kw : 0; k < kh; k += H)
            transpose_block<Half>(w + (n0 + j) * ldw + k, ldw, dst + k * width + j, width);
      }
    }
    for (index_t k = 0; k < K; ++k)
      for (index_t j = k < kh ? jh : 0; j < nr; ++j) dst[k * width + j] = w[(n0 + j) * ldw + k];
    for (index_t j = 0; j < width; ++j) dst[K * width + j] = (j < nr && bias) ? bias[n0 + j] : 0.0f;
  }
  out.K = K;
  out.N = N;
  out.family = family<Arch>();
}

// The same layout from W^T [K, N] (row stride ldwt): each panel row is a contiguous copy.
template <class Arch>
inline void pack_linear_t(index_t N, index_t K, const float* wt, index_t ldwt, const float* bias, PackedMatrix& out) {
  constexpr index_t NR = Traits<Arch>::NR, W = Traits<Arch>::W;
  const index_t panels = (N + NR - 1) / NR;
  detail::resize_packed(out, panels * (K + 1) * NR);
  for (index_t p = 0; p < panels; ++p) {
    const index_t n0 = p * NR, nr = N - n0 < NR ? N - n0 : NR;
    const index_t width = (nr + W - 1) / W * W;
    float* dst = out.data.data() + p * (K + 1) * NR;
    for (index_t k = 0; k < K; ++k) {
      const float* src = wt + k * ldwt + n0;
      float* d = dst + k * width;
      std::memcpy(d, src, static_cast<std::size_t>(nr) * sizeof(float));
      for (index_t j = nr; j < width; ++j) d[j] = 0.0f;
    }
    for (index_t j = 0; j < width; ++j) dst[K * width + j] = (j < nr && bias) ? bias[n0 + j] : 0.0f;
  }
  out.K = K;
  out.N = N;
  out.family = family<Arch>();
}

// The panels of gemm_range, bounds already checked.
template <class Arch>
inline void gemm_range_panels(index_t M, const float* x, index_t rsx, index_t csx, const PackedMatrix& w,
                              index_t k_begin, index_t k_end, index_t n_end, float* y, index_t ldy, Activation act,
                              bool accumulate) {
  constexpr index_t NR = Traits<Arch>::NR, W = Traits<Arch>::W;
  using Half = typename HalfWidth<Arch>::type;
  const index_t K = w.K, N = w.N;
  for (index_t n0 = 0; n0 < n_end; n0 += NR) {
    const index_t ld = ((N - n0 < NR ? N - n0 : NR) + W - 1) / W * W;  // the panel's packed width
    const index_t nr = n_end - n0 < NR ? n_end - n0 : NR;
    const int nv = static_cast<int>((nr + W - 1) / W);
    const float* panel = w.data.data() + (n0 / NR) * (K + 1) * NR;
    if constexpr (!std::is_void_v<Half>) {
      if (nr <= Traits<Half>::W) {
        gemm_panel_nv<Half>(1, M, k_end - k_begin, x + k_begin * csx, rsx, csx, panel + k_begin * ld, ld,
                            panel + K * ld, y + n0, ldy, nr, act, accumulate);
        continue;
      }
    }
    gemm_panel_nv<Arch>(nv, M, k_end - k_begin, x + k_begin * csx, rsx, csx, panel + k_begin * ld, ld, panel + K * ld,
                        y + n0, ldy, nr, act, accumulate);
  }
}

// y[:, :n_end] = act(x[:, k_begin:k_end] W[:n_end, k_begin:k_end]^T + b) (+ y) with
// x[m, k] = x[m * rsx + k * csx] (KernelTable::gemm_range). A panel's rows are its packed width
// apart whatever part of it is computed; the bias row follows row K.
template <class Arch>
inline void gemm_range(index_t M, const float* x, index_t rsx, index_t csx, const PackedMatrix& w, index_t k_begin,
                       index_t k_end, index_t n_end, float* y, index_t ldy, Activation act, bool accumulate) {
  if (w.family != family<Arch>()) detail::throw_foreign_matrix(Traits<Arch>::name);
  if (k_begin < 0 || k_begin > k_end || k_end > w.K || n_end < 0 || n_end > w.N)
    detail::throw_bad_range(k_begin, k_end, n_end, w);
  if (gemm_observer) [[unlikely]]
    return detail::observed_gemm(M, n_end, k_end - k_begin, csx != 1, [&] {
      gemm_range_panels<Arch>(M, x, rsx, csx, w, k_begin, k_end, n_end, y, ldy, act, accumulate);
    });
  gemm_range_panels<Arch>(M, x, rsx, csx, w, k_begin, k_end, n_end, y, ldy, act, accumulate);
}

// y = act(x W^T + b) (+ y) with x[m, k] = x[m * rsx + k * csx].
template <class Arch>
inline void gemm_strided(index_t M, const float* x, index_t rsx, index_t csx, const PackedMatrix& w, float* y,
                         index_t ldy, Activation act, bool accumulate) {
  gemm_range<Arch>(M, x, rsx, csx, w, 0, w.K, w.N, y, ldy, act, accumulate);
}

template <class Arch>
inline void gemm(index_t M, const float* x, index_t ldx, const PackedMatrix& w, float* y, index_t ldy, Activation act,
                 bool accumulate) {
  gemm_strided<Arch>(M, x, ldx, 1, w, y, ldy, act, accumulate);
}

// x given transposed: x[m, k] = xt[k * ldxt + m]. Each k step of a tile reads MR contiguous floats.
template <class Arch>
inline void gemm_at(index_t M, const float* xt, index_t ldxt, const PackedMatrix& w, float* y, index_t ldy,
                    Activation act, bool accumulate) {
  gemm_strided<Arch>(M, xt, 1, ldxt, w, y, ldy, act, accumulate);
}

// KernelTable::gemm_b: B read in place. Whole vectors of columns through the micro-kernel (bias 0,
// as pack_linear_t without bias), so the same tiles and order as gemm with B packed; the last
// N % W columns with half-width vectors where they fill one (AVX-512), then one fma chain each.
template <class Arch>
inline void gemm_b_panels(index_t M, const float* x, index_t rsx, index_t csx, index_t N, index_t K, const float* b,
                          index_t ldb, float* y, index_t ldy, bool accumulate) {
  constexpr index_t NR = Traits<Arch>::NR, W = Traits<Arch>::W;
  const index_t n_vec = N / W * W;
  for (index_t n0 = 0; n0 < n_vec; n0 += NR) {
    const index_t nr = n_vec - n0 < NR ? n_vec - n0 : NR;
    gemm_panel_nv<Arch>(static_cast<int>(nr / W), M, K, x, rsx, csx, b + n0, ldb, nullptr, y + n0, ldy, nr,
                        Activation::none, accumulate);
  }
  index_t n0 = n_vec;
  using Half = typename HalfWidth<Arch>::type;
  if constexpr (!std::is_void_v<Half>) {
    constexpr index_t H = Traits<Half>::W;
    if (N - n0 >= H) {
      gemm_panel_nv<Half>(1, M, K, x, rsx, csx, b + n0, ldb, nullptr, y + n0, ldy, H, Activation::none, accumulate);
      n0 += H;
    }
  }
  for (; n0 < N; ++n0)
    for (index_t m = 0; m < M; ++m) {
      float acc = 0.0f;
      for (index_t k = 0; k < K; ++k) acc = std::fma(x[m * rsx + k * csx], b[k * ldb + n0], acc);
      y[m * ldy + n0] = accumulate ? y[m * ldy + n0] + acc : acc;
    }
}

template <class Arch>
inline void gemm_b(index_t M, const float* x, index_t rsx, index_t csx, index_t N, index_t K, const float* b,
                   index_t ldb, float* y, index_t ldy, bool accumulate) {
  if (gemm_observer) [[unlikely]]
    return detail::observed_gemm(M, N, K, csx != 1,
                                 [&] { gemm_b_panels<Arch>(M, x, rsx, csx, N, K, b, ldb, y, ldy, accumulate); });
  gemm_b_panels<Arch>(M, x, rsx, csx, N, K, b, ldb, y, ldy, accumulate);
}

// One row against one panel, k split over CH accumulator chains summed pairwise at the end.
template <class Arch, int NV, int CH>
inline void gemv_panel(index_t K, const float* x, const float* b, const float* bias, float* y, index_t n_valid,
                       Activation act, bool accumulate) {
  using V = Vec<Arch>;
  constexpr int W = Traits<Arch>::W, ld = NV * W;
  V c[CH][NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    c[0][j] = V::load_unaligned(bias + j * W);
#pragma GCC unroll 8
    for (int h = 1; h < CH; ++h) c[h][j] = V(0.0f);
  }
  index_t k = 0;
  for (; k + CH <= K; k += CH) {
#pragma GCC unroll 8
    for (int h = 0; h < CH; ++h) {
      const V a(x[k + h]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) c[h][j] = fmadd<Arch>(a, V::load_unaligned(b + (k + h) * ld + j * W), c[h][j]);
    }
  }
  for (; k < K; ++k) {
    const V a(x[k]);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) c[0][j] = fmadd<Arch>(a, V::load_unaligned(b + k * ld + j * W), c[0][j]);
  }
#pragma GCC unroll 8
  for (int s = 1; s < CH; s *= 2)
#pragma GCC unroll 8
    for (int h = 0; h + s < CH; h += 2 * s)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) c[h][j] = c[h][j] + c[h + s][j];
  store_row<Arch, NV>(c[0], y, n_valid, act, accumulate);
}

template <class Arch, int NV = 1>
inline void gemv_panel_nv(int nv, index_t K, const float* x, const float* b, const float* bias, float* y,
                          index_t n_valid, Activation act, bool accumulate) {
  if constexpr (NV <= Traits<Arch>::nv_max) {
    // Enough independent chains to cover FMA latency x throughput (8 on current cores).
    constexpr int CH = NV >= 3 ? 2 : NV == 2 ? 4 : 8;
    if (nv == NV) return gemv_panel<Arch, NV, CH>(K, x, b, bias, y, n_valid, act, accumulate);
    gemv_panel_nv<Arch, NV + 1>(nv, K, x, b, bias, y, n_valid, act, accumulate);
  }
}

template <class Arch>
inline void gemv(const float* x, const PackedMatrix& w, float* y, Activation act, bool accumulate) {
  if (w.family != family<Arch>()) detail::throw_foreign_matrix(Traits<Arch>::name);
  constexpr index_t NR = Traits<Arch>::NR, W = Traits<Arch>::W;
  const index_t K = w.K, N = w.N;
  for (index_t n0 = 0; n0 < N; n0 += NR) {
    const index_t nr = N - n0 < NR ? N - n0 : NR;
    const int nv = static_cast<int>((nr + W - 1) / W);
    const float* panel = w.data.data() + (n0 / NR) * (K + 1) * NR;
    gemv_panel_nv<Arch>(nv, K, x, panel, panel + K * nv * W, y + n0, nr, act, accumulate);
  }
}

// ---- row-wise and element-wise ops (tails through zero/fill-padded partial vectors) ----

template <class Arch>
inline float sum_row(const float* x, index_t n, float shift) {  // sum of (x - shift)^2 if shift is finite
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  V acc0(0.0f), acc1(0.0f);
  const V s(shift);
  index_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const V d0 = V::load_unaligned(x + i) - s, d1 = V::load_unaligned(x + i + W) - s;
    acc0 = fmadd<Arch>(d0, d0, acc0);
    acc1 = fmadd<Arch>(d1, d1, acc1);
  }
  for (; i + W <= n; i += W) {
    const V d0 = V::load_unaligned(x + i) - s;
    acc0 = fmadd<Arch>(d0, d0, acc0);
  }
  if (i < n) {
    const V d0 = load_part<Arch>(x + i, n - i, shift) - s;
    acc1 = fmadd<Arch>(d0, d0, acc1);
  }
  return xsimd::hadd(acc0 + acc1);
}

template <class Arch>
inline void layernorm(index_t rows, index_t d, const float* x, index_t ldx, const float* gamma, const float* beta,
                      float eps, float* y, index_t ldy) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  if (d <= 0) return;
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    V acc(0.0f);
    index_t i = 0;
    for (; i + W <= d; i += W) acc = acc + V::load_unaligned(xr + i);
    if (i < d) acc = acc + load_part<Arch>(xr + i, d - i);
    const float mean = xsimd::hadd(acc) / static_cast<float>(d);
    const float var = sum_row<Arch>(xr, d, mean) / static_cast<float>(d);
    const V inv(1.0f / std::sqrt(var + eps)), m(mean);
    for (i = 0; i < d; i += W) {
      const index_t n = d - i < W ? d - i : W;
      const V xv = n == W ? V::load_unaligned(xr + i) : load_part<Arch>(xr + i, n);
      const V g = gamma ? (n == W ? V::load_unaligned(gamma + i) : load_part<Arch>(gamma + i, n)) : V(1.0f);
      const V b = beta ? (n == W ? V::load_unaligned(beta + i) : load_part<Arch>(beta + i, n)) : V(0.0f);
      const V out = (xv - m) * inv * g + b;
      if (n == W)
        out.store_unaligned(yr + i);
      else
        store_part<Arch>(out, yr + i, n);
    }
  }
}

template <class Arch>
inline void scale_row(float* p, index_t n, float s) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  index_t i = 0;
  for (; i + W <= n; i += W) (V::load_unaligned(p + i) * V(s)).store_unaligned(p + i);
  for (; i < n; ++i) p[i] *= s;
}

template <class Arch>
inline void fill_zero(float* p, index_t n) {
  for (index_t i = 0; i < n; ++i) p[i] = 0.0f;
}

// exp(x) for softmax arguments (x <= 0 after the max shift; valid up to ~88): Cephes-style
// x = n ln2 + r, |r| <= ln2 / 2, degree-6 polynomial, 2^n through the exponent bits.
// About 2 ulp; x below -87.3 (including -inf padding) gives exactly 0. NaN is handled by
// the caller. Cheaper than xsimd::exp, which is most of a softmax's cost.
template <class Arch>
inline Vec<Arch> exp_softmax(Vec<Arch> x) {
  using V = Vec<Arch>;
  using I = xsimd::batch<std::int32_t, Arch>;
  const auto underflow = x < V(-87.3f);
  x = xsimd::max(x, V(-87.3f));
  const V n = xsimd::nearbyint(x * V(1.44269504088896341f));
  V r = fmadd<Arch>(n, V(-0.693359375f), x);
  r = fmadd<Arch>(n, V(2.12194440e-4f), r);
  V p(1.9875691500e-4f);
  p = fmadd<Arch>(p, r, V(1.3981999507e-3f));
  p = fmadd<Arch>(p, r, V(8.3334519073e-3f));
  p = fmadd<Arch>(p, r, V(4.1665795894e-2f));
  p = fmadd<Arch>(p, r, V(1.6666665459e-1f));
  p = fmadd<Arch>(p, r, V(5.0000001201e-1f));
  p = fmadd<Arch>(p, r * r, r) + V(1.0f);
  const I bits = (xsimd::to_int(n) + I(127)) << 23;
  return xsimd::select(underflow, V(0.0f), p * xsimd::bitwise_cast<V>(bits));
}

// Softmax of scale * xr[b, e) in place; assumes e > b. With normalize = false the exp
// values are left unnormalised and 1 / sum is returned (attention scales its output rows
// instead, which is cheaper than a pass over the probabilities). A NaN anywhere in the
// span makes the whole span NaN, as in reference::softmax_rows.
template <class Arch>
inline float softmax_span(float* xr, index_t b, index_t e, float scale, bool normalize = true) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  const float ninf = -std::numeric_limits<float>::infinity();
  const V sc(scale);
  V mx(ninf);
  auto nan = xsimd::isnan(mx);  // (xsimd 8.1's != is ordered: NaN != NaN is false there)
  index_t i = b;
  for (; i + W <= e; i += W) {
    const V v = V::load_unaligned(xr + i) * sc;
    nan = nan | xsimd::isnan(v);
    mx = xsimd::max(mx, v);
  }
  if (i < e) {
    const V v = load_part<Arch>(xr + i, e - i, ninf) * sc;
    nan = nan | xsimd::isnan(v);
    mx = xsimd::max(mx, v);
  }
  if (xsimd::any(nan)) {
    for (i = b; i < e; ++i) xr[i] = std::numeric_limits<float>::quiet_NaN();
    return std::numeric_limits<float>::quiet_NaN();
  }
  const V m(hmax<Arch>(mx));
  V sum(0.0f);
  for (i = b; i + W <= e; i += W) {
    const V p = exp_softmax<Arch>(fmadd<Arch>(V::load_unaligned(xr + i), sc, -m));
    p.store_unaligned(xr + i);
    sum = sum + p;
  }
  if (i < e) {
    const V p = exp_softmax<Arch>(fmadd<Arch>(load_part<Arch>(xr + i, e - i, ninf), sc, -m));
    store_part<Arch>(p, xr + i, e - i);
    sum = sum + p;
  }
  const float inv_sum = 1.0f / xsimd::hadd(sum);
  if (!normalize) return inv_sum;
  const V inv(inv_sum);
  for (i = b; i + W <= e; i += W) (V::load_unaligned(xr + i) * inv).store_unaligned(xr + i);
  if (i < e) store_part<Arch>(load_part<Arch>(xr + i, e - i) * inv, xr + i, e - i);
  return inv_sum;
}

template <class Arch>
inline void softmax_rows(index_t rows, index_t cols, float* x, index_t ldx, bool causal, index_t causal_offset,
                         index_t col_begin) {
  const index_t b = col_begin > 0 ? col_begin : 0;
  for (index_t r = 0; r < rows; ++r) {
    float* xr = x + r * ldx;
    index_t e = cols;
    if (causal) {
      const index_t lim = causal_offset + r + 1 > 0 ? causal_offset + r + 1 : 0;
      e = lim < cols ? lim : cols;
    }
    if (e <= b) {
      fill_zero<Arch>(xr, cols);
      continue;
    }
    fill_zero<Arch>(xr, b);
    softmax_span<Arch>(xr, b, e, 1.0f);
    fill_zero<Arch>(xr + e, cols - e);
  }
}

template <class Arch>
inline Vec<Arch> apply_unary(UnaryOp op, Vec<Arch> v) {
  using V = Vec<Arch>;
  switch (op) {
    case UnaryOp::relu: return relu<Arch>(v);
    case UnaryOp::gelu: return gelu<Arch>(v);
    case UnaryOp::tanh: return xsimd::tanh(v);
    case UnaryOp::sigmoid: return V(1.0f) / (V(1.0f) + xsimd::exp(-v));
  }
  return v;
}

template <class Arch>
inline void unary(UnaryOp op, index_t n, const float* x, float* y) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  index_t i = 0;
  for (; i + W <= n; i += W) apply_unary<Arch>(op, V::load_unaligned(x + i)).store_unaligned(y + i);
  if (i < n) store_part<Arch>(apply_unary<Arch>(op, load_part<Arch>(x + i, n - i)), y + i, n - i);
}

template <class Arch>
inline void add_scaled(index_t n, const float* a, float s, const float* b, float* y) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  const V sv(s);
  index_t i = 0;
  for (; i + W <= n; i += W) (V::load_unaligned(a + i) + sv * V::load_unaligned(b + i)).store_unaligned(y + i);
  if (i < n) store_part<Arch>(load_part<Arch>(a + i, n - i) + sv * load_part<Arch>(b + i, n - i), y + i, n - i);
}

template <class Arch>
inline void mul(index_t n, const float* a, const float* b, float* y) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  index_t i = 0;
  for (; i + W <= n; i += W) (V::load_unaligned(a + i) * V::load_unaligned(b + i)).store_unaligned(y + i);
  if (i < n) store_part<Arch>(load_part<Arch>(a + i, n - i) * load_part<Arch>(b + i, n - i), y + i, n - i);
}

// One Adam step per lane, in reference::adam_update's order, with the moment updates and the L2
// term as explicit FMAs (one rounding where the reference rounds twice; explicit so the result does
// not depend on what the compiler contracts). g * grad_scale is always rounded on its own, so a
// prescaled gradient with grad_scale 1 gives the same bits (the trainer's fused clipping relies on
// it). xsimd's sqrt and division are correctly rounded like std::sqrt and /.
template <class Arch, bool WD, bool Decoupled>
inline void adam_lanes(Vec<Arch>& p, Vec<Arch> g, Vec<Arch>& m, Vec<Arch>& v, const AdamArgs& a) {
  using V = Vec<Arch>;
  V gk = g * V(a.grad_scale);
  if constexpr (WD) {
    if constexpr (Decoupled)
      p = p * V(1.0f - a.lr * a.weight_decay);
    else
      gk = fmadd<Arch>(V(a.weight_decay), p, gk);
  }
  m = fmadd<Arch>(V(1.0f - a.beta1), gk, V(a.beta1) * m);
  v = fmadd<Arch>(V(1.0f - a.beta2) * gk, gk, V(a.beta2) * v);
  p = p - V(a.step_size) * m / (xsimd::sqrt(v) / V(a.sqrt_bc2) + V(a.eps));
}

template <class Arch, bool WD, bool Decoupled>
inline void adam_span(index_t n, float* p, const float* g, float* m, float* v, const AdamArgs& a) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  index_t i = 0;
  for (; i + W <= n; i += W) {
    V pv = V::load_unaligned(p + i), mv = V::load_unaligned(m + i), vv = V::load_unaligned(v + i);
    adam_lanes<Arch, WD, Decoupled>(pv, V::load_unaligned(g + i), mv, vv, a);
    pv.store_unaligned(p + i);
    mv.store_unaligned(m + i);
    vv.store_unaligned(v + i);
  }
  if (i < n) {
    const index_t r = n - i;
    V pv = load_part<Arch>(p + i, r), mv = load_part<Arch>(m + i, r), vv = load_part<Arch>(v + i, r);
    adam_lanes<Arch, WD, Decoupled>(pv, load_part<Arch>(g + i, r), mv, vv, a);  // padding lanes are dropped
    store_part<Arch>(pv, p + i, r);
    store_part<Arch>(mv, m + i, r);
    store_part<Arch>(vv, v + i, r);
  }
}

template <class Arch>
inline void adam_update(index_t n, float* p, const float* g, float* m, float* v, const AdamArgs& a) {
  if (a.weight_decay == 0.0f)
    adam_span<Arch, false, false>(n, p, g, m, v, a);
  else if (a.decoupled)
    adam_span<Arch, true, true>(n, p, g, m, v, a);
  else
    adam_span<Arch, true, false>(n, p, g, m, v, a);
}

template <class Arch>
inline void gather_rows(index_t rows, index_t d, const float* table, index_t ldt, const std::int32_t* ids,
                        float scale, const float* add, index_t lda, float* out, index_t ldo) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  const V sv(scale);
  for (index_t r = 0; r < rows; ++r) {
    const float* src = table + static_cast<index_t>(ids[r]) * ldt;
    const float* ad = add ? add + r * lda : nullptr;
    float* o = out + r * ldo;
    index_t i = 0;
    for (; i + W <= d; i += W) {
      V v = sv * V::load_unaligned(src + i);
      if (ad) v = v + V::load_unaligned(ad + i);
      v.store_unaligned(o + i);
    }
    if (i < d) {
      V v = sv * load_part<Arch>(src + i, d - i);
      if (ad) v = v + load_part<Arch>(ad + i, d - i);
      store_part<Arch>(v, o + i, d - i);
    }
  }
}

template <class Arch>
inline float dot(const float* a, const float* b, index_t n) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  V acc0(0.0f), acc1(0.0f);
  index_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    acc0 = fmadd<Arch>(V::load_unaligned(a + i), V::load_unaligned(b + i), acc0);
    acc1 = fmadd<Arch>(V::load_unaligned(a + i + W), V::load_unaligned(b + i + W), acc1);
  }
  for (; i + W <= n; i += W) acc0 = fmadd<Arch>(V::load_unaligned(a + i), V::load_unaligned(b + i), acc0);
  if (i < n) acc1 = fmadd<Arch>(load_part<Arch>(a + i, n - i), load_part<Arch>(b + i, n - i), acc1);
  return xsimd::hadd(acc0 + acc1);
}

template <class Arch>
inline void dot_rows(index_t rows, index_t d, const float* u, const float* m, index_t ldm, float* out) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  index_t r = 0;
  if (d % W == 0) {  // four rows at once share the loads of u
    for (; r + 4 <= rows; r += 4) {
      const float* m0 = m + r * ldm;
      V a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
      for (index_t i = 0; i < d; i += W) {
        const V uv = V::load_unaligned(u + i);
        a0 = fmadd<Arch>(uv, V::load_unaligned(m0 + i), a0);
        a1 = fmadd<Arch>(uv, V::load_unaligned(m0 + ldm + i), a1);
        a2 = fmadd<Arch>(uv, V::load_unaligned(m0 + 2 * ldm + i), a2);
        a3 = fmadd<Arch>(uv, V::load_unaligned(m0 + 3 * ldm + i), a3);
      }
      out[r] = xsimd::hadd(a0);
      out[r + 1] = xsimd::hadd(a1);
      out[r + 2] = xsimd::hadd(a2);
      out[r + 3] = xsimd::hadd(a3);
    }
  }
  for (; r < rows; ++r) out[r] = dot<Arch>(u, m + r * ldm, d);
}

// ---- attention ----

// Any head width: one query row and one key at a time (scores in scratch).
template <class Arch>
inline void attention_head_rowwise(const AttentionArgs& a, index_t c0) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  const index_t dh = a.head_dim, kb = a.key_begin > 0 ? a.key_begin : 0;
  float* s = a.scratch;
  for (index_t i = 0; i < a.q_rows; ++i) {
    const index_t last = a.q_offset + i;
    float* o = a.out + i * a.ldo + c0;
    fill_zero<Arch>(o, dh);
    if (last < kb) continue;
    const float* qi = a.q + i * a.ldq + c0;
    for (index_t j = kb; j <= last; ++j) s[j] = dot<Arch>(qi, a.k + j * a.ldk + c0, dh);
    softmax_span<Arch>(s, kb, last + 1, a.scale);
    for (index_t c = 0; c < dh; c += W) {
      const index_t n = dh - c < W ? dh - c : W;
      V acc(0.0f);
      for (index_t j = kb; j <= last; ++j) {
        const float* vj = a.v + j * a.ldv + c0 + c;
        acc = fmadd<Arch>(V(s[j]), n == W ? V::load_unaligned(vj) : load_part<Arch>(vj, n), acc);
      }
      store_part<Arch>(acc, o + c, n);
    }
  }
}

// out[i] = sum of the lanes of v[i], i < W (W floats written).
template <class Arch>
inline void hsums(const Vec<Arch>* v, float* out) {
#if defined(__AVX512F__)
  if constexpr (Traits<Arch>::W == 16) {
    // A transpose-and-add tree on whole zmm registers (15 adds, 30 in-register shuffles; half
    // the cost of reducing through 256-bit haddp, and xsimd 8.1's AVX-512 haddp returns the
    // sums out of order). Step 1, per 128-bit lane of pairs (x, y): [x0+x2, y0+y2, x1+x3, y1+y3].
    __m512 t[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    // Step 2: per 128-bit lane, the partial sums of 4 consecutive inputs.
    __m512 u[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k)
      u[k] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * k], t[2 * k + 1], 0x44),
                           _mm512_shuffle_ps(t[2 * k], t[2 * k + 1], 0xEE));
    // Steps 3-4: add across the four 128-bit lanes; lane i ends up holding the sum of v[i].
    const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
    const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD)));
    return;
  }
#endif
  xsimd::haddp(v).store_unaligned(out);
}

// One query row, head_dim = NV * W: scores W keys at a time (one horizontal add per W keys via
// haddp), then P V with two accumulator sets over alternate keys (latency-bound otherwise).
template <class Arch, int NV>
inline void attention_head_single(const AttentionArgs& a, index_t c0) {
  using V = Vec<Arch>;
  constexpr index_t W = Traits<Arch>::W;
  const index_t kb = a.key_begin > 0 ? a.key_begin : 0, e = a.q_offset + 1;  // keys [kb, e)
  float* o = a.out + c0;
  if (e <= kb) {
    fill_zero<Arch>(o, NV * W);
    return;
  }
  V q[NV];
#pragma GCC unroll 8
  for (int c = 0; c < NV; ++c) q[c] = V::load_unaligned(a.q + c0 + c * W);
  float* s = a.scratch;
  for (index_t j0 = kb; j0 < e; j0 += W) {
    V dots[W];
    for (index_t r = 0; r < W; ++r) {
      const float* kj = a.k + (j0 + r) * a.ldk + c0;
      V acc(0.0f);
      if (j0 + r < e) {
#pragma GCC unroll 8
        for (int c = 0; c < NV; ++c) acc = fmadd<Arch>(q[c], V::load_unaligned(kj + c * W), acc);
      }
      dots[r] = acc;
    }
    hsums<Arch>(dots, s + j0);  // may write W - 1 floats past the keys: scratch is larger
  }
  const float inv_sum = softmax_span<Arch>(s, kb, e, a.scale, false);
  V acc0[NV], acc1[NV];
#pragma GCC unroll 8
  for (int c = 0; c < NV; ++c) acc0[c] = acc1[c] = V(0.0f);
  index_t j = kb;
  for (; j + 2 <= e; j += 2) {
    const V p0(s[j]), p1(s[j + 1]);
    const float* v0 = a.v + j * a.ldv + c0;
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) {
      acc0[c] = fmadd<Arch>(p0, V::load_unaligned(v0 + c * W), acc0[c]);
      acc1[c] = fmadd<Arch>(p1, V::load_unaligned(v0 + a.ldv + c * W), acc1[c]);
    }
  }
  if (j < e) {
    const V p0(s[j]);
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) acc0[c] = fmadd<Arch>(p0, V::load_unaligned(a.v + j * a.ldv + c0 + c * W), acc0[c]);
  }
#pragma GCC unroll 8
  for (int c = 0; c < NV; ++c) ((acc0[c] + acc1[c]) * V(inv_sum)).store_unaligned(o + c * W);
}

template <class Arch, int NV = 1>
inline bool attention_head_single_nv(const AttentionArgs& a, index_t c0) {
  if constexpr (NV <= 8) {
    if (a.head_dim == NV * Traits<Arch>::W) {
      attention_head_single<Arch, NV>(a, c0);
      return true;
    }
    return attention_head_single_nv<Arch, NV + 1>(a, c0);
  }
  return false;
}

// head_dim a multiple of W and <= kAttentionFastHeadDim: K^T in scratch, then blocks of
// kAttentionRowBlock query rows do S = Q K^T and O = P V with the GEMM micro-kernels.
template <class Arch>
inline void attention_head_blocked(const AttentionArgs& a, index_t c0) {
  constexpr index_t W = Traits<Arch>::W, NR = Traits<Arch>::NR;
  const index_t dh = a.head_dim, keys = a.q_offset + a.q_rows;
  const index_t kb = a.key_begin > 0 ? a.key_begin : 0;
  if (kb >= keys) {  // every key is padding
    for (index_t i = 0; i < a.q_rows; ++i) fill_zero<Arch>(a.out + i * a.ldo + c0, dh);
    return;
  }
  const index_t lp = aligned_count<float>(keys);  // row stride of K^T and of the score block
  const index_t kb0 = kb / W * W;                 // first key column computed (vector aligned)
  float* kt = a.scratch;
  float* sc = a.scratch + kAttentionFastHeadDim * lp;
  const index_t kend = (keys + W - 1) / W * W;
  for (index_t c = 0; c < dh; ++c) {
    float* row = kt + c * lp;
    for (index_t j = kb0; j < keys; ++j) row[j] = a.k[j * a.ldk + c0 + c];
    for (index_t j = keys; j < kend; ++j) row[j] = 0.0f;
  }
  for (index_t i0 = 0; i0 < a.q_rows; i0 += kAttentionRowBlock) {
    const index_t rows = a.q_rows - i0 < kAttentionRowBlock ? a.q_rows - i0 : kAttentionRowBlock;
    const index_t last = a.q_offset + i0 + rows - 1;  // last key any row of the block sees
    if (last < kb) {
      for (index_t i = 0; i < rows; ++i) fill_zero<Arch>(a.out + (i0 + i) * a.ldo + c0, dh);
      continue;
    }
    const index_t jend = (last + 1 + W - 1) / W * W;
    for (index_t j = kb0; j < jend; j += NR) {
      const index_t n = jend - j < NR ? jend - j : NR;
      gemm_panel_nv<Arch>(static_cast<int>(n / W), rows, dh, a.q + i0 * a.ldq + c0, a.ldq, 1, kt + j, lp, nullptr,
                          sc + j, lp, n, Activation::none, false);
    }
    float inv_sum[kAttentionRowBlock];
    for (index_t i = 0; i < rows; ++i) {
      float* sr = sc + i * lp;
      const index_t e = a.q_offset + i0 + i + 1;  // keys [kb, e)
      if (e <= kb) {
        fill_zero<Arch>(sr + kb0, jend - kb0);
        inv_sum[i] = 0.0f;
        continue;
      }
      fill_zero<Arch>(sr + kb0, kb - kb0);
      inv_sum[i] = softmax_span<Arch>(sr, kb, e, a.scale, false);
      fill_zero<Arch>(sr + e, jend - e);
    }
    for (index_t c = 0; c < dh; c += NR) {  // O = P V, V read in place
      const index_t n = dh - c < NR ? dh - c : NR;
      gemm_panel_nv<Arch>(static_cast<int>(n / W), rows, last + 1 - kb, sc + kb, lp, 1, a.v + kb * a.ldv + c0 + c,
                          a.ldv, nullptr, a.out + i0 * a.ldo + c0 + c, a.ldo, n, Activation::none, false);
    }
    for (index_t i = 0; i < rows; ++i) scale_row<Arch>(a.out + (i0 + i) * a.ldo + c0, dh, inv_sum[i]);
  }
}

template <class Arch>
inline void attention(const AttentionArgs& a) {
  constexpr index_t W = Traits<Arch>::W;
  const bool blocked = a.head_dim % W == 0 && a.head_dim <= kAttentionFastHeadDim;
  for (index_t h = 0; h < a.heads; ++h) {
    // One query row (a device push): transposing every cached key would cost more than the row.
    if (a.q_rows == 1 && attention_head_single_nv<Arch>(a, h * a.head_dim)) continue;
    if (blocked)
      attention_head_blocked<Arch>(a, h * a.head_dim);
    else
      attention_head_rowwise<Arch>(a, h * a.head_dim);
  }
}

template <class Arch>
inline constexpr KernelTable table{Traits<Arch>::name, &pack_linear<Arch>, &gemm<Arch>,        &gemv<Arch>,
                                   &layernorm<Arch>,   &softmax_rows<Arch>, &unary<Arch>,      &add_scaled<Arch>,
                                   &mul<Arch>,         &gather_rows<Arch>,  &dot_rows<Arch>,   &attention<Arch>,
                                   &pack_linear_t<Arch>, &gemm_at<Arch>,    &adam_update<Arch>,
                                   &gemm_range<Arch>,    &gemm_b<Arch>};

template <class Arch>
const KernelTable* family() {
  return &table<Arch>;
}

}  // namespace fofa::kernels::simd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
