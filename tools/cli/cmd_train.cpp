// `fofa train DATA --config CONFIG.json --out MODEL.fofa`: trains a model on an interaction file
// (either format of SPEC 9) with the SPEC 6 objective, validates every epoch with early stopping,
// reports the test metrics of SPEC 7 and writes the best model atomically.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "fofa/io/file_util.hpp"
#include "fofa/io/model_file.hpp"
#include "fofa/train/options_json.hpp"

namespace fofa::cli {

// Options (see --help): --checkpoint PATH (default MODEL.fofa.ckpt, written every epoch), --resume,
// --epochs N, --threads N, --eval-users N (validation subset, 0 = all), --quiet, --json,
// --init MODEL.fofa (warm start: every tensor of this model that MODEL also has, e.g. a trained static
// backbone under a Forward-OFA config, whose zero-initialised mapper heads then start from exactly
// that static model, SPEC 4; shapes must agree; ignored when --resume finds a checkpoint).
int cmd_train(const std::vector<std::string>& argv, std::ostream& out) {
  const Args args(argv, {"--config", "--out", "--checkpoint", "--epochs", "--threads", "--eval-users", "--init"},
                  {"--resume", "--quiet", "--json"});
  args.expect_positional(1, "DATA");
  const std::string data_path = args.positional()[0];
  const std::string config_path = args.get("--config"), out_path = args.get("--out");
  const std::string checkpoint = args.has("--checkpoint") ? args.get("--checkpoint") : out_path + ".ckpt";
  const bool resume = args.flag("--resume"), quiet = args.flag("--quiet"), json = args.flag("--json");
  {
    using namespace fofa::train;
    ExperimentConfig exp = load_experiment(config_path);
    exp.train.epochs = args.count("--epochs", exp.train.epochs, 1);
    exp.train.threads = args.count("--threads", exp.train.threads, 1, train::TrainerOptions::kMaxThreads);
    exp.train.eval_users = args.count("--eval-users", exp.train.eval_users);
    if (quiet) exp.train.progress = false;
    exp.train.progress_bar = is_terminal(2);  // progress goes to stderr
    exp.train.checkpoint = checkpoint;
    exp.train.validate();
    // Before hours of training, not after; and never over an input.
    const std::string init_path = args.has("--init") ? args.get("--init") : "";
    fofa::io::check_writable(out_path, {data_path, config_path, init_path});
    fofa::io::check_writable(checkpoint, {data_path, config_path, init_path});
    FOFA_CHECK(!fofa::io::same_file(out_path, checkpoint),
               "--checkpoint ", checkpoint, " is the model file --out ", out_path, " itself");
    std::ostream& said = report_to(out_path, out);

    const InteractionData raw = load_interactions(data_path);
    const SplitData data = split_leave_one_out(raw);
    const fofa::ModelConfig cfg = model_config_for(exp.model, raw.items);
    std::cerr << "data " << data_path << ": " << raw.users.size() << " users, " << raw.items << " items, "
              << raw.actions() << " actions\n";
    Trainer trainer(cfg, data, exp.train);
    nlohmann::json init_report = nullptr;
    const bool resuming = resume && std::filesystem::exists(exp.train.checkpoint);
    if (resume && !resuming)
      std::cerr << "no checkpoint " << exp.train.checkpoint << " yet: --resume starts from the beginning\n";
    if (resuming) {
      trainer.resume(exp.train.checkpoint);
      std::cerr << "resumed from " << exp.train.checkpoint << " after epoch " << trainer.epochs_done() << "\n";
      if (trainer.finished())
        std::cerr << "its run is complete (" << (trainer.epochs_done() >= exp.train.epochs ? "all epochs run" : "stopped early")
                  << "): nothing more to train; writing its best model\n";
    } else if (args.has("--init")) {
      const fofa::io::LoadedModel init = fofa::io::load_model(init_path);
      fofa::ModelWeights w = trainer.model().weights();
      std::vector<std::string> copied, kept, ignored;
      for (const auto& [name, t] : w.tensors()) {
        if (!init.weights.contains(name)) {
          kept.push_back(name);
          continue;
        }
        try {
          w.set(name, init.weights.get(name, t.shape()));
        } catch (const fofa::Error& e) {
          throw fofa::Error(std::string("--init ") + init_path + ": " + e.what());
        }
        copied.push_back(name);
      }
      for (const auto& [name, t] : init.weights.tensors())
        if (!w.contains(name)) ignored.push_back(name);
      if (copied.empty()) throw fofa::Error("--init " + init_path + ": it shares no tensor with this configuration");
      trainer.model().load(w);
      std::cerr << "initialised " << copied.size() << " tensors from " << init_path << "; " << kept.size()
                << " keep their initialisation";
      if (!ignored.empty()) std::cerr << "; " << ignored.size() << " of its tensors are not in this model";
      std::cerr << "\n";
      init_report = {{"model", init_path}, {"copied", copied.size()}, {"kept_init", kept}, {"ignored", ignored}};
    }
    const bool early = trainer.fit(&std::cerr);
    const EvalResult test = evaluate(trainer.model(), data,
                                     {.split = EvalSplit::test, .negatives = exp.train.eval_negatives,
                                      .seed = exp.train.seed, .budget = exp.train.eval_budget,
                                      .threads = exp.train.threads});
    nlohmann::json hist = nlohmann::json::array();
    for (const auto& r : trainer.history()) hist.push_back(to_json(r));
    nlohmann::json report = {
        {"data", data_path},
        {"epochs_run", trainer.epochs_done()},
        {"best_epoch", trainer.best_epoch()},
        {"early_stopped", early},
        {"valid_ndcg10", trainer.best_ndcg10()},
        {"test", {{"hr5", test.sampled.hit_rate(5)}, {"hr10", test.sampled.hit_rate(10)},
                  {"hr20", test.sampled.hit_rate(20)}, {"ndcg5", test.sampled.ndcg_at(5)},
                  {"ndcg10", test.sampled.ndcg_at(10)}, {"ndcg20", test.sampled.ndcg_at(20)},
                  {"users", test.users}, {"blocks_kept", test.blocks_kept}}},
        {"train_options", to_json(exp.train)},
        {"init", init_report},
        {"history", hist}};
    const std::size_t bytes = fofa::io::save_model(out_path, cfg, trainer.model().weights(), {{"training", report}});
    if (json) {
      said << report.dump(2) << "\n";
    } else {
      said << "test (" << test.users << " users, " << exp.train.eval_negatives << " sampled negatives): HR@10 "
           << std::fixed << std::setprecision(4) << test.sampled.hit_rate(10) << "  NDCG@10 "
           << test.sampled.ndcg_at(10) << "  blocks kept " << std::setprecision(2) << test.blocks_kept
           << std::defaultfloat << "\n"
           << "wrote " << out_path << " (" << bytes << " bytes, best epoch " << trainer.best_epoch() << ")\n";
    }
    return 0;
  }
}

}  // namespace fofa::cli
