// `fofa info MODEL [--json]`: what a .fofa file holds, after validating all of it (checksum,
// tensor table, configuration, weights or device sub-model).
#include <iostream>

#include "cli.hpp"

namespace fofa::cli {

namespace {

index_t floats_with_prefix(const io::FofaFile& f, const std::string& prefix) {
  index_t n = 0;
  for (const auto& t : f.tensors())
    if (t.name.rfind(prefix, 0) == 0) n += t.shape.numel();
  return n;
}

// A training checkpoint (`fofa train` writes MODEL.fofa.ckpt every epoch): a model file whose
// weights come with Adam's moments ("optim.m.", "optim.v.") and the best weights so far ("best."),
// so it is read by `fofa train --resume`, not loaded as a model.
bool is_checkpoint(const io::FofaFile& f) {
  return f.kind() == "model" && f.meta().contains("checkpoint") && f.meta()["checkpoint"].is_object();
}

nlohmann::json describe(const io::FofaFile& f, const std::string& path) {
  nlohmann::json j;
  j["path"] = path;
  j["kind"] = f.kind();
  j["format_version"] = io::kFofaVersion;
  j["file_bytes"] = f.file_bytes();
  j["header_bytes"] = f.header_bytes();
  j["tensors"] = f.tensors().size();
  index_t total = 0;
  for (const auto& t : f.tensors()) total += t.shape.numel();
  j["parameters"] = total;
  j["config"] = f.config();
  j["meta"] = f.meta();
  if (is_checkpoint(f)) {
    const nlohmann::json& c = f.meta()["checkpoint"];
    j["checkpoint"] = {{"epoch", c.value("epoch", 0)},           {"best_epoch", c.value("best_epoch", 0)},
                       {"best_ndcg10", c.value("best_ndcg10", 0.0)}, {"adam_steps", c.value("adam_steps", 0LL)},
                       {"data", c.value("data", nlohmann::json())}};
  } else if (f.kind() == "model") {
    const io::LoadedModel m = io::model_from_file(f);  // full validation of the weights
    j["parameters_by_part"] = {{"embeddings", floats_with_prefix(f, "item_emb.") + floats_with_prefix(f, "pos_emb.")},
                               {"blocks", floats_with_prefix(f, "blocks.")},
                               {"controller", floats_with_prefix(f, "controller.")},
                               {"mapper", floats_with_prefix(f, "mapper.")}};
    j["full_flops"] = m.config.full_flops();
  } else {
    const DeviceModel dm = io::device_from_file(f);  // full validation of the sub-model
    j["device"] = f.header()["device"];
    j["device"].erase("block_layout");
    j["device"]["items"] = dm.item_ids().size();
    j["device"]["history"] = std::vector<std::int32_t>(dm.history().begin(), dm.history().end());
    j["device"]["candidates"] = dm.candidates().size();
    j["device"]["session_bytes"] = dm.session_bytes();
  }
  return j;
}

}  // namespace

int cmd_info(const std::vector<std::string>& args, std::ostream& out) {
  const Args a(args, {}, {"--json"});
  a.expect_positional(1, "one MODEL file");
  const std::string& path = a.positional()[0];
  const io::FofaFile f = io::FofaFile::map(path);
  const nlohmann::json j = describe(f, path);
  if (a.flag("--json")) {
    out << j.dump(2) << "\n";
    return 0;
  }
  const ModelConfig cfg = io::config_from_json(f.config());
  out << path << ": fofa " << f.kind() << " file (format " << io::kFofaVersion << "), "
      << human_bytes(static_cast<double>(f.file_bytes())) << ", header " << f.header_bytes() << " bytes (preamble + JSON), "
      << f.tensors().size() << " tensors, " << j["parameters"].get<index_t>() << " parameters\n";
  out << "config: items " << cfg.items << ", d " << cfg.d << ", heads " << cfg.heads << ", blocks " << cfg.blocks
      << ", max_len " << cfg.max_len << ", ffn " << cfg.ffn << ", " << to_string(cfg.activation) << ", norm "
      << to_string(cfg.norm) << ", positions " << to_string(cfg.positions) << ", padding " << to_string(cfg.padding)
      << "\n        controller " << (cfg.controller.enabled ? to_string(cfg.controller.extractor) : "off")
      << ", mapper " << to_string(cfg.mapper.mode);
  if (cfg.mapper.mode == MapperMode::lowrank) out << " (rank " << cfg.mapper.rank << ")";
  out << "\n";
  if (j.contains("checkpoint")) {
    const auto& c = j["checkpoint"];
    out << "training checkpoint after epoch " << c["epoch"] << " (best epoch " << c["best_epoch"]
        << ", valid NDCG@10 " << c["best_ndcg10"] << ", Adam step " << c["adam_steps"]
        << "): weights, Adam moments and best weights; `fofa train --resume` continues from it\n";
  } else if (f.kind() == "model") {
    const auto& p = j["parameters_by_part"];
    out << "parameters: embeddings " << p["embeddings"] << ", blocks " << p["blocks"] << ", controller "
        << p["controller"] << ", mapper " << p["mapper"] << "\n";
    out << "full model FLOPs per request: " << cfg.full_flops() / 1e6 << " M\n";
  } else {
    const auto& dj = j["device"];
    out << "device: kept blocks";
    for (const auto& k : dj["kept"]) out << " " << k.get<index_t>();
    out << " of " << cfg.blocks << " (budget " << dj["budget"].get<double>() << "), FLOPs "
        << dj["flops"].get<double>() / 1e6 << " M of " << cfg.full_flops() / 1e6 << " M\n";
    if (!dj["pi"].empty()) {
      std::vector<float> pi;
      for (const auto& p : dj["pi"]) pi.push_back(p.get<float>());
      out << "pi: " << join(pi, 3) << "\n";
    }
    out << "items: " << dj["items"] << " embedding rows, history " << dj["history"].size() << " items, "
        << dj["candidates"] << " candidates; session memory " << human_bytes(dj["session_bytes"].get<double>())
        << "\n";
  }
  if (!f.meta().empty()) out << "meta: " << f.meta().dump() << "\n";
  return 0;
}

}  // namespace fofa::cli
