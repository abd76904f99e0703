// fofa-bench-train: training throughput of the SPEC default Forward-OFA (d 64, 2 heads, 6 blocks,
// n 50, f 256, controller + low-rank mapper r 8, 23,715 items) at batch 128, for 1 and 2 threads.
// Every sample is a full window (50 input rows) with a random session start t0, so the work per
// step matches bench/train/compare_torch.py. Prints one JSON object; cpu_seconds_per_step_threads_N
// is the process CPU time (getrusage) per timed step, to tell scaling from contention on a loaded
// machine (2 threads with perfect scaling: same CPU per step as 1 thread, half the wall time).
// model_gflop_per_step counts the step's model FLOPs the usual way, three times the forward's (the
// backward computes two products per forward product): every block with DESIGN's c_k (QKV and out
// projections, full n x n QK^T and AV, FFN), the mapper's low-rank products and heads, and the
// scored dot products. Small vector work (LayerNorm, softmax, Adam) is not counted, and neither is the
// work fofa skips (the backward of blocks the mask dropped, the last block's rows before the first
// loss row), so GFLOP/s is work done for the model, the same count for PyTorch, not instructions
// executed. fma_peak_gflops: the measured one-core peak of the selected kernels.
//   fofa-bench-train [--steps N] [--system forward_ofa|static] [--threads N]   (--threads: only that
//   count, for profiling; default 1 and 2)
//   fofa-bench-train --gemm-profile [--steps N] [--system S]   instead prints a text table of where
//   a 1-thread step's packed-GEMM time goes, by shape (kernels::gemm_observer), each shape's
//   in-situ GFLOP/s beside the same product repeated with its operands hot in cache, measured
//   right after the steps, and the step time if every GEMM ran at its hot speed (a ceiling for
//   any reordering or batching of the same products). The observer's clock reads (two per GEMM
//   call) are in the step time.
//   fofa-bench-train --loops   instead times every ISA version this CPU runs of the autograd's own
//   float loops (autograd::detail::BestIsa: GELU backward, dropout, residual dropout, LayerNorm) on
//   one sample's shapes, with each version's speed-up over the baseline x86-64 version.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "fma_peaks.hpp"
#include "fofa/train/synthetic.hpp"
#include "fofa/train/trainer.hpp"

using namespace fofa;
using namespace fofa::train;

static double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Forward FLOPs of one training sequence of t rows (see the header), all blocks kept.
static double forward_flops(const ModelConfig& c, double t, int negatives) {
  const double d = static_cast<double>(c.d), f = static_cast<double>(c.ffn), L = static_cast<double>(c.blocks);
  double block = 8 * t * d * d + 4 * t * t * d + 4 * t * d * f;  // c_k at n = t
  if (c.mapper_on() && c.mapper.mode == MapperMode::lowrank) {
    const double r = static_cast<double>(c.mapper.rank), q = static_cast<double>(c.mapper_code());
    block += 4 * t * r * (d + f);             // (x U1) V1 and (h U2) V2
    block += 2 * q * (d * r + f * r + d);     // the heads U1, U2 and the gate from the code
  }
  return L * block + 2 * t * d * (1.0 + negatives);  // + the positive and negative logits
}

// The benchmark's trainer (dropout 0.2, no progress bar) after one untimed warm-up step (arenas,
// page faults).
struct BenchTrainer {
  Trainer tr;
  BenchTrainer(const ModelConfig& cfg, const SplitData& data, int threads)
      : tr(cfg, data, [threads] {
          TrainerOptions opt;
          opt.threads = threads;
          opt.dropout = 0.2;
          opt.progress = false;
          return opt;
        }()) {
    tr.step(tr.batch_samples(0, 0), 1.0);
  }
  // Runs `steps` steps; returns their wall seconds (and process CPU seconds through cpu). Sampling
  // is not timed (PyTorch gets its batch ready too); past one epoch (16 steps) come the next's batches.
  double timed_steps(int steps, double* cpu = nullptr) {
    double seconds = 0;
    for (int s = 1; s <= steps; ++s) {
      const auto samples = tr.batch_samples(static_cast<int>(s / tr.steps_per_epoch()), s % tr.steps_per_epoch());
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_seconds();
      tr.step(samples, 1.0);
      if (cpu) *cpu += cpu_seconds() - c0;
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    return seconds;
  }
};

// Seconds per call of run(), called in batches of 16 until min_seconds have passed.
template <class F>
double seconds_per_call(F&& run, double min_seconds) {
  long calls = 0;
  double elapsed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  do {
    for (int i = 0; i < 16; ++i) run();
    calls += 16;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < min_seconds);
  return elapsed / static_cast<double>(calls);
}

namespace gemm_profile {

struct Shape {
  index_t M, N, K;
  bool x_transposed;
  auto operator<=>(const Shape&) const = default;
};
struct Stat {
  double calls = 0, flops = 0, seconds = 0;
  void add(const Stat& o) {
    calls += o.calls;
    flops += o.flops;
    seconds += o.seconds;
  }
};
std::map<Shape, Stat> stats;  // the observer runs on the one training thread only

void observe(const kernels::GemmCall& c) {
  Stat& s = stats[{c.M, c.N, c.K, c.x_transposed}];
  s.calls += 1;
  s.flops += 2.0 * static_cast<double>(c.M) * static_cast<double>(c.N) * static_cast<double>(c.K);
  s.seconds += c.seconds;
}

// GFLOP/s of the shape's product repeated for `seconds`, operands hot in cache (same layout as in
// situ).
double hot_gflops(const Shape& s, double seconds = 0.02) {
  const kernels::KernelTable& kt = kernels::kernels();
  std::vector<float> x(static_cast<std::size_t>(s.M * s.K), 0.01f), w(static_cast<std::size_t>(s.N * s.K), 0.01f),
      y(static_cast<std::size_t>(s.M * s.N), 0.0f);
  kernels::PackedMatrix pw;
  kt.pack_linear(s.N, s.K, w.data(), s.K, nullptr, pw);
  const index_t rsx = s.x_transposed ? 1 : s.K, csx = s.x_transposed ? s.M : 1;
  auto run = [&] { kt.gemm_range(s.M, x.data(), rsx, csx, pw, 0, s.K, s.N, y.data(), s.N, kernels::Activation::none, true); };
  run();
  return 2.0 * static_cast<double>(s.M * s.N * s.K) / seconds_per_call(run, seconds) * 1e-9;
}

int run(const ModelConfig& cfg, const SplitData& data, const std::string& system, int steps) {
  BenchTrainer bt(cfg, data, 1);
  kernels::gemm_observer = &observe;
  const double seconds = bt.timed_steps(steps);
  kernels::gemm_observer = nullptr;
  std::vector<std::pair<Shape, Stat>> rows(stats.begin(), stats.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  Stat total;
  for (const auto& row : rows) total.add(row.second);
  const double peak = fofa::bench::selected_fma_peak_gflops(), n = static_cast<double>(steps);
  std::printf("GEMM profile: %s, 1 thread, %d steps, %s kernels, FMA peak %.1f GFLOP/s (measured in this run)\n",
              system.c_str(), steps, kernels::kernels().name, peak);
  std::printf("GEMMs: %.0f calls, %.2f GFLOP and %.1f ms per step = %.0f%% of the step's %.1f ms; %.1f GFLOP/s in situ (%.0f%% of peak)\n",
              total.calls / n, total.flops / n * 1e-9, total.seconds / n * 1e3, 100 * total.seconds / seconds,
              seconds / n * 1e3, total.flops / total.seconds * 1e-9, 100 * total.flops / total.seconds * 1e-9 / peak);
  std::printf("%5s %5s %5s %-4s %11s %11s %9s %9s %9s %8s\n", "M", "N", "K", "x", "calls/step", "GFLOP/step",
              "% GEMM t", "situ GF/s", "hot GF/s", "situ/hot");
  const std::size_t shown = std::min<std::size_t>(rows.size(), 14);
  Stat rest;
  double hot_seconds = 0;  // every shape's calls at its hot speed (the shapes not shown: 2 ms each)
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& [shape, st] = rows[i];
    if (i >= shown) {
      rest.add(st);
      hot_seconds += st.flops / (hot_gflops(shape, 2e-3) * 1e9);
      continue;
    }
    const double situ = st.flops / st.seconds * 1e-9, hot = hot_gflops(shape);
    hot_seconds += st.flops / (hot * 1e9);
    std::printf("%5ld %5ld %5ld %-4s %11.0f %11.3f %8.1f%% %9.1f %9.1f %7.0f%%\n", static_cast<long>(shape.M),
                static_cast<long>(shape.N), static_cast<long>(shape.K), shape.x_transposed ? "x^T" : "x", st.calls / n,
                st.flops / n * 1e-9, 100 * st.seconds / total.seconds, situ, hot, 100 * situ / hot);
  }
  if (rest.calls > 0)
    std::printf("(%zu other shapes: %.0f calls, %.3f GFLOP per step, %.1f%% of GEMM time, %.1f GFLOP/s in situ)\n",
                rows.size() - shown, rest.calls / n, rest.flops / n * 1e-9, 100 * rest.seconds / total.seconds,
                rest.flops / rest.seconds * 1e-9);
  const double hot_step = seconds - total.seconds + hot_seconds;
  std::printf("every GEMM at its hot speed: GEMMs %.1f ms per step instead of %.1f, the step %.1f ms instead of %.1f "
              "(%.1f%% shorter, throughput x%.3f)\n",
              hot_seconds / n * 1e3, total.seconds / n * 1e3, hot_step / n * 1e3, seconds / n * 1e3,
              100 * (1 - hot_step / seconds), seconds / hot_step);
  std::printf("x^T: x read transposed (the weight gradients dW = dy^T x); hot: the same product repeated for 20 ms (2 ms "
              "for the shapes not shown), same micro-kernel, B packed\n");
  return 0;
}

}  // namespace gemm_profile

namespace loops {

// Best of 7 rounds of >= 5 ms each, in microseconds per call.
template <class F>
double micros_per_call(F&& call) {
  double best = 1e30;
  for (int round = 0; round < 7; ++round) best = std::min(best, seconds_per_call(call, 5e-3) * 1e6);
  return best;
}

// One line per version of loop F: time of call(version's function), speed-up over the last
// (baseline) version.
template <auto F, class Call>
void report(const char* what, Call call) {
  const auto versions = autograd::detail::BestIsa<F>::versions();
  std::vector<double> us;
  for (const auto& v : versions) us.push_back(micros_per_call([&] { call(v.fn); }));
  for (std::size_t i = 0; i < versions.size(); ++i)
    std::printf("%-36s %-9s %9.2f us  %5.2fx\n", what, versions[i].isa, us[i], us.back() / us[i]);
}

int run() {
  constexpr index_t R = 50, D = 64, F = 256;  // one sample: 50 rows, width 64, FFN 256
  Rng rng(5);
  auto vec = [&](index_t n, double scale) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = static_cast<float>(scale * rng.normal());
    return v;
  };
  std::vector<float> x = vec(R * F, 2.0), y(x.size()), gy = vec(R * F, 1.0), gx(x.size()), mask(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    y[i] = static_cast<float>(0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0))));
  std::vector<float> a = vec(R * D, 1.0), b = vec(R * D, 1.0), row = vec(D, 1.0), o(a.size()), m(a.size());
  std::vector<float> g = vec(D, 1.0), beta = vec(D, 1.0), xhat(a.size()), rstd(R), gg(D), gb(D), ga(a.size());
  const std::uint32_t thr = autograd::detail::dropout_threshold(0.2);
  namespace d = autograd::detail;
  std::printf("autograd float loops, one sample (%d rows; width %d, FFN %d), best of 7 rounds\n", int(R), int(D),
              int(F));
  std::printf("%-36s %-9s %12s  %s\n", "loop [shape]", "version", "per call", "vs baseline");
  report<&d::gelu_backward_loop<false, false>>("gelu_backward [50 x 256]",
                                              [&](auto fn) { fn(R * F, x.data(), y.data(), gy.data(), nullptr, gx.data()); });
  // Training's case: under dropout, into a gradient nothing has written yet.
  report<&d::gelu_backward_loop<true, true>>("gelu_backward, dropout [50 x 256]", [&](auto fn) {
    fn(R * F, x.data(), y.data(), gy.data(), mask.data(), gx.data());
  });
  report<&d::dropout_forward<float>>("dropout_forward [50 x 256]",
                                     [&](auto fn) { fn(R * F, 1u, 2u, thr, 1.25f, x.data(), y.data(), mask.data()); });
  report<&d::residual_dropout_forward<float>>("residual_dropout_forward [50 x 64]", [&](auto fn) {
    fn(R, D, 3u, 4u, thr, 1.25f, a.data(), b.data(), row.data(), o.data(), m.data());
  });
  report<&d::residual_dropout_backward<float>>("residual_dropout_backward [50 x 64]", [&](auto fn) {
    fn(R, D, a.data(), m.data(), b.data(), row.data(), ga.data(), o.data(), gg.data());
  });
  report<&d::layernorm_forward<float>>("layernorm_forward [50 x 64]", [&](auto fn) {
    fn(R, D, a.data(), g.data(), beta.data(), 1e-8f, xhat.data(), rstd.data(), o.data());
  });
  report<&d::layernorm_backward<float>>("layernorm_backward [50 x 64]", [&](auto fn) {
    fn(R, D, b.data(), xhat.data(), rstd.data(), g.data(), ga.data(), gg.data(), gb.data());
  });
  return 0;
}

}  // namespace loops

// A count argument: a whole number >= 1, else -1.
static int positive_count(const std::string& v) {
  std::size_t used = 0;
  int n = -1;
  try {
    n = std::stoi(v, &used);
  } catch (const std::exception&) {
    return -1;
  }
  return used == v.size() && n >= 1 ? n : -1;
}

int main(int argc, char** argv) {
  const char* usage =
      "usage: fofa-bench-train [--steps N] [--system forward_ofa|static] [--threads N] [--gemm-profile]\n"
      "       fofa-bench-train --loops\n"
      "  N >= 1; --gemm-profile always runs 1 thread\n";
  int steps = 5;
  std::string system = "forward_ofa";
  std::vector<int> thread_counts = {1, 2};
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--gemm-profile") {
      profile = true;
      continue;
    }
    if (a == "--loops" && argc == 2) return loops::run();
    if (i + 1 >= argc || (a != "--steps" && a != "--system" && a != "--threads")) {
      std::cerr << usage;
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--system") {
      system = v;
      continue;
    }
    const int n = positive_count(v);
    if (n < 1) {
      std::cerr << "fofa-bench-train: " << a << " needs a whole number >= 1, not '" << v << "'\n" << usage;
      return 2;
    }
    if (a == "--steps") steps = n;
    else thread_counts = {n};
  }
  if (system != "forward_ofa" && system != "static") {
    std::cerr << "fofa-bench-train: --system is forward_ofa or static, not " << system << "\n";
    return 2;
  }
  ModelConfig cfg;
  cfg.items = 23715;
  if (system == "static") {
    cfg.controller.enabled = false;
    cfg.mapper.mode = MapperMode::off;
  }
  // 53 items per user: 51 training items -> 50 input rows per sample.
  const auto syn = make_synthetic({.items = 23715, .users = 2048, .min_length = 53, .max_length = 53, .seed = 3});
  const SplitData data = split_leave_one_out(syn.data);
  if (profile) return gemm_profile::run(cfg, data, system, steps);
  nlohmann::json out = {{"system", system}, {"batch", 128}, {"rows_per_sequence", 50}, {"steps", steps}};
  // Every sample has 50 rows (loss on all of them: the FLOPs of the forward do not depend on t0).
  out["model_gflop_per_step"] = 128 * 3 * forward_flops(cfg, 50, TrainerOptions{}.negatives) * 1e-9;
  out["fma_peak_gflops"] = fofa::bench::selected_fma_peak_gflops();
  out["kernels"] = fofa::kernels::kernels().name;
  for (int threads : thread_counts) {
    BenchTrainer bt(cfg, data, threads);
    double cpu = 0;
    const double seconds = bt.timed_steps(steps, &cpu);
    out["fofa_threads_" + std::to_string(threads)] = 128.0 * steps / seconds;
    out["cpu_seconds_per_step_threads_" + std::to_string(threads)] = cpu / steps;
  }
  std::cout << out.dump() << "\n";
  return 0;
}
