// fofa/model/plan.hpp — DevicePlan, what the cloud decides for one device session, and the
// pieces of it that do not need a model: the inference block selection rule and the ranking.
//
// A DevicePlan holds the controller's distribution pi over blocks, the 0/1 mask after the
// budget rule, the materialised FFN weights and gate of every kept block (what the device
// file ships), and the request's cost: backbone FLOPs (sum of c_k over kept blocks) and the
// bytes of the tensors a device file needs apart from embedding rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "fofa/core/tensor.hpp"
#include "fofa/model/config.hpp"

namespace fofa {

// The FFN of one kept block as this user runs it: FFN(x) = gate * (W2 act(W1 x + b1) + b2).
struct BlockFfnWeights {
  index_t block = 0;         // index k in 0..L-1
  Tensor<float> w1, b1;      // [f, d], [f]
  Tensor<float> w2, b2;      // [d, f], [d]
  Tensor<float> gate;        // [d]; all ones when the mapper is off
};

struct DevicePlan {
  float budget = 1.0f;
  std::vector<float> pi;             // [L] sigmoid(alpha); all ones when the controller is off
  std::vector<std::uint8_t> mask;    // [L] 1 = block assembled on the device
  std::vector<BlockFfnWeights> ffn;  // one per kept block, ascending block index
  double flops = 0;                  // sum of c_k over kept blocks (docs/DESIGN.md cost model)
  std::size_t bytes = 0;             // f32 bytes of kept blocks, gates, P, final/input LN

  std::vector<index_t> kept() const {
    std::vector<index_t> k;
    for (std::size_t i = 0; i < mask.size(); ++i)
      if (mask[i]) k.push_back(static_cast<index_t>(i));
    return k;
  }
};

// Float count of the non-embedding tensors a device file holds for `kept` blocks.
inline index_t device_parameter_floats(const ModelConfig& cfg, index_t kept) {
  const index_t d = cfg.d, f = cfg.ffn;
  const index_t per_block = 2 * d + 4 * (d * d + d) + 2 * d + f * d + f + d * f + d + (cfg.mapper_on() ? d : 0);
  return kept * per_block + cfg.max_len * d + (cfg.final_ln ? 2 * d : 0) + (cfg.input_ln ? 2 * d : 0);
}

// Inference mask of docs/DESIGN.md: m_k = pi_k > 0.5; while the kept cost exceeds budget * total,
// drop the kept block with the lowest pi (ties: the higher index); if nothing is kept and
// min_blocks = 1, keep argmax pi (ties: the lowest index).
inline std::vector<std::uint8_t> select_blocks(std::span<const float> pi, std::span<const double> cost,
                                               double budget, index_t min_blocks) {
  FOFA_CHECK(pi.size() == cost.size(), "select_blocks: ", pi.size(), " probabilities for ", cost.size(), " costs");
  const std::size_t L = pi.size();
  std::vector<std::uint8_t> m(L);
  double total = 0, kept = 0;
  for (std::size_t k = 0; k < L; ++k) {
    m[k] = pi[k] > 0.5f;
    total += cost[k];
    if (m[k]) kept += cost[k];
  }
  while (kept > budget * total) {
    std::size_t drop = L;
    for (std::size_t k = 0; k < L; ++k)
      if (m[k] && (drop == L || pi[k] <= pi[drop])) drop = k;  // <= : ties go to the higher index
    if (drop == L) break;
    m[drop] = 0;
    kept -= cost[drop];
  }
  if (min_blocks >= 1 && std::none_of(m.begin(), m.end(), [](std::uint8_t v) { return v != 0; }) && L > 0) {
    std::size_t best = 0;
    for (std::size_t k = 1; k < L; ++k)
      if (pi[k] > pi[best]) best = k;
    m[best] = 1;
  }
  return m;
}

// Throws unless budget is a number in (0, 1].
inline void check_budget(double budget) {
  FOFA_CHECK(std::isfinite(budget) && budget > 0.0 && budget <= 1.0, "budget must be in (0, 1], got ", budget);
}

// Finite weights can still overflow float on the way to a result (say +-3e38 in final_ln.weight
// or in an item_emb row): the user state or a logit becomes inf or NaN. Every scoring path (cloud,
// device, evaluation) refuses such a result with these checks, one pass over the values computed;
// finite results are untouched. `context...` prefixes the message (e.g. "device: ").
inline constexpr const char* kOverflowCause =
    "finite weights overflow float in the forward pass (look for extreme values, e.g. in item_emb or final_ln)";

// Throws unless every element of `values` (a user state, the controller's pi) is finite.
template <class... Context>
void check_finite(std::span<const float> values, const char* what, const Context&... context) {
  for (std::size_t i = 0; i < values.size(); ++i)
    FOFA_CHECK(std::isfinite(values[i]), context..., "non-finite ", what, ": element ", i, " is ", values[i], "; ",
               kOverflowCause);
}

// Throws naming the first candidate (id and position) whose score is not finite.
template <class... Context>
void check_finite_scores(std::span<const float> scores, std::span<const std::int32_t> candidates,
                         const Context&... context) {
  FOFA_CHECK(scores.size() == candidates.size(), context..., scores.size(), " scores for ", candidates.size(),
             " candidates");
  for (std::size_t j = 0; j < scores.size(); ++j)
    FOFA_CHECK(std::isfinite(scores[j]), context..., "non-finite score ", scores[j], " of candidate ", candidates[j],
               " (position ", j, "); ", kOverflowCause);
}

// Candidate positions by score, highest first; equal scores keep the given order.
inline std::vector<index_t> rank_descending(std::span<const float> scores) {
  std::vector<index_t> order(scores.size());
  std::iota(order.begin(), order.end(), index_t{0});
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return scores[static_cast<std::size_t>(a)] > scores[static_cast<std::size_t>(b)];
  });
  return order;
}

// The result of a rerank: order[i] is the position in the candidate list of the i-th best,
// items[i] its id, scores[j] the logit of candidate j (in the given order).
struct Ranking {
  std::vector<index_t> order;
  std::vector<std::int32_t> items;
  std::vector<float> scores;
};

inline Ranking make_ranking(std::span<const std::int32_t> candidates, std::vector<float> scores) {
  Ranking r;
  r.order = rank_descending(scores);
  r.items.reserve(r.order.size());
  for (index_t i : r.order) r.items.push_back(candidates[static_cast<std::size_t>(i)]);
  r.scores = std::move(scores);
  return r;
}

}  // namespace fofa
