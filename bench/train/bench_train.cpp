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
#include <chrono>
#include <cstring>
#include <iostream>
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

int main(int argc, char** argv) {
  int steps = 5;
  std::string system = "forward_ofa";
  std::vector<int> thread_counts = {1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--system")) system = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads")) thread_counts = {std::stoi(argv[i + 1])};
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
  nlohmann::json out = {{"system", system}, {"batch", 128}, {"rows_per_sequence", 50}, {"steps", steps}};
  // Every sample has 50 rows (loss on all of them: the FLOPs of the forward do not depend on t0).
  out["model_gflop_per_step"] = 128 * 3 * forward_flops(cfg, 50, TrainerOptions{}.negatives) * 1e-9;
  out["fma_peak_gflops"] = fofa::bench::selected_fma_peak_gflops();
  out["kernels"] = fofa::kernels::kernels().name;
  for (int threads : thread_counts) {
    TrainerOptions opt;
    opt.threads = threads;
    opt.dropout = 0.2;
    opt.progress = false;
    Trainer tr(cfg, data, opt);
    tr.step(tr.batch_samples(0, 0), 1.0);  // warm-up: arenas, page faults
    double seconds = 0, cpu = 0;
    for (int s = 1; s <= steps; ++s) {
      // Sampling is not timed (PyTorch gets its batch ready too); past one epoch (16 steps) the next.
      const auto samples = tr.batch_samples(static_cast<int>(s / tr.steps_per_epoch()), s % tr.steps_per_epoch());
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_seconds();
      tr.step(samples, 1.0);
      cpu += cpu_seconds() - c0;
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    out["fofa_threads_" + std::to_string(threads)] = 128.0 * steps / seconds;
    out["cpu_seconds_per_step_threads_" + std::to_string(threads)] = cpu / steps;
  }
  std::cout << out.dump() << "\n";
  return 0;
}
