// `fofa eval MODEL DATA [--json]`: SPEC 7 evaluation of a .fofa model on a data file's leave-one-out
// test split: HR/NDCG@5/10/20 with 100 sampled negatives and with full ranking, plus the per-request
// efficiency of the controller's choice (blocks kept, FLOPs, parameters and bytes sent to a device).
// --finetune-steps S --finetune-lr LR: SPEC 8 on-device fine-tuning of a static model (S SGD steps
// per user on the user's own history before scoring; S = 0, the default, is plain evaluation); the
// output adds the fine-tuning FLOPs per request (forward + backward, about 3x the forward, times S).
#include <iomanip>
#include <iostream>
#include <string>

#include "cli.hpp"
#include "fofa/io/model_file.hpp"
#include "fofa/model/plan.hpp"
#include "fofa/train/evaluate.hpp"
#include "fofa/train/trainer.hpp"  // TrainerOptions::kMaxThreads, the thread limit of train and eval

namespace fofa::cli {

namespace {

nlohmann::json metrics_json(const fofa::train::RankingMetrics& m) {
  return {{"hr5", m.hit_rate(5)},     {"hr10", m.hit_rate(10)},     {"hr20", m.hit_rate(20)},
          {"ndcg5", m.ndcg_at(5)}, {"ndcg10", m.ndcg_at(10)}, {"ndcg20", m.ndcg_at(20)}};
}

}  // namespace

// Options: --json, --budget B, --split test|valid, --users N (a seeded subset; 0, the default: every
// user), --seed S (negatives), --threads N (1-256, default 2), --no-full (skip full ranking, the slow
// part), --finetune-steps S (default 0), --finetune-lr LR (> 0, default 0.01) and --finetune-negatives
// K (default 1), which only apply with S >= 1.
int cmd_eval(const std::vector<std::string>& argv, std::ostream& out_stream) {
  const Args args(argv, {"--budget", "--split", "--users", "--seed", "--threads", "--finetune-steps",
                                 "--finetune-lr", "--finetune-negatives"}, {"--json", "--no-full"});
  args.expect_positional(2, "MODEL DATA");
  const std::string model_path = args.positional()[0], data_path = args.positional()[1];
  const bool json = args.flag("--json"), full = !args.flag("--no-full");
  const std::string split = args.has("--split") ? args.get("--split") : "test";
  if (split != "test" && split != "valid") throw UsageError("--split must be test or valid, got " + split);
  fofa::train::EvalOptions opt;
  opt.threads = args.count("--threads", 2, 1, train::TrainerOptions::kMaxThreads);
  opt.budget = args.number("--budget", 1.0f, kBudget);  // a float, as the model takes it
  opt.max_users = args.count<std::int64_t>("--users", 0);  // 0: every user
  opt.seed = args.count("--seed", opt.seed);
  opt.finetune.steps = args.count("--finetune-steps", 0, 0, 1000000);
  opt.finetune.negatives = args.count("--finetune-negatives", 1, 1, 1000000);
  opt.finetune.lr = args.number("--finetune-lr", opt.finetune.lr, kPositive);
  // Without --finetune-steps they would be ignored; an explicit --finetune-steps 0 (the baseline of
  // a sweep over S) may keep them.
  if (!args.has("--finetune-steps"))
    for (const char* name : {"--finetune-lr", "--finetune-negatives"})
      if (args.has(name)) throw UsageError(std::string(name) + " only applies with --finetune-steps");
  opt.finetune.validate();
  {
    using namespace fofa::train;
    std::ostream& cout = out_stream;
    const auto loaded = fofa::io::load_model(model_path);
    TrainableModel<float> model(loaded.config);
    model.load(loaded.weights);
    const SplitData data = split_leave_one_out(load_interactions(data_path));
    opt.split = split == "test" ? EvalSplit::test : EvalSplit::validation;
    opt.full_ranking = full;
    const EvalResult r = evaluate(model, data, opt);
    const auto& cfg = loaded.config;
    // Per request: parameters of the kept blocks + P + norms, and the bytes of a device file's
    // tensors: those parameters plus the embedding rows of 101 candidates and up to n history items.
    const double params = static_cast<double>(fofa::device_parameter_floats(cfg, 0)) +
                          r.blocks_kept * static_cast<double>(fofa::device_parameter_floats(cfg, 1) -
                                                              fofa::device_parameter_floats(cfg, 0));
    const double bytes = 4.0 * (params + static_cast<double>((opt.negatives + 1 + cfg.max_len) * cfg.d));
    nlohmann::json out = {
        {"model", model_path},
        {"data", data_path},
        {"split", split},
        {"users", r.users},
        {"budget", opt.budget},
        {"sampled", metrics_json(r.sampled)},
        {"blocks_kept", r.blocks_kept},
        {"flops_per_request", r.blocks_kept * cfg.block_flops()},
        {"flops_fraction", r.flops_fraction},
        {"device_parameters", params},
        {"device_bytes", bytes},
        {"block_chosen", r.block_chosen},
        {"kept_histogram", r.kept_histogram},
        {"finetune",
         {{"steps", opt.finetune.steps},
          {"lr", opt.finetune.lr},
          {"negatives", opt.finetune.negatives},
          {"mean_steps_run", r.finetune_steps},
          {"trained", "blocks and LayerNorms (item and position embeddings frozen)"}}},
        {"finetune_flops_per_request", r.finetune_flops}};
    if (full) out["full"] = metrics_json(r.full);
    if (json) {
      cout << out.dump(2) << "\n";
      return 0;
    }
    cout << std::fixed << std::setprecision(4) << model_path << " on " << data_path << " (" << split << ", "
              << r.users << " users, budget " << show(opt.budget) << ")\n";
    cout << "             HR@5    HR@10   HR@20   NDCG@5  NDCG@10 NDCG@20\n";
    auto row = [&cout](const char* name, const RankingMetrics& m) {
      cout << name << "  " << m.hit_rate(5) << "  " << m.hit_rate(10) << "  " << m.hit_rate(20) << "  "
                << m.ndcg_at(5) << "  " << m.ndcg_at(10) << "  " << m.ndcg_at(20) << "\n";
    };
    row("sampled-100", r.sampled);
    if (full) row("full       ", r.full);
    cout << std::setprecision(2) << "blocks kept " << r.blocks_kept << " of " << cfg.blocks << ", FLOPs/request "
              << std::setprecision(3) << r.blocks_kept * cfg.block_flops() / 1e6 << " M, device parameters "
              << params / 1e3 << " k, bytes sent " << bytes / 1e3 << " kB\n";
    if (opt.finetune.steps > 0)
      cout << "on-device fine-tuning: " << opt.finetune.steps << " SGD steps, lr " << std::defaultfloat
           << opt.finetune.lr << std::fixed << ", FLOPs/request " << r.finetune_flops / 1e6
           << " M (forward + backward) besides " << r.blocks_kept * cfg.block_flops() / 1e6 << " M inference\n";
    return 0;
  }
}

}  // namespace fofa::cli
