// libFuzzer: arbitrary bytes as a `fofa train --config` file: strict JSON parse, the experiment
// (model + train keys), the model configuration for a data set and the trainer options'
// validation, and the same bytes as a bare model configuration (docs/DESIGN.md). Only fofa::Error
// may escape (a wrong type or an out-of-range number is an error naming the key).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fofa/io/config_json.hpp"
#include "fofa/train/options_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  nlohmann::json j;
  try {
    j = fofa::io::parse_json_strict(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const fofa::Error&) {
    return 0;
  }
  try {
    const auto e = fofa::train::experiment_from_json(j);
    e.train.validate();
    const auto cfg = fofa::train::model_config_for(e.model, 1000);
    (void)fofa::io::config_to_json(cfg);
  } catch (const fofa::Error&) {
  }
  try {
    const auto cfg = fofa::io::config_from_json(j);
    if (fofa::io::config_from_json(fofa::io::config_to_json(cfg)).items != cfg.items) __builtin_trap();
  } catch (const fofa::Error&) {
  }
  return 0;
}
