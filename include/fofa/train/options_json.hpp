// fofa/train/options_json.hpp — the training configuration file of `fofa train --config`.
//
//   { "model": { ...docs/DESIGN.md config, "items" optional (taken from the data) ... },
//     "train": { "epochs": 20, "batch": 128, "lr": 1e-3, "dropout": 0.2, "lambda": 0.01, ... } }
// Every key of "train" is a TrainerOptions field of the same name; unknown keys and values of the
// wrong type are errors naming the key (a typo must not silently train the default). The five
// systems of SPEC 8 are configurations of "model" (see docs/results.json / tools/results).
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "fofa/io/config_json.hpp"
#include "fofa/io/file_util.hpp"
#include "fofa/train/trainer.hpp"

namespace fofa::train {

inline TrainerOptions trainer_options_from_json(const nlohmann::json& j) {
  FOFA_CHECK(j.is_object(), "\"train\" must be a JSON object");
  TrainerOptions o;
  // Named, not structured bindings: the lambdas below capture them (Clang before 16 can't).
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    const nlohmann::json& v = item.value();
    auto num = [&](auto& dst) {
      FOFA_CHECK(v.is_number(), "train.", key, " must be a number, got ", v.dump());
      using D = std::remove_reference_t<decltype(dst)>;
      if constexpr (std::is_integral_v<D>) {
        // Whole numbers only, and only those D can hold: converting an out-of-range value (a seed
        // of -1, epochs 1e20) would be undefined behaviour, not an error.
        bool fits = false;
        if (v.is_number_unsigned()) {
          fits = std::in_range<D>(v.get<std::uint64_t>());
          if (fits) dst = static_cast<D>(v.get<std::uint64_t>());
        } else if (v.is_number_integer()) {
          fits = std::in_range<D>(v.get<std::int64_t>());
          if (fits) dst = static_cast<D>(v.get<std::int64_t>());
        } else {
          const double d = v.get<double>();
          FOFA_CHECK(d == std::floor(d), "train.", key, " must be an integer, got ", v.dump());
          fits = d >= -0x1p63 && d < 0x1p63 && std::in_range<D>(static_cast<std::int64_t>(d));
          if (fits) dst = static_cast<D>(static_cast<std::int64_t>(d));
        }
        FOFA_CHECK(fits, "train.", key, " = ", v.dump(), " is out of range [", std::numeric_limits<D>::min(), ", ",
                   std::numeric_limits<D>::max(), "]");
      } else {
        dst = v.get<D>();
      }
    };
    auto boolean = [&](bool& dst) {
      FOFA_CHECK(v.is_boolean(), "train.", key, " must be true or false, got ", v.dump());
      dst = v.get<bool>();
    };
    if (key == "epochs") num(o.epochs);
    else if (key == "batch") num(o.batch);
    else if (key == "lr") num(o.lr);
    else if (key == "weight_decay") num(o.weight_decay);
    else if (key == "adamw") boolean(o.adamw);
    else if (key == "clip") num(o.clip);
    else if (key == "dropout") num(o.dropout);
    else if (key == "negatives") num(o.negatives);
    else if (key == "lambda") num(o.lambda);
    else if (key == "mu") num(o.mu);
    else if (key == "budget_min") num(o.budget_min);
    else if (key == "budget_max") num(o.budget_max);
    else if (key == "tau_start") num(o.tau_start);
    else if (key == "tau_end") num(o.tau_end);
    else if (key == "seed") num(o.seed);
    else if (key == "threads") num(o.threads);
    else if (key == "patience") num(o.patience);
    else if (key == "eval_users") num(o.eval_users);
    else if (key == "eval_budget") num(o.eval_budget);
    else if (key == "eval_negatives") num(o.eval_negatives);
    else if (key == "steps_per_epoch") num(o.steps_per_epoch);
    else if (key == "progress") boolean(o.progress);
    else if (key == "checkpoint") {
      FOFA_CHECK(v.is_string(), "train.checkpoint must be a string");
      o.checkpoint = v.get<std::string>();
    } else {
      fofa::detail::throw_error("fofa: unknown training option train.", key);
    }
  }
  o.validate();
  return o;
}

inline nlohmann::json to_json(const TrainerOptions& o) {
  return {{"epochs", o.epochs}, {"batch", o.batch}, {"lr", o.lr}, {"weight_decay", o.weight_decay},
          {"adamw", o.adamw}, {"clip", o.clip}, {"dropout", o.dropout}, {"negatives", o.negatives},
          {"lambda", o.lambda}, {"mu", o.mu}, {"budget_min", o.budget_min}, {"budget_max", o.budget_max},
          {"tau_start", o.tau_start}, {"tau_end", o.tau_end}, {"seed", o.seed}, {"threads", o.threads},
          {"patience", o.patience}, {"eval_users", o.eval_users}, {"eval_budget", o.eval_budget},
          {"eval_negatives", o.eval_negatives}, {"steps_per_epoch", o.steps_per_epoch}};
}

struct ExperimentConfig {
  nlohmann::json model = nlohmann::json::object();
  TrainerOptions train;
};

inline ExperimentConfig experiment_from_json(const nlohmann::json& j) {
  FOFA_CHECK(j.is_object(), "training configuration must be a JSON object");
  for (const auto& [key, v] : j.items())
    FOFA_CHECK(key == "model" || key == "train" || key == "name" || key == "comment", "unknown top-level key \"", key,
               "\" (expected model, train)");
  ExperimentConfig e;
  if (j.contains("model")) {
    FOFA_CHECK(j["model"].is_object(), "\"model\" must be a JSON object");
    e.model = j["model"];
  }
  if (j.contains("train")) e.train = trainer_options_from_json(j["train"]);
  return e;
}

inline ExperimentConfig load_experiment(const std::filesystem::path& path) {
  const nlohmann::json j = io::parse_json_strict(io::read_text_file(path, "configuration"), path.string());
  try {
    return experiment_from_json(j);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + path.string() + ")");
  }
}

// The model configuration for a data set: "items" defaults to the data's largest id and must cover it;
// "ffn" defaults to 4 d when only "d" is given.
inline ModelConfig model_config_for(nlohmann::json model, item_t data_items) {
  if (!model.contains("items")) model["items"] = data_items;
  // (A "d" that is not a small whole number is left for config_from_json to report by name.)
  if (model.contains("d") && !model.contains("ffn") && model["d"].is_number_integer() &&
      std::abs(model["d"].get<std::int64_t>()) < (std::int64_t{1} << 40))
    model["ffn"] = 4 * model["d"].get<std::int64_t>();
  ModelConfig c = io::config_from_json(model);
  FOFA_CHECK(c.items >= data_items, "config.items = ", c.items, " but the data has item ids up to ", data_items);
  return c;
}

}  // namespace fofa::train
