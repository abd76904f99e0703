// fofa-bench-kernels: GEMM, GEMV and attention for fofa's kernels against the scalar table,
// OpenBLAS and Eigen (each single-threaded, when found at configure time).
//
// Names: BM_gemm/<impl>/<M>x<K>x<N>, BM_gemv/<impl>/<K>x<N>, BM_attention/<impl>/L<len>_dh<dh>,
// BM_fma_peak/<isa>. Counters: GFLOP/s and pct_peak, the percentage of the FMA peak of the
// kernel table in use (FOFA_ISA selects it), measured at start-up inside this binary.
// The fofa GEMM includes its bias (folded into the packed weight); OpenBLAS/Eigen do not.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "fma_peaks.hpp"
#include "fofa/kernels/kernels.hpp"

#if defined(FOFA_BENCH_OPENBLAS)
#include <cblas.h>
#endif
#if defined(FOFA_BENCH_EIGEN)
#include <Eigen/Core>
#endif


namespace {

using fofa::index_t;
namespace fk = fofa::kernels;

std::map<std::string, double> g_peak;  // GFLOP/s by table name, filled once in main before running
double g_best_peak = 0.0;              // the peak of the selected table (denominator of pct_peak)

std::vector<float> random_vec(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

void set_counters(benchmark::State& st, double flops_per_iter) {
  const double flops = flops_per_iter * static_cast<double>(st.iterations());
  st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  if (g_best_peak > 0)
    st.counters["pct_peak"] = benchmark::Counter(flops * 1e-9 * 100.0 / g_best_peak, benchmark::Counter::kIsRate);
}

struct Linear {
  index_t M, K, N;
  std::vector<float> x, w, b, y;
  Linear(index_t m, index_t k, index_t n)
      : M(m), K(k), N(n), x(random_vec(static_cast<std::size_t>(m * k), 1)),
        w(random_vec(static_cast<std::size_t>(n * k), 2)), b(random_vec(static_cast<std::size_t>(n), 3)),
        y(static_cast<std::size_t>(m * n)) {}
};

void bm_gemm_table(benchmark::State& st, const fk::KernelTable* t, index_t M, index_t K, index_t N) {
  Linear L(M, K, N);
  fk::PackedMatrix p;
  t->pack_linear(N, K, L.w.data(), K, L.b.data(), p);
  for (auto _ : st) {
    if (M == 1)
      t->gemv(L.x.data(), p, L.y.data(), fk::Activation::none, false);
    else
      t->gemm(M, L.x.data(), K, p, L.y.data(), N, fk::Activation::none, false);
    benchmark::DoNotOptimize(L.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, 2.0 * M * K * N);
}

#if defined(FOFA_BENCH_OPENBLAS)
void bm_gemm_openblas(benchmark::State& st, index_t M, index_t K, index_t N) {
  Linear L(M, K, N);
  const int m = static_cast<int>(M), k = static_cast<int>(K), n = static_cast<int>(N);
  for (auto _ : st) {
    if (M == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, L.w.data(), k, L.x.data(), 1, 0.0f, L.y.data(), 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, L.x.data(), k, L.w.data(), k, 0.0f,
                  L.y.data(), n);
    benchmark::DoNotOptimize(L.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, 2.0 * M * K * N);
}
#endif

#if defined(FOFA_BENCH_EIGEN)
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
void bm_gemm_eigen(benchmark::State& st, index_t M, index_t K, index_t N) {
  Linear L(M, K, N);
  Eigen::Map<const RowMat> x(L.x.data(), M, K), w(L.w.data(), N, K);
  Eigen::Map<RowMat> y(L.y.data(), M, N);
  for (auto _ : st) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(L.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, 2.0 * M * K * N);
}
#endif

struct AttentionData {
  index_t L, dh;
  std::vector<float> q, k, v, out, scratch;
  fk::AttentionArgs args;
  AttentionData(index_t len, index_t head_dim)
      : L(len), dh(head_dim), q(random_vec(static_cast<std::size_t>(len * head_dim), 4)),
        k(random_vec(static_cast<std::size_t>(len * head_dim), 5)),
        v(random_vec(static_cast<std::size_t>(len * head_dim), 6)), out(static_cast<std::size_t>(len * head_dim)),
        scratch(static_cast<std::size_t>(fk::attention_scratch_floats(len))) {
    args.q_rows = len;
    args.heads = 1;
    args.head_dim = head_dim;
    args.q = q.data(); args.ldq = head_dim;
    args.k = k.data(); args.ldk = head_dim;
    args.v = v.data(); args.ldv = head_dim;
    args.out = out.data(); args.ldo = head_dim;
    args.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    args.scratch = scratch.data();
  }
  // Causal: QK^T and PV each cost 2 * dh per visible (query, key) pair, L(L+1)/2 pairs.
  double flops() const { return 2.0 * 2.0 * static_cast<double>(dh) * static_cast<double>(L * (L + 1) / 2); }
};

void bm_attention_table(benchmark::State& st, const fk::KernelTable* t, index_t L, index_t dh) {
  AttentionData a(L, dh);
  for (auto _ : st) {
    t->attention(a.args);
    benchmark::DoNotOptimize(a.out.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, a.flops());
}

#if defined(FOFA_BENCH_EIGEN)
// The same causal attention as dense Eigen products (masked scores still computed).
void bm_attention_eigen(benchmark::State& st, index_t L, index_t dh) {
  AttentionData a(L, dh);
  Eigen::Map<const RowMat> q(a.q.data(), L, dh), k(a.k.data(), L, dh), v(a.v.data(), L, dh);
  Eigen::Map<RowMat> o(a.out.data(), L, dh);
  RowMat s(L, L);
  for (auto _ : st) {
    s.noalias() = (q * k.transpose()) * a.args.scale;
    for (index_t i = 0; i < L; ++i) {
      auto row = s.row(i).head(i + 1);
      row = (row.array() - row.maxCoeff()).exp();
      row /= row.sum();
      s.row(i).tail(L - i - 1).setZero();
    }
    o.noalias() = s * v;
    benchmark::DoNotOptimize(a.out.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, a.flops());
}
#endif

void bm_fma_peak(benchmark::State& st, double gflops) {
  for (auto _ : st) benchmark::DoNotOptimize(gflops);
  st.counters["GFLOP/s"] = gflops;
  st.counters["pct_peak"] = 100.0;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(FOFA_BENCH_OPENBLAS)
  openblas_set_num_threads(1);
#endif
#if defined(FOFA_BENCH_EIGEN)
  Eigen::setNbThreads(1);
#endif
  benchmark::Initialize(&argc, argv);

  g_peak = fofa::bench::fma_peaks();
  const fk::KernelTable* best = &fk::kernels();
  g_best_peak = fofa::bench::selected_fma_peak_gflops(g_peak);
  std::fprintf(stderr, "fofa kernels: %s (FMA peak %.1f GFLOP/s)\n", best->name, g_best_peak);

  for (const auto& [name, gflops] : g_peak)
    benchmark::RegisterBenchmark(("BM_fma_peak/" + name).c_str(), bm_fma_peak, gflops)->Iterations(1);

  struct Shape { index_t M, K, N; };
  const Shape gemms[] = {{50, 64, 64}, {50, 64, 256}, {200, 64, 256}, {200, 256, 64}};
  const Shape gemvs[] = {{1, 64, 64}, {1, 64, 256}};
  const fk::KernelTable* scalar = &fk::scalar_kernels();
  for (const Shape& s : gemms) {
    const std::string dims = std::to_string(s.M) + "x" + std::to_string(s.K) + "x" + std::to_string(s.N);
    benchmark::RegisterBenchmark(("BM_gemm/fofa/" + dims).c_str(), bm_gemm_table, best, s.M, s.K, s.N);
    benchmark::RegisterBenchmark(("BM_gemm/scalar/" + dims).c_str(), bm_gemm_table, scalar, s.M, s.K, s.N);
#if defined(FOFA_BENCH_OPENBLAS)
    benchmark::RegisterBenchmark(("BM_gemm/openblas/" + dims).c_str(), bm_gemm_openblas, s.M, s.K, s.N);
#endif
#if defined(FOFA_BENCH_EIGEN)
    benchmark::RegisterBenchmark(("BM_gemm/eigen/" + dims).c_str(), bm_gemm_eigen, s.M, s.K, s.N);
#endif
  }
  for (const Shape& s : gemvs) {
    const std::string dims = std::to_string(s.K) + "x" + std::to_string(s.N);
    benchmark::RegisterBenchmark(("BM_gemv/fofa/" + dims).c_str(), bm_gemm_table, best, s.M, s.K, s.N);
    benchmark::RegisterBenchmark(("BM_gemv/scalar/" + dims).c_str(), bm_gemm_table, scalar, s.M, s.K, s.N);
#if defined(FOFA_BENCH_OPENBLAS)
    benchmark::RegisterBenchmark(("BM_gemv/openblas/" + dims).c_str(), bm_gemm_openblas, s.M, s.K, s.N);
#endif
#if defined(FOFA_BENCH_EIGEN)
    benchmark::RegisterBenchmark(("BM_gemv/eigen/" + dims).c_str(), bm_gemm_eigen, s.M, s.K, s.N);
#endif
  }
  for (index_t L : {50, 200}) {
    const index_t dh = 32;
    std::string dims = "L";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "L" + std::string
    dims += std::to_string(L);
    dims += "_dh";
    dims += std::to_string(dh);
    benchmark::RegisterBenchmark(("BM_attention/fofa/" + dims).c_str(), bm_attention_table, best, L, dh);
    benchmark::RegisterBenchmark(("BM_attention/scalar/" + dims).c_str(), bm_attention_table, scalar, L, dh);
#if defined(FOFA_BENCH_EIGEN)
    benchmark::RegisterBenchmark(("BM_attention/eigen/" + dims).c_str(), bm_attention_eigen, L, dh);
#endif
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
