// tests/model/fixture.hpp — reads the PyTorch parity fixtures written by
// tools/convert/make_fixtures.py (model_<name>.json + model_<name>.bin, raw f32).
//
// The directory is $FOFA_MODEL_FIXTURES when set (the live torch ctest entry regenerates the
// fixtures there), else the committed tests/data.
#pragma once

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fofa/model/forward_ofa.hpp"

namespace fofa::test {

inline std::string fixture_dir() {
  const char* env = std::getenv("FOFA_MODEL_FIXTURES");
  return env && *env ? std::string(env) : std::string(FOFA_TEST_DATA_DIR);
}

// The JSON "config" object -> ModelConfig (test-local: io/config_json.hpp belongs to io).
inline ModelConfig config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  c.items = j.at("items");
  c.d = j.at("d");
  c.heads = j.at("heads");
  c.blocks = j.at("blocks");
  c.max_len = j.at("max_len");
  c.ffn = j.at("ffn");
  c.activation = parse_activation(j.at("activation").get<std::string>());
  c.norm = parse_norm(j.at("norm").get<std::string>());
  c.eps = j.at("eps").get<float>();
  c.positions = parse_positions(j.at("positions").get<std::string>());
  c.emb_scale = parse_emb_scale(j.at("emb_scale").get<std::string>());
  c.input_ln = j.at("input_ln");
  c.final_ln = j.at("final_ln");
  c.padding = parse_padding(j.at("padding").get<std::string>());
  const auto& ct = j.at("controller");
  c.controller.enabled = ct.at("enabled");
  c.controller.extractor = parse_extractor(ct.at("extractor").get<std::string>());
  c.controller.width = ct.at("width");
  c.controller.min_blocks = ct.at("min_blocks");
  const auto& mp = j.at("mapper");
  c.mapper.mode = parse_mapper_mode(mp.at("mode").get<std::string>());
  c.mapper.rank = mp.at("rank");
  c.mapper.code_width = mp.at("code_width");
  c.mapper.structure_width = mp.at("structure_width");
  return c;
}

struct ParityCase {
  std::vector<std::int32_t> history, candidates;
  float budget = 1.0f;
  std::vector<float> pi, logits;
  std::vector<std::uint8_t> mask;
};

struct Fixture {
  std::string name;
  ModelConfig config;
  ModelWeights weights;
  std::vector<ParityCase> cases;
};

inline Fixture load_fixture(const std::string& name) {
  const std::string base = fixture_dir() + "/model_" + name;
  std::ifstream js(base + ".json");
  FOFA_CHECK(js.good(), "cannot open fixture ", base, ".json");
  const nlohmann::json doc = nlohmann::json::parse(js);
  std::ifstream bs(base + ".bin", std::ios::binary);
  FOFA_CHECK(bs.good(), "cannot open fixture ", base, ".bin");
  const std::vector<char> raw((std::istreambuf_iterator<char>(bs)), std::istreambuf_iterator<char>());
  Fixture f;
  f.name = name;
  f.config = config_from_json(doc.at("config"));
  for (const auto& [tname, e] : doc.at("tensors").items()) {
    const std::vector<index_t> dims = e.at("shape").get<std::vector<index_t>>();
    Tensor<float> t(Shape::from_range(dims.begin(), dims.end()));
    const std::size_t off = e.at("offset").get<std::size_t>() * sizeof(float);
    FOFA_CHECK(off + t.bytes() <= raw.size(), "fixture tensor ", tname, " outside ", base, ".bin");
    std::memcpy(t.data(), raw.data() + off, t.bytes());
    f.weights.set(tname, std::move(t));
  }
  for (const auto& c : doc.at("cases")) {
    ParityCase p;
    p.history = c.at("history").get<std::vector<std::int32_t>>();
    p.candidates = c.at("candidates").get<std::vector<std::int32_t>>();
    p.budget = c.at("budget").get<float>();
    p.pi = c.at("pi").get<std::vector<float>>();
    p.logits = c.at("logits").get<std::vector<float>>();
    for (int m : c.at("mask").get<std::vector<int>>()) p.mask.push_back(static_cast<std::uint8_t>(m));
    f.cases.push_back(std::move(p));
  }
  return f;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  FOFA_CHECK(a.size() == b.size(), "size ", a.size(), " vs ", b.size());
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

inline const char* const kFixtureNames[] = {"pre_l6", "post_l1_full", "pmixer_l2", "query_only_l6", "recbole_l6",
                                            "duet_l6", "long_n200"};

}  // namespace fofa::test
