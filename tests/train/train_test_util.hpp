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

}  // namespace fofa::train::test
