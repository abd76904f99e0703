// Whole-model .fofa files: save/load round trip and refusal of mismatched tensors.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include "fofa/io/model_file.hpp"
#include "../common/small_config.hpp"

namespace fs = std::filesystem;
using namespace fofa;
using namespace fofa::io;

namespace {
ModelConfig small_config() { return testing::small_config({.items = 20, .d = 8, .max_len = 6, .ffn = 16}); }
ModelWeights random_weights(const ModelConfig& c, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  ModelWeights w;
  for (const TensorSpec& s : expected_tensors(c)) {
    Tensor<float> t(s.shape);
    for (index_t i = 0; i < t.numel(); ++i) t[i] = nd(rng);
    w.set(s.name, std::move(t));
  }
  return w;
}
}  // namespace

TEST_CASE("save_model / load_model round trip") {
  const ModelConfig c = small_config();
  const ModelWeights w = random_weights(c, 1);
  const fs::path path = fs::temp_directory_path() / ("fofa-model-" + std::to_string(::getpid()) + ".fofa");
  save_model(path, c, w, {{"epoch", 3}});
  const LoadedModel m = load_model(path);
  CHECK(config_to_json(m.config) == config_to_json(c));
  CHECK(m.meta["epoch"] == 3);
  CHECK(m.weights.size() == w.size());
  for (const auto& [name, t] : w.tensors()) {
    const Tensor<float>& u = m.weights.get(name);
    REQUIRE(u.shape() == t.shape());
    for (index_t i = 0; i < t.numel(); ++i) CHECK(u[i] == t[i]);
  }
  fs::remove(path);
}

TEST_CASE("model files with wrong tensors are refused with the tensor name") {
  const ModelConfig c = small_config();
  ModelWeights w = random_weights(c, 2);
  CHECK_THROWS_AS(model_writer(c, ModelWeights{}), Error);
  // Write a file by hand that lacks one tensor.
  FofaWriter fw("model");
  fw.config(config_to_json(c));
  for (const auto& [name, t] : w.tensors())
    if (name != "blocks.1.ffn.w2.bias") fw.add(name, t);
  const auto bytes = fw.to_bytes();
  CHECK_THROWS_WITH_AS(model_from_file(FofaFile::load_from_memory({bytes.data(), bytes.size()})),
                       doctest::Contains("blocks.1.ffn.w2.bias"), Error);
  // A device file is not a model.
  FofaWriter dw("device");
  dw.config(config_to_json(c));
  const auto dbytes = dw.to_bytes();
  CHECK_THROWS_WITH_AS(model_from_file(FofaFile::load_from_memory({dbytes.data(), dbytes.size()})),
                       doctest::Contains("expected a whole model"), Error);
}
