// `fofa score MODEL --history ... --candidates ... [--budget b] [--json]`: the block mask, pi
// and candidate logits. MODEL may be a whole model (adapt + score under the budget) or a device
// file (its kept blocks; --history replaces the file's history, --candidates defaults to its list).
#include <iostream>

#include "cli.hpp"

namespace fofa::cli {

namespace {

struct ScoreResult {
  std::vector<std::uint8_t> mask;
  std::vector<float> pi;
  float budget = 1.0f;
  double flops = 0, full_flops = 0;
  std::vector<std::int32_t> history, candidates;
  std::vector<float> logits;
};

void print(const ScoreResult& r, bool json, std::ostream& out) {
  const Ranking rank = make_ranking(r.candidates, r.logits);
  if (json) {
    nlohmann::json j;
    j["mask"] = r.mask;
    j["pi"] = r.pi;
    j["budget"] = r.budget;
    j["flops"] = r.flops;
    j["full_flops"] = r.full_flops;
    j["history"] = r.history;
    nlohmann::json c = nlohmann::json::array();
    for (std::size_t i = 0; i < r.candidates.size(); ++i) c.push_back({{"item", r.candidates[i]}, {"logit", r.logits[i]}});
    j["candidates"] = c;
    j["ranking"] = rank.items;
    out << j.dump(2) << "\n";
    return;
  }
  out << "mask:";
  for (auto m : r.mask) out << " " << int(m);
  index_t kept = 0;
  for (auto m : r.mask) kept += m;
  out << "   (" << kept << " of " << r.mask.size() << " blocks, budget " << r.budget << ", FLOPs " << r.flops / 1e6
      << " M of " << r.full_flops / 1e6 << " M)\n";
  out << "pi:   " << join(r.pi, 3) << "\n";
  out << "rank  item  logit\n";
  char buf[96];
  for (std::size_t i = 0; i < rank.order.size(); ++i) {
    const auto j = static_cast<std::size_t>(rank.order[i]);
    std::snprintf(buf, sizeof buf, "%4zu  %4d  %+.6f\n", i + 1, r.candidates[j], static_cast<double>(r.logits[j]));
    out << buf;
  }
}

}  // namespace

int cmd_score(const std::vector<std::string>& args, std::ostream& out) {
  const Args a(args, {"--history", "--candidates", "--budget"}, {"--json"});
  a.expect_positional(1, "one MODEL file");
  const io::FofaFile f = io::FofaFile::map(a.positional()[0]);
  ScoreResult r;
  if (f.kind() == "device") {
    if (a.has("--budget"))
      throw UsageError("--budget does not apply to a device file: its blocks were chosen at export");
    const DeviceModel dm = io::device_from_file(f);
    DeviceSession s(dm);
    if (a.has("--history")) s.reset(parse_ids(a.get("--history"), "--history"));
    r.candidates = a.has("--candidates") ? parse_candidates(a.get("--candidates"), "--candidates")
                                         : std::vector<std::int32_t>(dm.candidates().begin(), dm.candidates().end());
    const RankingView rv = s.rerank(r.candidates);
    r.logits.assign(rv.scores.begin(), rv.scores.end());
    r.history.assign(s.history().begin(), s.history().end());
    const ModelConfig& cfg = dm.config();
    r.mask.assign(static_cast<std::size_t>(cfg.blocks), 0);
    for (index_t k : dm.kept()) r.mask[static_cast<std::size_t>(k)] = 1;
    r.pi.assign(dm.pi().begin(), dm.pi().end());
    r.budget = dm.budget();
    r.flops = dm.flops();
    r.full_flops = cfg.full_flops();
  } else {
    r.history = parse_ids(a.get("--history"), "--history");
    r.candidates = parse_candidates(a.get("--candidates"), "--candidates");
    r.budget = a.number("--budget", 1.0f, kBudget);
    io::LoadedModel lm = io::model_from_file(f);
    const ForwardOfa model(lm.config, std::move(lm.weights));
    const DevicePlan plan = model.adapt(r.history, r.budget);
    r.logits = model.score(r.history, r.candidates, plan);
    r.mask = plan.mask;
    r.pi = plan.pi;
    r.flops = plan.flops;
    r.full_flops = model.config().full_flops();
  }
  print(r, a.flag("--json"), out);
  return 0;
}

}  // namespace fofa::cli
