// TransformerBlock over a key/value cache: feeding rows one at a time (the device's push) gives
// the same outputs as running all rows at once, for every norm placement; and out_from = last
// row (the cloud's last block) gives the same last row as computing every row.
#include <doctest/doctest.h>

#include <cmath>

#include "fofa/model/backbone.hpp"
#include "fofa/model/init.hpp"

using namespace fofa;

TEST_CASE("block forward: incremental rows with a KV cache == all rows at once") {
  for (Norm norm : {Norm::pre, Norm::post, Norm::query_only}) {
    CAPTURE(to_string(norm));
    ModelConfig c;
    c.items = 20;
    c.d = 16;
    c.heads = 4;
    c.blocks = 1;
    c.max_len = 12;
    c.ffn = 24;
    c.norm = norm;
    c.controller.enabled = false;
    c.mapper.mode = MapperMode::off;
    ModelWeights w = random_weights(c, 21);
    for (const char* ln : {"blocks.0.ln1.bias", "blocks.0.ln2.bias", "blocks.0.attn.k.bias"}) {
      Tensor<float>& t = w.get_mut(ln);
      for (index_t i = 0; i < t.numel(); ++i) t[i] = 0.1f * static_cast<float>(i % 5) - 0.2f;
    }
    const SasRecBackbone<> bb(c, std::make_shared<const ModelWeights>(std::move(w)));
    const auto& block = bb.blocks()[0];
    const index_t R = 9, d = c.d;
    Tensor<float> x0({R, d});
    SeededNormal rng(3);
    for (index_t i = 0; i < x0.numel(); ++i) x0[i] = static_cast<float>(rng.normal());
    Workspace ws(TransformerBlock<>::workspace(R, R, d, c.ffn));

    Tensor<float> all = Tensor<float>::from(x0.view()), kv_all({R, 2 * d});
    block.forward(R, 0, 0, all.data(), d, kv_all.data(), 2 * d, block.ffn(), ws);

    Tensor<float> inc = Tensor<float>::from(x0.view()), kv_inc({R, 2 * d});
    for (index_t r = 0; r < R; ++r) block.forward(1, r, 0, inc.data() + r * d, d, kv_inc.data(), 2 * d, block.ffn(), ws);

    Tensor<float> last = Tensor<float>::from(x0.view()), kv_last({R, 2 * d});
    block.forward(R, 0, R - 1, last.data(), d, kv_last.data(), 2 * d, block.ffn(), ws);

    float diff = 0, diff_last = 0, moved = 0;
    for (index_t i = 0; i < R * d; ++i) {
      diff = std::max(diff, std::abs(all[i] - inc[i]));
      moved = std::max(moved, std::abs(all[i] - x0[i]));
    }
    for (index_t j = 0; j < d; ++j) diff_last = std::max(diff_last, std::abs(all(R - 1, j) - last(R - 1, j)));
    CHECK(diff <= 1e-5f);
    CHECK(diff_last <= 1e-5f);
    CHECK(moved > 0.1f);  // the block did something
    CHECK(ws.used() == 0);
  }
}
