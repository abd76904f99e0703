// Session simulation: several users, each at several budgets, through the whole Forward-OFA
// protocol. Cloud: adapt(history, budget) and export the device file; device: load it, rerank
// 101 cached candidates, then three clicks with push(). Prints blocks kept, FLOPs, bytes shipped,
// device latency and the top-10 per session.
//   fofa-example-session_simulation [MODEL.fofa]   (default: a seeded random model, SPEC config)
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <fofa/fofa.hpp>

namespace {

using Clock = std::chrono::steady_clock;

double micros_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

std::vector<std::int32_t> draw_ids(fofa::SeededNormal& rng, std::size_t n, fofa::index_t items) {
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = static_cast<std::int32_t>(1 + rng.next_u64() % static_cast<std::uint64_t>(items));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fofa::ModelConfig cfg;
    fofa::ModelWeights weights;
    if (argc > 1) {
      fofa::io::LoadedModel m = fofa::io::load_model(argv[1]);
      cfg = m.config;
      weights = std::move(m.weights);
    } else {
      cfg.items = 5000;  // SPEC defaults otherwise: d 64, 2 heads, 6 blocks, n 50
      fofa::InitOptions opt;
      opt.mapper_scale = 0.05f;
      opt.controller_head_bias = 4.0f;  // untrained: keep every block unless the budget says otherwise
      weights = fofa::random_weights(cfg, 42, opt);
    }
    const fofa::ForwardOfa cloud(cfg, std::move(weights));
    const std::filesystem::path dir = std::filesystem::temp_directory_path();
    fofa::SeededNormal rng(7);

    std::printf("%-4s %-6s %-6s %-9s %-10s %-10s %-9s  %s\n", "user", "budget", "blocks", "MFLOPs", "shipped",
                "rerank_us", "push_us", "top-10 after 3 clicks");
    for (int user = 0; user < 4; ++user) {
      const auto history = draw_ids(rng, 5 + rng.next_u64() % 60, cfg.items);  // 5..64 clicks so far
      const auto candidates = draw_ids(rng, 101, cfg.items);
      for (float budget : {1.0f, 0.5f, 0.2f}) {
        // Cloud: one forward pass decides blocks and parameters; ship the sub-model.
        const fofa::DevicePlan plan = cloud.adapt(history, budget);
        const std::filesystem::path file = dir / ("fofa-sim-" + std::to_string(user) + ".fofa");
        const std::size_t shipped = fofa::io::export_device(cloud, plan, history, candidates, file);

        // Device: load, rerank the cached candidates, then three clicks.
        const fofa::DeviceModel device = fofa::io::load_device(file);
        fofa::DeviceSession session(device);
        auto t0 = Clock::now();
        session.reset(device.history());
        fofa::RankingView r = session.rerank();
        const double rerank_us = micros_since(t0);
        double push_us = 0;
        for (int click = 0; click < 3; ++click) {
          const std::int32_t item = r.items[static_cast<std::size_t>(click + 1)];  // not always the top one
          t0 = Clock::now();
          session.push(item);
          r = session.rerank();
          push_us += micros_since(t0) / 3;
        }
        std::string top;
        for (std::size_t i = 0; i < 10 && i < r.items.size(); ++i) top += std::to_string(r.items[i]) + " ";
        std::printf("%-4d %-6.1f %zu/%-4lld %-9.2f %-10s %-10.1f %-9.1f  %s\n", user, static_cast<double>(budget),
                    plan.kept().size(), static_cast<long long>(cfg.blocks), plan.flops / 1e6,
                    (std::to_string(shipped / 1024) + " KB").c_str(), rerank_us, push_us, top.c_str());
        std::filesystem::remove(file);
      }
    }
  } catch (const fofa::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
