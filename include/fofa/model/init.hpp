// fofa/model/init.hpp — seeded random weights for a configuration (tests, demos, training init).
//
// Deterministic on every platform (own splitmix64 + Box-Muller, not std::normal_distribution):
//   - item_emb, pos_emb ~ N(0, 1/d) (so E * sqrt(d) has unit scale); item_emb row 0 (padding) = 0;
//   - every other matrix: Xavier normal (std = sqrt(2 / (fan_in + fan_out))), biases 0;
//   - LayerNorm weight 1, bias 0;
//   - controller.head.bias = +2 so that an untrained controller keeps every block (pi ~ 0.88);
//   - mapper (docs/DESIGN.md): A1, A2, G zero; a1, a2 zero (lowrank) or the flattened static
//     W1, W2 (full), so training starts from the static model; V1, V2 ~ N(0, 0.02^2).
// InitOptions::mapper_scale > 0 replaces the zero mapper tensors by N(0, scale^2) noise, which
// tests use to exercise a mapper that actually changes the weights.
#pragma once

#include <cmath>
#include <cstdint>

#include "fofa/model/weights.hpp"

namespace fofa {

// splitmix64 stream with Box-Muller normals: small, seedable, identical everywhere.
class SeededNormal {
 public:
  explicit SeededNormal(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next_u64() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1).
  double uniform() { return (static_cast<double>(next_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

struct InitOptions {
  float mapper_scale = 0.0f;        // > 0: random mapper A/a/G instead of the zero init
  float controller_head_bias = 2.0f;
};

inline ModelWeights random_weights(const ModelConfig& cfg, std::uint64_t seed, InitOptions opt = {}) {
  SeededNormal rng(seed);
  ModelWeights w;
  auto normal = [&](const Shape& s, double stddev) {
    Tensor<float> t(s);
    for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.normal() * stddev);
    return t;
  };
  auto constant = [&](const Shape& s, float v) {
    Tensor<float> t(s);
    t.fill(v);
    return t;
  };
  auto ends_with = [](const std::string& s, const char* suf) {
    const std::string x(suf);
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  auto is_layer_norm = [](const std::string& s) {
    return s.rfind("input_ln.", 0) == 0 || s.rfind("final_ln.", 0) == 0 || s.find(".ln1.") != std::string::npos ||
           s.find(".ln2.") != std::string::npos;
  };
  const bool full = cfg.mapper.mode == MapperMode::full;
  for (const TensorSpec& spec : expected_tensors(cfg)) {
    const std::string& n = spec.name;
    const Shape& s = spec.shape;
    Tensor<float> t;
    if (n == "item_emb.weight" || n == "pos_emb.weight") {
      t = normal(s, 1.0 / std::sqrt(static_cast<double>(cfg.d)));
      if (n == "item_emb.weight")
        for (index_t j = 0; j < cfg.d; ++j) t(0, j) = 0.0f;
    } else if (is_layer_norm(n)) {
      t = constant(s, ends_with(n, ".weight") ? 1.0f : 0.0f);
    } else if (n.rfind("mapper.heads.", 0) == 0) {
      if (ends_with(n, ".v1") || ends_with(n, ".v2")) {
        t = normal(s, 0.02);
      } else if (opt.mapper_scale > 0.0f) {
        t = normal(s, opt.mapper_scale);
      } else {
        t = constant(s, 0.0f);
      }
    } else if (n == "controller.head.bias") {
      t = constant(s, opt.controller_head_bias);
    } else if (s.rank() == 1) {
      t = constant(s, 0.0f);
    } else {
      t = normal(s, std::sqrt(2.0 / static_cast<double>(s[0] + s[1])));
    }
    w.set(n, std::move(t));
  }
  // Full mode starts at the static model: a1/a2 = flattened static W1/W2 (plus noise if asked).
  if (full) {
    for (index_t k = 0; k < cfg.blocks; ++k) {
      for (auto [bias, weight] : {std::pair{"a1.bias", "ffn.w1.weight"}, std::pair{"a2.bias", "ffn.w2.weight"}}) {
        Tensor<float>& a = w.get_mut(mapper_head_name(k, bias));
        const Tensor<float>& st = w.get(block_name(k, weight));
        for (index_t i = 0; i < a.numel(); ++i) a[i] += st[i];
      }
    }
  }
  return w;
}

}  // namespace fofa
