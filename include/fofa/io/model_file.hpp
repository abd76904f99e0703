// fofa/io/model_file.hpp — whole-model .fofa files (kind "model"): ModelConfig + ModelWeights.
//
// save_model writes every tensor expected_tensors(config) lists (checked first, so a file on
// disk is always loadable); load_model reads one back, parses the config and runs
// check_weights, so a file with a missing, extra, misshapen or non-finite tensor is refused
// with the tensor's name. The weights are copied out of the file (the cloud model is mutable
// during training); device files are mapped instead (see model/device_model.hpp).
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "fofa/io/config_json.hpp"
#include "fofa/io/fofa_file.hpp"
#include "fofa/model/weights.hpp"

namespace fofa::io {

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
  nlohmann::json meta = nlohmann::json::object();
};

// A model held in an already validated .fofa file.
inline LoadedModel model_from_file(const FofaFile& f) {
  FOFA_CHECK(f.kind() == "model", f.source(), ": kind is \"", f.kind(), "\", expected a whole model (\"model\")");
  LoadedModel m;
  try {
    m.config = config_from_json(f.config());
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + f.source() + ")");
  }
  m.meta = f.meta();
  for (const TensorInfo& t : f.tensors()) {
    FOFA_CHECK(t.dtype == DType::f32, f.source(), ": model tensor \"", t.name, "\" must be f32");
    m.weights.set(t.name, Tensor<float>::from(f.f32(t.name)));
  }
  try {
    check_weights(m.config, m.weights);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + f.source() + ")");
  }
  return m;
}

inline LoadedModel load_model(const std::filesystem::path& path) { return model_from_file(FofaFile::map(path)); }

// The .fofa image of a model, tensors in expected_tensors order.
inline FofaWriter model_writer(const ModelConfig& config, const ModelWeights& weights,
                               const nlohmann::json& meta = nlohmann::json::object()) {
  check_weights(config, weights);
  FofaWriter w("model");
  w.config(config_to_json(config)).meta(meta);
  for (const TensorSpec& s : expected_tensors(config)) w.add(s.name, weights.get(s.name));
  return w;
}

// Writes atomically; returns the file size.
inline std::size_t save_model(const std::filesystem::path& path, const ModelConfig& config, const ModelWeights& weights,
                              const nlohmann::json& meta = nlohmann::json::object()) {
  return model_writer(config, weights, meta).write(path);
}

}  // namespace fofa::io
