// ModelConfig <-> JSON: full round trip of every field, defaults, and rejected input.
#include <doctest/doctest.h>

#include "fofa/io/config_json.hpp"

using namespace fofa;
using namespace fofa::io;
using nlohmann::json;

TEST_CASE("config round trip keeps every field") {
  ModelConfig c;
  c.items = 1234;
  c.d = 48;
  c.heads = 3;
  c.blocks = 4;
  c.max_len = 200;
  c.ffn = 100;
  c.activation = Activation::relu;
  c.norm = Norm::query_only;
  c.eps = 1e-12f;
  c.positions = Positions::end;
  c.emb_scale = EmbScale::none;
  c.input_ln = true;
  c.final_ln = false;
  c.padding = Padding::left_window;
  c.controller = {false, ExtractorKind::gru, 32, 0};
  c.mapper = {MapperMode::full, 4, 16, 8};
  const json j = config_to_json(c);
  // Through text, as in a file header.
  const ModelConfig r = config_from_json(json::parse(j.dump()));
  CHECK(config_to_json(r) == j);
  CHECK(r.items == 1234);
  CHECK(r.heads == 3);
  CHECK(r.eps == 1e-12f);
  CHECK(r.activation == Activation::relu);
  CHECK(r.norm == Norm::query_only);
  CHECK(r.positions == Positions::end);
  CHECK(r.emb_scale == EmbScale::none);
  CHECK(r.padding == Padding::left_window);
  CHECK(r.input_ln);
  CHECK_FALSE(r.final_ln);
  CHECK_FALSE(r.controller.enabled);
  CHECK(r.controller.extractor == ExtractorKind::gru);
  CHECK(r.controller.width == 32);
  CHECK(r.controller.min_blocks == 0);
  CHECK(r.mapper.mode == MapperMode::full);
  CHECK(r.mapper.rank == 4);
  CHECK(r.mapper.code_width == 16);
  CHECK(r.mapper.structure_width == 8);
}

TEST_CASE("missing keys take the SPEC defaults") {
  const ModelConfig r = config_from_json(json{{"items", 10}});
  const ModelConfig def;
  CHECK(r.items == 10);
  CHECK(r.d == def.d);
  CHECK(r.blocks == 6);
  CHECK(r.max_len == 50);
  CHECK(r.ffn == 256);
  CHECK(r.mapper.rank == 8);
  CHECK(r.controller.enabled);
  CHECK(r.eps == 1e-8f);
}

TEST_CASE("bad configuration JSON is refused with the key") {
  CHECK_THROWS_WITH_AS(config_from_json(json::array()), doctest::Contains("not a JSON object"), Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"d", 64}}), doctest::Contains("config.items is required"), Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", 10}, {"dd", 64}}), doctest::Contains("unknown config key \"dd\""),
                       Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", 10}, {"mapper", {{"rnk", 2}}}}),
                       doctest::Contains("\"mapper.rnk\""), Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", "10"}}), doctest::Contains("config.items must be an integer"),
                       Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", 10}, {"d", 6.5}}), doctest::Contains("config.d"), Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", 10}, {"final_ln", 1}}), doctest::Contains("true or false"),
                       Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", 10}, {"norm", "mid"}}), doctest::Contains("unknown norm"),
                       Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", 10}, {"controller", 3}}),
                       doctest::Contains("config.controller must be an object"), Error);
  // Values are validated after parsing.
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", 10}, {"heads", 3}}), doctest::Contains("not divisible"), Error);
  CHECK_THROWS_WITH_AS(config_from_json(json{{"items", 0}}), doctest::Contains("config.items"), Error);
}

TEST_CASE("parse_json_strict names its source and refuses a key given twice in one object") {
  CHECK(io::parse_json_strict(R"({"a": {"x": 1}, "b": {"x": 2}})", "c.json")["b"]["x"] == 2);  // same key, two objects
  CHECK_THROWS_WITH_AS(io::parse_json_strict(R"({"a": 1, "b": {"x": 1, "x": 2}})", "c.json"),
                       doctest::Contains("c.json: key \"x\" appears twice in one object"), Error);
  CHECK_THROWS_WITH_AS(io::parse_json_strict(R"({"a": )", "c.json"), doctest::Contains("c.json: invalid JSON"), Error);
}
