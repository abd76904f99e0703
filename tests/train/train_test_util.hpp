// The small model configurations the training tests share (d 16, 2 heads, 2 blocks, ffn 32):
// tests/common/small_config.hpp with the item count and window the training data sets need.
#pragma once

#include <cstdint>

#include "../common/small_config.hpp"

namespace fofa::train::test {

// Controller + low-rank mapper (r 2): the Forward-OFA shape of the SPEC default, shrunk.
inline ModelConfig small_config(std::int32_t items, index_t max_len = 12) {
  return fofa::testing::small_config({.items = items, .max_len = max_len});
}

// The same dimensions as a static SASRec: no controller, no mapper.
inline ModelConfig small_static_config(std::int32_t items) {
  return fofa::testing::small_static_config({.items = items});
}

// Every system of SPEC 8 and every block variant the trainer supports, as edits of a Forward-OFA
// configuration: the gradient tests run each one.
struct ModelVariant {
  const char* name;
  void (*edit)(ModelConfig&);
};
inline constexpr ModelVariant kModelVariants[] = {
    {"forward-ofa lowrank", [](ModelConfig&) {}},
    {"static", [](ModelConfig& c) { c.controller.enabled = false; c.mapper.mode = MapperMode::off; }},
    {"duet lowrank", [](ModelConfig& c) { c.controller.enabled = false; }},
    {"forward-ofa full", [](ModelConfig& c) { c.mapper.mode = MapperMode::full; }},
    {"controller only", [](ModelConfig& c) { c.mapper.mode = MapperMode::off; }},
    {"post-LN relu", [](ModelConfig& c) { c.norm = Norm::post; c.activation = Activation::relu; }},
    {"query-only LN, end positions, input LN, no final LN", [](ModelConfig& c) {
       c.norm = Norm::query_only;
       c.positions = Positions::end;
       c.input_ln = true;
       c.final_ln = false;
       c.emb_scale = EmbScale::none;
     }},
};

}  // namespace fofa::train::test
