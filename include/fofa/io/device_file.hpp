// fofa/io/device_file.hpp — device files (.fofa kind "device"): export_device writes the
// sub-model of one session (SPEC section 5), load_device maps one and builds a DeviceModel.
//
// A device file holds ONLY (docs/DESIGN.md, "Device files"):
//   pos_emb.weight [n, d]; final_ln.weight/.bias [d] (if final_ln); input_ln.* (if input_ln);
//   blocks.k [P] for each kept block k: its tensors concatenated in device_block_layout order,
//     the FFN being the user's materialised W1, b1, W2, b2 and gate;
//   items.ids i32 [m] (ascending) and items.emb [m, d]: embedding rows of the session's
//     candidates and history items; session.history i32 [t]; session.candidates i32 [c].
// and the header's "device" object: kept, budget, pi, flops, full_flops, block_layout.
// The loader refuses missing or unexpected tensors, a layout other than this build's, and every
// check DeviceModel makes (ids, shapes, non-finite weights) with a message naming the problem.
#pragma once

#include <algorithm>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fofa/io/config_json.hpp"
#include "fofa/io/fofa_file.hpp"
#include "fofa/model/device_model.hpp"
#include "fofa/model/forward_ofa.hpp"

namespace fofa::io {

inline nlohmann::json device_layout_json(const ModelConfig& cfg) {
  nlohmann::json j = nlohmann::json::array();
  for (const TensorSpec& s : device_block_layout(cfg)) {
    nlohmann::json shape = nlohmann::json::array();
    for (index_t v : s.shape) shape.push_back(v);
    j.push_back({s.name, shape});
  }
  return j;
}

// The .fofa image of the device sub-model for `plan` (from model.adapt or static_plan), the
// session `history` (its newest max_len items are kept) and the cloud's `candidates`.
// Refused (fofa::Error, nothing written): an empty history or candidate list (a device file
// ranks at least one candidate), bad ids or plan, and a session the device could not score:
// the plan's user state and the candidates' logits are computed here and must be finite.
// Duplicate candidates are kept as given (the device scores them independently).
template <class D, class F>
FofaWriter device_writer(const ForwardOfaT<D, F>& model, const DevicePlan& plan, std::span<const std::int32_t> history,
                         std::span<const std::int32_t> candidates,
                         const nlohmann::json& meta = nlohmann::json::object()) {
  const ModelConfig& cfg = model.config();
  const index_t L = cfg.blocks, d = cfg.d;
  FOFA_CHECK(!history.empty(), "export_device: empty history: SASRec needs at least one item");
  model.backbone().check_items(history, "history");
  model.backbone().check_items(candidates, "candidate");
  FOFA_CHECK(!candidates.empty(), "export_device: empty candidate list: a device file ranks at least one candidate");
  check_budget(plan.budget);
  FOFA_CHECK(static_cast<index_t>(plan.mask.size()) == L, "export_device: plan mask has ", plan.mask.size(),
             " entries for ", L, " blocks");
  const auto window = newest_window(history, cfg.max_len);

  std::vector<std::int32_t> ids(window.begin(), window.end());
  ids.insert(ids.end(), candidates.begin(), candidates.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const Tensor<float>& E = model.weights().get("item_emb.weight");
  Tensor<std::int32_t> item_ids({static_cast<index_t>(ids.size())});
  Tensor<float> item_emb({static_cast<index_t>(ids.size()), d});
  for (std::size_t i = 0; i < ids.size(); ++i) {
    item_ids[static_cast<index_t>(i)] = ids[i];
    std::memcpy(item_emb.data() + static_cast<index_t>(i) * d, E.data() + static_cast<index_t>(ids[i]) * d,
                static_cast<std::size_t>(d) * sizeof(float));
  }

  FofaWriter w("device");
  w.config(config_to_json(cfg)).meta(meta);
  w.add("pos_emb.weight", model.weights().get("pos_emb.weight"));
  for (const char* ln : {"input_ln", "final_ln"}) {
    if ((std::string(ln) == "input_ln" && !cfg.input_ln) || (std::string(ln) == "final_ln" && !cfg.final_ln)) continue;
    w.add(std::string(ln) + ".weight", model.weights().get(std::string(ln) + ".weight"));
    w.add(std::string(ln) + ".bias", model.weights().get(std::string(ln) + ".bias"));
  }

  const std::vector<TensorSpec> layout = device_block_layout(cfg);
  const index_t P = device_block_floats(cfg);
  nlohmann::json kept = nlohmann::json::array();
  std::size_t next = 0;
  for (index_t k = 0; k < L; ++k) {
    if (!plan.mask[static_cast<std::size_t>(k)]) continue;
    FOFA_CHECK(next < plan.ffn.size() && plan.ffn[next].block == k, "export_device: plan has no FFN for kept block ",
               k);
    const BlockFfnWeights& ffn = plan.ffn[next++];
    Tensor<float> packed({P});
    float* p = packed.data();
    for (const TensorSpec& s : layout) {
      const Tensor<float>* src = nullptr;
      if (s.name == "ffn.w1.weight") src = &ffn.w1;
      else if (s.name == "ffn.w1.bias") src = &ffn.b1;
      else if (s.name == "ffn.w2.weight") src = &ffn.w2;
      else if (s.name == "ffn.w2.bias") src = &ffn.b2;
      else if (s.name == "ffn.gate") src = &ffn.gate;
      else src = &model.weights().get(block_name(k, s.name.c_str()));
      check_shape(("export_device: block " + std::to_string(k) + " " + s.name).c_str(), src->shape(), s.shape);
      std::memcpy(p, src->data(), src->bytes());
      p += s.shape.numel();
    }
    w.add("blocks." + std::to_string(k), packed);
    kept.push_back(k);
  }
  FOFA_CHECK(next == plan.ffn.size(), "export_device: plan has ", plan.ffn.size(), " FFN entries for ", next,
             " kept blocks");
  FOFA_CHECK(next > 0 || cfg.controller.min_blocks == 0, "export_device: the plan keeps no block");
  model.score(history, candidates, plan);  // throws on a non-finite user state or logit, as the device would

  w.add("items.ids", item_ids).add("items.emb", item_emb);
  w.add("session.history", Tensor<std::int32_t>::from(
                               TensorView<const std::int32_t>(window.data(), {static_cast<index_t>(window.size())})));
  w.add("session.candidates",
        Tensor<std::int32_t>::from(
            TensorView<const std::int32_t>(candidates.data(), {static_cast<index_t>(candidates.size())})));
  nlohmann::json pi = nlohmann::json::array();
  for (float v : plan.pi) pi.push_back(v);
  w.extra("device", {{"kept", kept},
                     {"budget", plan.budget},
                     {"pi", pi},
                     {"flops", plan.flops},
                     {"full_flops", cfg.full_flops()},
                     {"block_layout", device_layout_json(cfg)}});
  return w;
}

// Writes the device file atomically; returns its size in bytes.
template <class D, class F>
std::size_t export_device(const ForwardOfaT<D, F>& model, const DevicePlan& plan, std::span<const std::int32_t> history,
                          std::span<const std::int32_t> candidates, const std::filesystem::path& path,
                          const nlohmann::json& meta = nlohmann::json::object()) {
  return device_writer(model, plan, history, candidates, meta).write(path);
}

// A DeviceModel over a validated device file (the model keeps the file's storage alive).
template <class D = Extent<>, class F = Extent<>>
DeviceModelT<D, F> device_from_file(const FofaFile& file) {
  const std::string& src = file.source();
  FOFA_CHECK(file.kind() == "device", src, ": kind is \"", file.kind(), "\", expected a device file (\"device\")");
  auto rethrow = [&](const Error& e) { throw Error(std::string(e.what()) + " (in " + src + ")"); };
  ModelConfig cfg;
  try {
    cfg = config_from_json(file.config());
  } catch (const Error& e) {
    rethrow(e);
  }
  const nlohmann::json& h = file.header();
  FOFA_CHECK(h.contains("device") && h["device"].is_object(), src, ": header has no \"device\" object");
  const nlohmann::json& dj = h["device"];
  FOFA_CHECK(dj.contains("block_layout") && dj["block_layout"] == device_layout_json(cfg), src,
             ": device.block_layout differs from this build's layout (written by another fofa version?)");
  FOFA_CHECK(dj.contains("budget") && dj["budget"].is_number(), src, ": device.budget is missing or not a number");
  FOFA_CHECK(dj.contains("kept") && dj["kept"].is_array(), src, ": device.kept is missing or not an array");
  DeviceContents c;
  c.config = cfg;
  c.budget = dj["budget"].get<float>();
  for (const auto& k : dj["kept"]) {
    FOFA_CHECK(k.is_number_unsigned(), src, ": device.kept entry ", k.dump(), " is not a block index");
    c.kept.push_back(k.get<index_t>());
  }
  if (dj.contains("pi")) {
    FOFA_CHECK(dj["pi"].is_array(), src, ": device.pi is not an array");
    for (const auto& p : dj["pi"]) {
      FOFA_CHECK(p.is_number(), src, ": device.pi entry ", p.dump(), " is not a number");
      c.pi.push_back(p.get<float>());
    }
  }

  // Exactly the tensors of SPEC section 5: nothing missing, nothing extra.
  std::vector<std::string> expected = {"pos_emb.weight", "items.ids", "items.emb", "session.history",
                                       "session.candidates"};
  if (cfg.final_ln) expected.insert(expected.end(), {"final_ln.weight", "final_ln.bias"});
  if (cfg.input_ln) expected.insert(expected.end(), {"input_ln.weight", "input_ln.bias"});
  for (index_t k : c.kept) {
    FOFA_CHECK(k < cfg.blocks, src, ": device.kept block ", k, " outside [0, ", cfg.blocks, ")");
    expected.push_back("blocks." + std::to_string(k));
  }
  for (const TensorInfo& t : file.tensors())
    FOFA_CHECK(std::find(expected.begin(), expected.end(), t.name) != expected.end(), src, ": unexpected tensor \"",
               t.name, "\" in a device file");
  try {
    const index_t d = cfg.d;
    c.pos_emb = file.f32("pos_emb.weight");
    if (cfg.final_ln) {
      c.final_ln_weight = file.f32("final_ln.weight", {d});
      c.final_ln_bias = file.f32("final_ln.bias", {d});
    }
    if (cfg.input_ln) {
      c.input_ln_weight = file.f32("input_ln.weight", {d});
      c.input_ln_bias = file.f32("input_ln.bias", {d});
    }
    for (index_t k : c.kept) c.blocks.push_back(file.f32("blocks." + std::to_string(k)));
    c.item_ids = file.i32("items.ids");
    c.item_emb = file.f32("items.emb");
    c.history = file.i32("session.history");
    c.candidates = file.i32("session.candidates");
    c.storage = std::make_shared<const FofaFile>(file);
    return DeviceModelT<D, F>(c);
  } catch (const Error& e) {
    rethrow(e);
  }
  return {};  // unreachable: rethrow throws
}

// Maps a device file and builds its DeviceModel.
template <class D = Extent<>, class F = Extent<>>
DeviceModelT<D, F> load_device(const std::filesystem::path& path) {
  return device_from_file<D, F>(FofaFile::map(path));
}

}  // namespace fofa::io
