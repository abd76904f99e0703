// The training configuration file of `fofa train --config` (train/options_json.hpp): every key
// maps to its option, and a wrong type, an out-of-range number, an unknown or a repeated key is
// an error naming the key instead of a silently trained default.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <unistd.h>

#include "fofa/train/options_json.hpp"

using namespace fofa;
using namespace fofa::train;
using nlohmann::json;

namespace {

TrainerOptions parse(const char* text) { return trainer_options_from_json(json::parse(text)); }

ExperimentConfig load_text(const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("fofa-options-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << text;
  struct Remove {
    std::filesystem::path p;
    ~Remove() { std::filesystem::remove(p); }
  } remove{path};
  return load_experiment(path);
}

}  // namespace

TEST_CASE("training options: every key reaches its field, whole floats count as integers") {
  const TrainerOptions o = parse(R"({"epochs": 7.0, "batch": 64, "lr": 0.002, "clip": 0,
                                     "seed": 18446744073709551615, "eval_users": 0, "steps_per_epoch": 3,
                                     "threads": 1, "dropout": 0.0, "lambda": 0.5, "mu": 2, "progress": false})");
  CHECK(o.epochs == 7);
  CHECK(o.batch == 64);
  CHECK(o.lr == 0.002);
  CHECK(o.clip == 0.0);
  CHECK(o.seed == std::numeric_limits<std::uint64_t>::max());
  CHECK(o.steps_per_epoch == 3);
  CHECK(o.lambda == 0.5);
  CHECK(o.mu == 2.0);
  CHECK_FALSE(o.progress);
}

TEST_CASE("training options: integers out of their field's range are errors, not wrapped values") {
  // A cast of -1 to the unsigned seed, or of 1e20 to int, would be undefined behaviour.
  CHECK_THROWS_WITH_AS(parse(R"({"seed": -1})"), doctest::Contains("train.seed = -1 is out of range"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"epochs": 1e20})"), doctest::Contains("train.epochs = 1e+20 is out of range"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"epochs": 4294967297})"), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"batch": 2.5})"), doctest::Contains("train.batch must be an integer"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"lr": "fast"})"), doctest::Contains("train.lr must be a number"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"progress": 1})"), doctest::Contains("train.progress must be true or false"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"learning_rate": 0.1})"), doctest::Contains("unknown training option"), Error);
}

TEST_CASE("training options: values outside their meaning are refused by name") {
  CHECK_THROWS_WITH_AS(parse(R"({"clip": -1})"), doctest::Contains("clip must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"weight_decay": -0.1})"), doctest::Contains("weight_decay must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"eval_users": -3})"), doctest::Contains("eval_users must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"eval_negatives": 0})"), doctest::Contains("eval_negatives must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"steps_per_epoch": -1})"), doctest::Contains("steps_per_epoch must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"mu": -1})"), doctest::Contains("mu must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(parse(R"({"tau_end": 0})"), doctest::Contains("tau_start and tau_end must be > 0"), Error);
}

TEST_CASE("configuration files: a key given twice is refused (the parser would keep the last silently)") {
  CHECK(load_text(R"({"train": {"lr": 0.25}})").train.lr == 0.25);
  CHECK_THROWS_WITH_AS(load_text(R"({"train": {"lr": 0.1, "lr": 0.2}})"),
                       doctest::Contains("key \"lr\" appears twice in one object"), Error);
  CHECK_THROWS_WITH_AS(load_text(R"({"model": {"d": 16}, "model": {"d": 8}})"),
                       doctest::Contains("key \"model\" appears twice"), Error);
  // The same key in two different objects is fine.
  CHECK_NOTHROW(load_text(R"({"model": {"controller": {"enabled": false}, "mapper": {"enabled": false}}})"));
  CHECK_THROWS_WITH_AS(load_text(R"({"train": {"lr": 0.1,)"), doctest::Contains("invalid JSON"), Error);
}

TEST_CASE("model_config_for: a \"d\" that is not a whole number is reported by name") {
  CHECK_THROWS_WITH_AS(model_config_for(json::parse(R"({"d": "x"})"), 100), doctest::Contains("config.d"), Error);
  CHECK(model_config_for(json::parse(R"({"d": 16, "heads": 2})"), 100).ffn == 64);
}
