// fofa/model/weights.hpp — the weights of a model, keyed by the tensor names of docs/DESIGN.md.
//
// ModelWeights is a name -> Tensor<float> map (the names are fofa_torch.py's state_dict keys and
// the .fofa / safetensors names). expected_tensors(config) lists every name and shape a config
// needs, in a stable order; check_weights() validates a set against it (missing, extra, wrong
// shape, non-finite value) so io, the converter and the model all refuse the same bad input.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fofa/core/tensor.hpp"
#include "fofa/model/config.hpp"

namespace fofa {

struct TensorSpec {
  std::string name;
  Shape shape;
};

class ModelWeights {
 public:
  void set(const std::string& name, Tensor<float> t) { map_[name] = std::move(t); }
  bool contains(const std::string& name) const { return map_.count(name) != 0; }
  // The tensor `name`; throws naming it when absent.
  const Tensor<float>& get(const std::string& name) const {
    auto it = map_.find(name);
    FOFA_CHECK(it != map_.end(), "missing tensor \"", name, "\"");
    return it->second;
  }
  Tensor<float>& get_mut(const std::string& name) {
    auto it = map_.find(name);
    FOFA_CHECK(it != map_.end(), "missing tensor \"", name, "\"");
    return it->second;
  }
  // The tensor `name`, checked against `shape`.
  const Tensor<float>& get(const std::string& name, const Shape& shape) const {
    const Tensor<float>& t = get(name);
    check_shape(name.c_str(), t.shape(), shape);
    return t;
  }
  const std::map<std::string, Tensor<float>>& tensors() const { return map_; }
  std::size_t size() const { return map_.size(); }

 private:
  std::map<std::string, Tensor<float>> map_;
};

inline std::string block_name(index_t k, const char* rest) { return "blocks." + std::to_string(k) + "." + rest; }
inline std::string mapper_head_name(index_t k, const char* rest) {
  return "mapper.heads." + std::to_string(k) + "." + rest;
}

// Every tensor `cfg` needs, with its shape (docs/DESIGN.md "Tensor names").
inline std::vector<TensorSpec> expected_tensors(const ModelConfig& cfg) {
  cfg.validate();
  const index_t V = cfg.items, d = cfg.d, n = cfg.max_len, f = cfg.ffn, L = cfg.blocks;
  std::vector<TensorSpec> s;
  s.push_back({"item_emb.weight", {V + 1, d}});
  s.push_back({"pos_emb.weight", {n, d}});
  if (cfg.input_ln) {
    s.push_back({"input_ln.weight", {d}});
    s.push_back({"input_ln.bias", {d}});
  }
  for (index_t k = 0; k < L; ++k) {
    s.push_back({block_name(k, "ln1.weight"), {d}});
    s.push_back({block_name(k, "ln1.bias"), {d}});
    for (const char* p : {"q", "k", "v", "out"}) {
      s.push_back({block_name(k, (std::string("attn.") + p + ".weight").c_str()), {d, d}});
      s.push_back({block_name(k, (std::string("attn.") + p + ".bias").c_str()), {d}});
    }
    s.push_back({block_name(k, "ln2.weight"), {d}});
    s.push_back({block_name(k, "ln2.bias"), {d}});
    s.push_back({block_name(k, "ffn.w1.weight"), {f, d}});
    s.push_back({block_name(k, "ffn.w1.bias"), {f}});
    s.push_back({block_name(k, "ffn.w2.weight"), {d, f}});
    s.push_back({block_name(k, "ffn.w2.bias"), {d}});
  }
  if (cfg.final_ln) {
    s.push_back({"final_ln.weight", {d}});
    s.push_back({"final_ln.bias", {d}});
  }
  if (cfg.controller.enabled) {
    const index_t dc = cfg.controller.width;
    if (cfg.controller.extractor == ExtractorKind::mean) {
      s.push_back({"controller.extractor.weight", {dc, d}});
      s.push_back({"controller.extractor.bias", {dc}});
    } else {
      s.push_back({"controller.gru.weight_ih", {3 * dc, d}});
      s.push_back({"controller.gru.weight_hh", {3 * dc, dc}});
      s.push_back({"controller.gru.bias_ih", {3 * dc}});
      s.push_back({"controller.gru.bias_hh", {3 * dc}});
    }
    s.push_back({"controller.head.weight", {L, dc + 1}});
    s.push_back({"controller.head.bias", {L}});
  }
  if (cfg.mapper_on()) {
    const index_t dz = cfg.mapper.code_width, ds = cfg.mapper.structure_width, qw = dz + ds;
    s.push_back({"mapper.extractor.weight", {dz, d}});
    s.push_back({"mapper.extractor.bias", {dz}});
    s.push_back({"mapper.mlp.weight", {dz, dz}});
    s.push_back({"mapper.mlp.bias", {dz}});
    s.push_back({"mapper.structure.weight", {ds, L}});
    s.push_back({"mapper.structure.bias", {ds}});
    for (index_t k = 0; k < L; ++k) {
      if (cfg.mapper.mode == MapperMode::lowrank) {
        const index_t r = cfg.mapper.rank;
        s.push_back({mapper_head_name(k, "a1.weight"), {d * r, qw}});
        s.push_back({mapper_head_name(k, "a1.bias"), {d * r}});
        s.push_back({mapper_head_name(k, "v1"), {r, f}});
        s.push_back({mapper_head_name(k, "a2.weight"), {f * r, qw}});
        s.push_back({mapper_head_name(k, "a2.bias"), {f * r}});
        s.push_back({mapper_head_name(k, "v2"), {r, d}});
      } else {
        s.push_back({mapper_head_name(k, "a1.weight"), {f * d, qw}});
        s.push_back({mapper_head_name(k, "a1.bias"), {f * d}});
        s.push_back({mapper_head_name(k, "a2.weight"), {d * f, qw}});
        s.push_back({mapper_head_name(k, "a2.bias"), {d * f}});
      }
      s.push_back({mapper_head_name(k, "g.weight"), {d, qw}});
    }
  }
  return s;
}

// Throws fofa::Error when `w` lacks a tensor, has an unexpected one, a wrong shape or a
// non-finite value (a NaN weight would silently poison every score).
inline void check_weights(const ModelConfig& cfg, const ModelWeights& w) {
  const std::vector<TensorSpec> specs = expected_tensors(cfg);
  for (const TensorSpec& s : specs) {
    const Tensor<float>& t = w.get(s.name);
    check_shape(s.name.c_str(), t.shape(), s.shape);
    const float* p = t.data();
    for (index_t i = 0; i < t.numel(); ++i)
      FOFA_CHECK(std::isfinite(p[i]), "tensor \"", s.name, "\" has a non-finite value at flat index ", i);
  }
  if (w.size() != specs.size()) {
    for (const auto& [name, t] : w.tensors()) {
      bool known = false;
      for (const TensorSpec& s : specs) known = known || s.name == name;
      FOFA_CHECK(known, "unexpected tensor \"", name, "\" for this configuration");
    }
  }
}

}  // namespace fofa
