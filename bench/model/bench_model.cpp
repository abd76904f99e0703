// fofa-bench-model — device-side latency of Forward-OFA at the SPEC default configuration
// (L = 6, d = 64, H = 2, n = 50, f = 256; 100 candidates, a 50-item history), one thread:
//   device_request/<budget%>  reset(history) + rerank(100 candidates) on the exported sub-model
//   device_rerank             rerank(100) with a cached user state
//   device_push/<t>/<budget%> push() one click into a window of t items (cached K/V) [+ rerank]
//   cloud_adapt/<budget%>     ForwardOfa::adapt (controller + mapper + materialised FFNs)
//   cloud_score/<budget%>     the full model scoring under the same plan (for reference)
// Weights are random from a seed; the controller head bias is large so the budget decides.
// --dump=DIR writes DIR/model.fofa and DIR/session.json (history, candidates, fofa's logits per
// budget, device file sizes) so compare_torch.py can time PyTorch on the same weights.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fofa/fofa.hpp>

#include "fma_peaks.hpp"

namespace {

constexpr std::uint64_t kSeed = 2025;
constexpr float kBudgets[] = {1.0f, 0.5f, 0.2f};

struct Setup {
  fofa::ModelConfig cfg;
  std::unique_ptr<fofa::ForwardOfa> model;
  std::vector<std::int32_t> history, candidates;

  Setup() {
    cfg.items = 5000;  // SPEC defaults for everything else
    fofa::InitOptions opt;
    opt.mapper_scale = 0.05f;
    opt.controller_head_bias = 4.0f;
    model = std::make_unique<fofa::ForwardOfa>(cfg, fofa::random_weights(cfg, kSeed, opt));
    fofa::SeededNormal rng(kSeed + 1);
    for (int i = 0; i < 50; ++i) history.push_back(static_cast<std::int32_t>(1 + rng.next_u64() % 5000));
    for (int i = 0; i < 100; ++i) candidates.push_back(static_cast<std::int32_t>(1 + rng.next_u64() % 5000));
  }
  std::vector<std::byte> device_file(float budget) const {
    return fofa::io::device_writer(*model, model->adapt(history, budget), history, candidates).to_bytes();
  }
};

const Setup& setup() {
  static const Setup s;
  return s;
}

fofa::DeviceModel device_model(const std::vector<std::byte>& bytes) {
  return fofa::io::device_from_file(fofa::io::FofaFile::load_from_memory({bytes.data(), bytes.size()}));
}

float budget_of(const benchmark::State& state) { return static_cast<float>(state.range(0)) / 100.0f; }

void device_request(benchmark::State& state) {
  const Setup& s = setup();
  const auto bytes = s.device_file(budget_of(state));
  const fofa::DeviceModel dm = device_model(bytes);
  fofa::DeviceSession session(dm);
  for (auto _ : state) {
    session.reset(s.history);
    const fofa::RankingView r = session.rerank(s.candidates);
    benchmark::DoNotOptimize(r.items.data());
  }
  state.counters["blocks"] = static_cast<double>(dm.kept().size());
  state.counters["MFLOPs"] = dm.flops() / 1e6;
  state.counters["file_KB"] = static_cast<double>(bytes.size()) / 1024.0;
  state.counters["session_KB"] = static_cast<double>(dm.session_bytes()) / 1024.0;
}

void device_rerank(benchmark::State& state) {
  const Setup& s = setup();
  const auto bytes = s.device_file(1.0f);
  fofa::DeviceSession session(device_model(bytes));
  for (auto _ : state) {
    const fofa::RankingView r = session.rerank(s.candidates);
    benchmark::DoNotOptimize(r.items.data());
  }
}

// One push into a window of t items (t < n: cached K/V, one new row per kept block); the
// reset that restores the window is outside the measured time.
void device_push(benchmark::State& state, bool with_rerank) {
  const Setup& s = setup();
  const auto bytes = s.device_file(static_cast<float>(state.range(1)) / 100.0f);
  fofa::DeviceSession session(device_model(bytes));
  const std::size_t t = static_cast<std::size_t>(state.range(0));
  const std::span<const std::int32_t> window(s.history.data(), t);
  for (auto _ : state) {
    session.reset(window);
    const auto t0 = std::chrono::steady_clock::now();
    session.push(s.candidates[0]);
    if (with_rerank) benchmark::DoNotOptimize(session.rerank(s.candidates).items.data());
    benchmark::DoNotOptimize(session.user_state().data());
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["rows"] = static_cast<double>(session.last_update_rows());
}

void cloud_adapt(benchmark::State& state) {
  const Setup& s = setup();
  const float b = budget_of(state);
  for (auto _ : state) {
    const fofa::DevicePlan plan = s.model->adapt(s.history, b);
    benchmark::DoNotOptimize(plan.mask.data());
  }
}

void cloud_score(benchmark::State& state) {
  const Setup& s = setup();
  const auto prepared = s.model->prepare(s.model->adapt(s.history, budget_of(state)));
  fofa::Workspace ws(s.model->workspace_plan());
  std::vector<float> out(s.candidates.size());
  for (auto _ : state) {
    s.model->score(prepared, s.history, s.candidates, out, ws);
    benchmark::DoNotOptimize(out.data());
  }
}

// Writes the model, inputs and fofa's logits for compare_torch.py.
void dump(const std::filesystem::path& dir) {
  const Setup& s = setup();
  std::filesystem::create_directories(dir);
  fofa::io::save_model(dir / "model.fofa", s.cfg, s.model->weights(), {{"seed", kSeed}});
  nlohmann::json j;
  j["history"] = s.history;
  j["candidates"] = s.candidates;
  j["kernels"] = fofa::kernels::kernels().name;
  j["fma_peak_gflops"] = fofa::bench::selected_fma_peak_gflops();  // one core, the selected kernels
  for (float b : kBudgets) {
    const auto bytes = s.device_file(b);
    fofa::DeviceSession session(device_model(bytes));
    const fofa::RankingView r = session.rerank(s.candidates);
    const std::string key = std::to_string(static_cast<int>(b * 100));
    j["budgets"][key] = {{"budget", b},
                         {"logits", std::vector<float>(r.scores.begin(), r.scores.end())},
                         {"kept", std::vector<fofa::index_t>(session.model().kept().begin(), session.model().kept().end())},
                         {"device_file_bytes", bytes.size()},
                         {"session_bytes", session.model().session_bytes()}};
  }
  std::ofstream(dir / "session.json") << j.dump(1);
}

}  // namespace

BENCHMARK(device_request)->Arg(100)->Arg(50)->Arg(20)->Unit(benchmark::kMicrosecond);
BENCHMARK(device_rerank)->Unit(benchmark::kMicrosecond);
// Args: window length before the push, budget in percent.
BENCHMARK_CAPTURE(device_push, push, false)
    ->Args({10, 100})->Args({49, 100})->Args({49, 50})->Args({49, 20})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(device_push, push_rerank, true)->Args({49, 100})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(cloud_adapt)->Arg(100)->Arg(50)->Arg(20)->Unit(benchmark::kMicrosecond);
BENCHMARK(cloud_score)->Arg(100)->Arg(50)->Arg(20)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  // Our own flag first (Google Benchmark rejects unknown --flags).
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--dump=", 7) == 0) {
      dump(argv[i] + 7);
      continue;
    }
    rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  std::fprintf(stderr, "fofa kernels: %s\n", fofa::kernels::kernels().name);
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
