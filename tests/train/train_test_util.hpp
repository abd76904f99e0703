// The small model configurations the training tests share (d 16, 2 heads, 2 blocks, ffn 32).
#pragma once

#include <cstdint>

#include "fofa/model/config.hpp"

namespace fofa::train::test {

// Controller + low-rank mapper (r 2): the Forward-OFA shape of the SPEC default, shrunk.
inline ModelConfig small_config(std::int32_t items, index_t max_len = 12) {
  ModelConfig c;
  c.items = items;
  c.d = 16;
  c.heads = 2;
  c.blocks = 2;
  c.max_len = max_len;
  c.ffn = 32;
  c.controller.width = 8;
  c.mapper.rank = 2;
  c.mapper.code_width = 8;
  c.mapper.structure_width = 4;
  return c;
}

// The same dimensions as a static SASRec: no controller, no mapper.
inline ModelConfig small_static_config(std::int32_t items) {
  ModelConfig c = small_config(items);
  c.controller.enabled = false;
  c.mapper.mode = MapperMode::off;
  return c;
}

}  // namespace fofa::train::test
