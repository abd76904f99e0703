// `fofa export-device MODEL --history ... --candidates ... --budget b OUT`: adapt() for the
// history under the budget and write the device sub-model (SPEC section 5) atomically to OUT.
#include <iostream>

#include "cli.hpp"

namespace fofa::cli {

int cmd_export_device(const std::vector<std::string>& args, std::ostream& out) {
  const Args a(args, {"--history", "--candidates", "--budget"}, {"--json"});
  a.expect_positional(2, "MODEL and OUT");
  io::check_writable(a.positional()[1], {a.positional()[0]});
  std::ostream& report = report_to(a.positional()[1], out);
  const std::vector<std::int32_t> history = parse_ids(a.get("--history"), "--history");
  const std::vector<std::int32_t> candidates = parse_candidates(a.get("--candidates"), "--candidates");
  const float budget = parse_number<float>(a.get("--budget"), "--budget", kBudget);
  io::LoadedModel lm = io::load_model(a.positional()[0]);
  const ForwardOfa model(lm.config, std::move(lm.weights));
  const DevicePlan plan = model.adapt(history, budget);
  const std::string& path = a.positional()[1];
  const std::size_t bytes = io::export_device(model, plan, history, candidates, path,
                                              {{"source", a.positional()[0]}});
  const std::vector<index_t> kept = plan.kept();
  if (a.flag("--json")) {
    report << nlohmann::json{{"path", path}, {"bytes", bytes}, {"kept", kept}, {"pi", plan.pi}, {"flops", plan.flops},
                             {"full_flops", model.config().full_flops()}}
                  .dump(2)
           << "\n";
    return 0;
  }
  report << "wrote " << path << ": " << bytes << " bytes (" << human_bytes(static_cast<double>(bytes)) << "), kept blocks";
  for (index_t k : kept) report << " " << k;
  report << " of " << model.config().blocks << ", FLOPs " << plan.flops / 1e6 << " M of "
         << model.config().full_flops() / 1e6 << " M\n";
  return 0;
}

}  // namespace fofa::cli
