// `fofa device-latency MODEL DATA [--budget B] [--users N] [--repeat R] [--json]`: the device side of
// SPEC 7's efficiency columns, measured on real users. For N test users (default 200; 0: all, as in
// `fofa eval`) spread evenly over the data set (history = training items + validation item, candidates = the test item + 100 sampled
// negatives, as in `fofa eval`), the cloud adapts under the budget and writes the device sub-model
// to memory; the device loads it and serves the request R times: reset(history) + rerank(101
// candidates), the same request fofa-bench-model times. Reports, per user, the median of the R
// repetitions and then the mean, p50 and p90 over users; plus cloud adapt() time and file size.
// One thread; run it on an otherwise idle machine.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

#include "cli.hpp"
#include "fofa/train/dataset.hpp"
#include "fofa/train/metrics.hpp"

namespace fofa::cli {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

}  // namespace

int cmd_device_latency(const std::vector<std::string>& argv, std::ostream& out) {
  const Args args(argv, {"--budget", "--users", "--repeat"}, {"--json"});
  args.expect_positional(2, "MODEL DATA");
  const float budget = args.number("--budget", 1.0f, kBudget);
  const std::size_t n_users = args.count<std::size_t>("--users", 200);  // 0: every user, as in fofa eval
  const std::size_t repeat = args.count<std::size_t>("--repeat", 20, 1, 1000000);

  io::LoadedModel lm = io::load_model(args.positional()[0]);
  const ForwardOfa model(lm.config, std::move(lm.weights));
  const train::SplitData data = train::split_leave_one_out(train::load_interactions(args.positional()[1]));
  FOFA_CHECK(data.items <= model.config().items, "data set has item ids up to ", data.items, " but the model knows ",
             model.config().items);
  std::vector<std::size_t> users;
  for (std::size_t u = 0; u < data.users.size(); ++u)
    if (data.users[u].evaluated()) users.push_back(u);
  FOFA_CHECK(!users.empty(), args.positional()[1], ": no user has the 3 items an evaluation needs");
  const std::size_t n = n_users == 0 ? users.size() : std::min(n_users, users.size());

  std::vector<double> request_us, adapt_us;
  double blocks = 0, file_bytes = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t u = users[i * users.size() / n];  // evenly spread, deterministic
    const train::UserSplit& s = data.users[u];
    std::vector<std::int32_t> history = s.train;
    history.push_back(s.valid);
    const auto cands = train::sampled_candidates(data, u, s.test, 42, 100);
    const std::vector<std::int32_t> candidates(cands.begin(), cands.end());

    auto t0 = std::chrono::steady_clock::now();
    const DevicePlan plan = model.adapt(history, budget);
    adapt_us.push_back(seconds_since(t0) * 1e6);
    const std::vector<std::byte> bytes = io::device_writer(model, plan, history, candidates).to_bytes();
    file_bytes += static_cast<double>(bytes.size());
    const DeviceModel dm = io::device_from_file(io::FofaFile::load_from_memory({bytes.data(), bytes.size()}));
    blocks += static_cast<double>(dm.kept().size());

    DeviceSession session(dm);
    session.reset(dm.history());
    (void)session.rerank(candidates);  // warm-up: workspace, caches
    std::vector<double> times;
    for (std::size_t r = 0; r < repeat; ++r) {
      t0 = std::chrono::steady_clock::now();
      session.reset(dm.history());
      const RankingView ranking = session.rerank(candidates);
      times.push_back(seconds_since(t0) * 1e6);
      FOFA_CHECK(ranking.items.size() == candidates.size(), "device rerank returned ", ranking.items.size(),
                 " items for ", candidates.size(), " candidates");
    }
    request_us.push_back(quantile(times, 0.5));
  }
  double mean = 0, adapt_mean = 0;
  for (double t : request_us) mean += t / static_cast<double>(n);
  for (double t : adapt_us) adapt_mean += t / static_cast<double>(n);

  const nlohmann::json result = {{"model", args.positional()[0]},
                                 {"data", args.positional()[1]},
                                 {"budget", budget},
                                 {"users", n},
                                 {"repeat", repeat},
                                 {"kernels", kernels::kernels().name},
                                 {"blocks_kept_mean", blocks / static_cast<double>(n)},
                                 {"request_us_mean", mean},
                                 {"request_us_p50", quantile(request_us, 0.5)},
                                 {"request_us_p90", quantile(request_us, 0.9)},
                                 {"adapt_us_mean", adapt_mean},
                                 {"device_file_bytes_mean", file_bytes / static_cast<double>(n)}};
  if (args.flag("--json")) {
    out << result.dump(2) << "\n";
    return 0;
  }
  out << std::fixed << std::setprecision(1) << "device request (reset + rerank of " << 101 << " candidates), "
      << n << " users, budget " << show(budget) << ", " << kernels::kernels().name << " kernels:\n"
      << "  mean " << mean << " us, p50 " << quantile(request_us, 0.5) << " us, p90 " << quantile(request_us, 0.9)
      << " us; blocks kept " << std::setprecision(2) << blocks / static_cast<double>(n) << "\n"
      << std::setprecision(1) << "  cloud adapt() mean " << adapt_mean << " us; device file "
      << file_bytes / static_cast<double>(n) / 1024.0 << " KiB on average\n";
  return 0;
}

}  // namespace fofa::cli
