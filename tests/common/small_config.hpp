// tests/common/small_config.hpp — the one small model configuration the tests build on: the SPEC
// default Forward-OFA shape (controller + low-rank mapper) shrunk so a forward pass takes
// microseconds. Tests change only the sizes they care about:
//   small_config({.items = 20, .d = 8, .ffn = 16})
#pragma once

#include "fofa/model/config.hpp"

namespace fofa::testing {

struct SmallSizes {
  index_t items = 40, d = 16, heads = 2, blocks = 2, max_len = 12, ffn = 32;
};

inline ModelConfig small_config(SmallSizes s) {
  ModelConfig c;
  c.items = s.items;
  c.d = s.d;
  c.heads = s.heads;
  c.blocks = s.blocks;
  c.max_len = s.max_len;
  c.ffn = s.ffn;
  c.controller.width = 8;
  c.mapper.rank = 2;
  c.mapper.code_width = 8;
  c.mapper.structure_width = 4;
  return c;
}

// The same sizes as a static SASRec: no controller, no mapper.
inline ModelConfig small_static_config(SmallSizes s) {
  ModelConfig c = small_config(s);
  c.controller.enabled = false;
  c.mapper.mode = MapperMode::off;
  return c;
}

}  // namespace fofa::testing
