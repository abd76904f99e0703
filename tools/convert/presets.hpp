// tools/convert/presets.hpp — declarative mappings from a source state dict onto fofa's tensors.
//
// A preset (built in: tools/convert/presets/*.json; or a user's JSON file with the same schema)
// says which configuration fields the source layout fixes, how to infer the dimensions from
// tensor shapes, and which source tensor (with which transform) becomes each fofa tensor:
//   {"name": "...", "description": "...",
//    "config": {"norm": "query_only", "activation": "relu", ...},        fixed by the layout
//    "vars": [{"name": "d", "dim": ["item_emb.weight", 1]},             shape of a tensor
//             {"name": "items", "dim": ["item_emb.weight", 0], "add": -1},
//             {"name": "blocks", "count": "attention_layers.{k}.in_proj_weight"},  k = 0, 1, ...
//             {"name": "pos_first", "zero_row": "pos_emb.weight"},      1 if row 0 is all zero
//             {"name": "max_len", "expr": "pos_rows - pos_first"}],     + - * of ints and vars
//    "tensors": [{"to": "blocks.{k}.attn.q.weight", "from": "attention_layers.{k}.in_proj_weight",
//                 "rows": ["0", "d"]},                                  slice of dim 0
//                {"to": "blocks.{k}.ffn.w1.weight", "from": "...conv1.weight", "squeeze": 2},
//                {"to": "...", "from": "...", "transpose": true},     2-D transpose
//                {"to": "...", "from": "...", "optional": true}],     skipped when the source is absent
//    "ignore": ["pattern", ...]}                                        unused but not reported
// "{k}" expands over the blocks. The vars d, items, blocks, max_len, ffn become the config; heads
// cannot be inferred from weights and must be given. The result is validated against
// expected_tensors(config) (names, shapes, finite values) before anything is written, and every
// source tensor that was neither used nor ignored is reported as a leftover.
// The preset "fofa" ({"infer": "fofa"}) reads fofa's own names (tools/convert/fofa_torch.py):
// every tensor passes through and the structure (input_ln, final_ln, controller, mapper) is
// inferred from which tensors are present.
#pragma once

#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fofa/io/config_json.hpp"
#include "fofa/model/weights.hpp"
#include "torch_checkpoint.hpp"

namespace fofa::convert {

struct ConvertOptions {
  std::optional<index_t> heads;
  std::optional<index_t> max_len;
  nlohmann::json overrides = nlohmann::json::object();  // --set key=value (config fields)
};

struct Conversion {
  ModelConfig config;
  ModelWeights weights;
  std::map<std::string, index_t> vars;    // every inferred variable, for the report
  std::vector<std::string> leftovers;     // source tensors neither used nor ignored ("name [shape]")
  std::vector<std::string> non_tensors;   // source entries that were not tensors
};

namespace detail {

inline std::string replace_k(std::string s, index_t k) {
  const std::string key = "{k}";
  for (std::size_t p = s.find(key); p != std::string::npos; p = s.find(key, p))
    s.replace(p, key.size(), std::to_string(k));
  return s;
}

inline std::string sizes_str(const std::vector<std::int64_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Integer expressions: terms joined by + and -, each a product of integers and variable names.
inline index_t eval_expr(const std::string& text, const std::map<std::string, index_t>& vars) {
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  auto factor = [&]() -> index_t {
    skip_ws();
    FOFA_CHECK(i < text.size(), "preset: expression '", text, "' ends early");
    if (std::isdigit(static_cast<unsigned char>(text[i]))) {
      index_t v = 0;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
        FOFA_CHECK(v < (index_t{1} << 40), "preset: number too large in '", text, "'");
        v = v * 10 + (text[i++] - '0');
      }
      return v;
    }
    std::string name;
    while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_')) name += text[i++];
    FOFA_CHECK(!name.empty(), "preset: unexpected '", text[i], "' in expression '", text, "'");
    auto it = vars.find(name);
    FOFA_CHECK(it != vars.end(), "preset: expression '", text, "' uses '", name, "', which is not defined (yet)");
    return it->second;
  };
  auto term = [&]() -> index_t {
    index_t v = factor();
    for (skip_ws(); i < text.size() && text[i] == '*'; skip_ws()) {
      ++i;
      const index_t f = factor();
      FOFA_CHECK(v < (index_t{1} << 31) && f < (index_t{1} << 31), "preset: overflow in '", text, "'");
      v *= f;
    }
    return v;
  };
  index_t v = term();
  for (skip_ws(); i < text.size(); skip_ws()) {
    const char op = text[i++];
    FOFA_CHECK(op == '+' || op == '-', "preset: unexpected '", op, "' in expression '", text, "'");
    v = op == '+' ? v + term() : v - term();
  }
  return v;
}

inline std::string json_expr(const nlohmann::json& j, const char* what) {
  if (j.is_number_integer()) return std::to_string(j.get<index_t>());
  FOFA_CHECK(j.is_string(), "preset: ", what, " must be an integer or an expression string, got ", j.dump());
  return j.get<std::string>();
}

class PresetApplier {
 public:
  PresetApplier(const nlohmann::json& preset, const StateDict& sd, const ConvertOptions& opt)
      : preset_(preset), sd_(sd), opt_(opt) {
    FOFA_CHECK(preset.is_object(), "preset: not a JSON object");
    for (const auto& t : sd.tensors) by_name_[t.name] = &t;
  }

  Conversion run() {
    Conversion c;
    nlohmann::json cfg = preset_.value("config", nlohmann::json::object());
    FOFA_CHECK(cfg.is_object(), "preset: \"config\" must be an object");
    cfg["controller"] = {{"enabled", false}};
    cfg["mapper"] = {{"mode", "off"}};
    if (preset_.value("infer", "") == "fofa") {
      infer_fofa(cfg, c);
    } else {
      eval_vars();
      for (const char* k : {"d", "items", "blocks", "max_len", "ffn"}) {
        auto it = vars_.find(k);
        FOFA_CHECK(it != vars_.end(), "preset: no rule infers '", k, "'");
        cfg[k] = it->second;
      }
    }
    FOFA_CHECK(opt_.heads.has_value(),
               "--heads is required: the number of attention heads is not stored in a state dict (pmixer: "
               "--num_heads, RecBole: n_heads, S3Rec: --num_attention_heads)");
    cfg["heads"] = *opt_.heads;
    for (const auto& [k, v] : opt_.overrides.items()) cfg[k] = v;
    c.config = io::config_from_json(cfg);
    if (preset_.value("infer", "") != "fofa") map_tensors(c);
    c.vars = vars_;
    // Validate everything (names, shapes, finite values) before anyone writes a file.
    check_weights(c.config, c.weights);
    for (const auto& t : sd_.tensors)
      if (!used_.count(t.name) && !ignored(t.name)) c.leftovers.push_back(t.name + " " + sizes_str(t.sizes));
    c.non_tensors = sd_.non_tensors;
    return c;
  }

 private:
  const NamedTensor& source(const std::string& name) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
      std::string near;
      for (const auto& t : sd_.tensors)
        if (near.size() < 400) near += "\n  " + t.name + " " + sizes_str(t.sizes);
      ::fofa::detail::throw_error("fofa: preset '", preset_.value("name", "?"), "': the checkpoint has no tensor '", name,
                                  "'; is it the right preset? The checkpoint holds:", near);
    }
    return *it->second;
  }
  bool has(const std::string& name) const { return by_name_.count(name) != 0; }

  index_t dim_of(const std::string& name, index_t axis) const {
    const NamedTensor& t = source(name);
    FOFA_CHECK(axis >= 0 && axis < static_cast<index_t>(t.sizes.size()), "preset: tensor '", name, "' of shape ",
               sizes_str(t.sizes), " has no dimension ", axis);
    return t.sizes[static_cast<std::size_t>(axis)];
  }

  void eval_vars() {
    const auto& rules = preset_.value("vars", nlohmann::json::array());
    FOFA_CHECK(rules.is_array(), "preset: \"vars\" must be an array");
    for (const auto& r : rules) {
      FOFA_CHECK(r.is_object() && r.contains("name") && r["name"].is_string(), "preset: a var rule lacks a \"name\"");
      const std::string name = r["name"];
      index_t v = 0;
      if (r.contains("dim")) {
        FOFA_CHECK(r["dim"].is_array() && r["dim"].size() == 2 && r["dim"][0].is_string() && r["dim"][1].is_number_integer(),
                   "preset: var '", name, "': \"dim\" must be [tensor, axis]");
        v = dim_of(r["dim"][0].get<std::string>(), r["dim"][1].get<index_t>());
      } else if (r.contains("count")) {
        const std::string pattern = r["count"].get<std::string>();
        while (v < 4096 && has(replace_k(pattern, v))) ++v;
        FOFA_CHECK(v > 0, "preset: var '", name, "': no tensor matches '", replace_k(pattern, 0), "'");
      } else if (r.contains("zero_row")) {
        const NamedTensor& t = source(r["zero_row"].get<std::string>());
        FOFA_CHECK(t.has_values && t.values.rank() == 2 && t.values.dim(0) >= 1, "preset: var '", name,
                   "': zero_row needs a floating 2-D tensor");
        bool zero = true;
        for (index_t j = 0; j < t.values.dim(1); ++j) zero = zero && t.values(0, j) == 0.0f;
        v = zero ? 1 : 0;
      } else if (r.contains("expr")) {
        v = eval_expr(json_expr(r["expr"], "expr"), vars_);
      } else {
        ::fofa::detail::throw_error("fofa: preset: var '", name, "' needs one of dim, count, zero_row, expr");
      }
      if (r.contains("add")) v += r["add"].get<index_t>();
      vars_[name] = v;
    }
    if (opt_.max_len) {
      const index_t inferred = vars_.count("max_len") ? vars_["max_len"] : 0;
      const bool end_anchored = preset_.value("config", nlohmann::json::object()).value("positions", "start") == "end";
      FOFA_CHECK(*opt_.max_len >= 1 && *opt_.max_len <= inferred, "--max-len ", *opt_.max_len,
                 " must be in [1, ", inferred, "] (the checkpoint has ", inferred, " positions)");
      FOFA_CHECK(!end_anchored || *opt_.max_len == inferred, "--max-len ", *opt_.max_len, " differs from the ",
                 inferred, " positions of this layout, whose window is anchored at the end: it must stay ", inferred);
      vars_["max_len"] = *opt_.max_len;
    }
  }

  // Applies one rule for block k (or once when the rule has no {k}).
  Tensor<float> transformed(const nlohmann::json& r, const std::string& from) {
    const NamedTensor& src = source(from);
    FOFA_CHECK(src.has_values, "preset: tensor '", from, "' has dtype ", dtype_name(src.source_dtype),
               "; only floating tensors can become weights");
    used_.insert(from);
    Tensor<float> t = Tensor<float>::from(src.values.view());
    if (r.contains("squeeze")) {
      const index_t axis = r["squeeze"].get<index_t>();
      FOFA_CHECK(axis >= 0 && axis < t.rank() && t.dim(static_cast<int>(axis)) == 1, "preset: cannot squeeze dimension ",
                 axis, " of '", from, "' with shape ", t.shape().str());
      Shape s;
      for (int i = 0; i < t.rank(); ++i)
        if (i != axis) s.push_back(t.dim(i));
      Tensor<float> u(s);
      std::copy(t.data(), t.data() + t.numel(), u.data());
      t = std::move(u);
    }
    if (r.contains("rows")) {
      FOFA_CHECK(r["rows"].is_array() && r["rows"].size() == 2, "preset: \"rows\" must be [begin, end]");
      const index_t b = eval_expr(json_expr(r["rows"][0], "rows"), vars_);
      const index_t e = eval_expr(json_expr(r["rows"][1], "rows"), vars_);
      FOFA_CHECK(t.rank() >= 1 && b >= 0 && b <= e && e <= t.dim(0), "preset: rows [", b, ", ", e, ") of '", from,
                 "' with shape ", t.shape().str(), " are out of range");
      t = Tensor<float>::from(t.view().slice_rows(b, e));
    }
    if (r.value("transpose", false)) {
      FOFA_CHECK(t.rank() == 2, "preset: transpose needs a 2-D tensor, '", from, "' is ", t.shape().str());
      Tensor<float> u({t.dim(1), t.dim(0)});
      for (index_t i = 0; i < t.dim(0); ++i)
        for (index_t j = 0; j < t.dim(1); ++j) u(j, i) = t(i, j);
      t = std::move(u);
    }
    return t;
  }

  void map_tensors(Conversion& c) {
    const auto& rules = preset_.value("tensors", nlohmann::json::array());
    FOFA_CHECK(rules.is_array() && !rules.empty(), "preset: \"tensors\" must be a non-empty array");
    for (const auto& r : rules) {
      FOFA_CHECK(r.is_object() && r.contains("to") && r.contains("from") && r["to"].is_string() && r["from"].is_string(),
                 "preset: every tensor rule needs \"to\" and \"from\" strings, got ", r.dump());
      const std::string to = r["to"], from = r["from"];
      const bool per_block = to.find("{k}") != std::string::npos;
      if (r.value("optional", false) && !has(replace_k(from, 0))) continue;
      for (index_t k = 0; k < (per_block ? c.config.blocks : 1); ++k) {
        const std::string name = replace_k(to, k);
        FOFA_CHECK(!c.weights.contains(name), "preset: two rules produce '", name, "'");
        c.weights.set(name, transformed(r, replace_k(from, k)));
      }
    }
  }

  bool ignored(const std::string& name) const {
    for (const auto& p : preset_.value("ignore", nlohmann::json::array())) {
      const std::string pat = p.get<std::string>();
      if (pat == name) return true;
      // A trailing '*' matches any suffix.
      if (!pat.empty() && pat.back() == '*' && name.compare(0, pat.size() - 1, pat, 0, pat.size() - 1) == 0) return true;
    }
    return false;
  }

  // fofa's own names: everything passes through; presence decides the optional parts.
  void infer_fofa(nlohmann::json& cfg, Conversion& c) {
    FOFA_CHECK(!opt_.max_len, "--max-len is not supported with preset 'fofa': the model keeps its ", dim_of("pos_emb.weight", 0),
               " positions");
    vars_["d"] = dim_of("item_emb.weight", 1);
    vars_["items"] = dim_of("item_emb.weight", 0) - 1;
    vars_["max_len"] = dim_of("pos_emb.weight", 0);
    index_t L = 0;
    while (L < 4096 && has(block_name(L, "ln1.weight"))) ++L;
    FOFA_CHECK(L > 0, "preset 'fofa': no tensor 'blocks.0.ln1.weight'");
    vars_["blocks"] = L;
    vars_["ffn"] = dim_of(block_name(0, "ffn.w1.weight"), 0);
    for (const char* k : {"d", "items", "blocks", "max_len", "ffn"}) cfg[k] = vars_[k];
    cfg["input_ln"] = has("input_ln.weight");
    cfg["final_ln"] = has("final_ln.weight");
    if (has("controller.head.weight")) {
      const bool gru = has("controller.gru.weight_ih");
      cfg["controller"] = {{"enabled", true},
                           {"extractor", gru ? "gru" : "mean"},
                           {"width", gru ? dim_of("controller.gru.weight_hh", 1) : dim_of("controller.extractor.weight", 0)}};
    }
    if (has("mapper.extractor.weight")) {
      const bool lowrank = has(mapper_head_name(0, "v1"));
      cfg["mapper"] = {{"mode", lowrank ? "lowrank" : "full"},
                       {"code_width", dim_of("mapper.extractor.weight", 0)},
                       {"structure_width", dim_of("mapper.structure.weight", 0)}};
      if (lowrank) cfg["mapper"]["rank"] = dim_of(mapper_head_name(0, "v1"), 0);
    }
    for (const auto& t : sd_.tensors) {
      FOFA_CHECK(t.has_values, "preset 'fofa': tensor '", t.name, "' has dtype ", dtype_name(t.source_dtype));
      c.weights.set(t.name, Tensor<float>::from(t.values.view()));
      used_.insert(t.name);
    }
  }

  const nlohmann::json& preset_;
  const StateDict& sd_;
  const ConvertOptions& opt_;
  std::map<std::string, const NamedTensor*> by_name_;
  std::map<std::string, index_t> vars_;
  std::set<std::string> used_;
};

}  // namespace detail

// Maps `sd` onto fofa tensors as `preset` says; throws fofa::Error before producing anything
// when a tensor is missing, misshapen or non-finite, or the configuration is invalid.
inline Conversion apply_preset(const nlohmann::json& preset, const StateDict& sd, const ConvertOptions& opt) {
  return detail::PresetApplier(preset, sd, opt).run();
}

// A state dict from a safetensors file (floating dtypes -> f32; integer tensors keep no values).
inline StateDict load_safetensors_state(const std::string& path) {
  const io::SafetensorsFile st = io::SafetensorsFile::read(path);
  StateDict sd;
  for (const auto& t : st.tensors()) {
    NamedTensor nt;
    nt.name = t.name;
    nt.sizes.assign(t.shape.begin(), t.shape.end());
    const bool floating = t.dtype == io::StDType::F32 || t.dtype == io::StDType::F16 || t.dtype == io::StDType::BF16 ||
                          t.dtype == io::StDType::F64;
    nt.source_dtype = floating ? StorageDtype::f32 : StorageDtype::i64;
    if (floating) {
      nt.values = st.to_f32(t.name);
      nt.has_values = true;
    }
    sd.tensors.push_back(std::move(nt));
  }
  FOFA_CHECK(!sd.tensors.empty(), path, ": the safetensors file holds no tensors");
  return sd;
}

// A .pt (torch.save zip) or .safetensors checkpoint, told apart by content.
inline StateDict load_state_dict(const std::string& path) {
  auto bytes = io::read_file_bytes(path);
  if (sniff_checkpoint(bytes->bytes()) == CheckpointFormat::safetensors) return load_safetensors_state(path);
  try {
    return load_torch_checkpoint(std::move(bytes));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace fofa::convert
