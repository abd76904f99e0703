// fofa/train/metrics.hpp — the evaluation protocol of SPEC section 7.
//
// A request is scored by the rank of its one relevant item among candidates: rank = the number
// of other candidates whose score is >= the positive's (ties count AGAINST the positive, so a
// model that scores everything equal gets the worst rank, not the best). HR@k = [rank < k],
// NDCG@k = [rank < k] / log2(rank + 2). Sampled protocol: 100 distinct negatives drawn uniformly
// from items the user never interacted with, from a per-user seeded stream (independent of thread
// order). Full ranking: every item 1..V except the user's other interacted items.
// A NaN score is an error (it would silently rank anywhere).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fofa/core/error.hpp"
#include "fofa/train/dataset.hpp"
#include "fofa/train/random.hpp"

namespace fofa::train {

inline constexpr std::array<int, 3> kCutoffs = {5, 10, 20};

// Rank of candidate `positive` in `scores` (0 = best), ties against the positive.
inline std::int64_t rank_of_positive(std::span<const float> scores, std::size_t positive = 0) {
  FOFA_CHECK(positive < scores.size(), "positive index ", positive, " outside ", scores.size(), " candidates");
  const float p = scores[positive];
  FOFA_CHECK(!std::isnan(p), "NaN score for the positive candidate");
  std::int64_t rank = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (i == positive) continue;
    FOFA_CHECK(!std::isnan(scores[i]), "NaN score for candidate ", i);
    rank += scores[i] >= p;
  }
  return rank;
}

// Full-ranking rank of item `positive` given scores[item] for items 0..V (index 0 = padding, ignored);
// items in `exclude_sorted` other than the positive are not competitors.
inline std::int64_t rank_full(std::span<const float> scores, item_t positive, std::span<const item_t> exclude_sorted) {
  FOFA_CHECK(positive >= 1 && static_cast<std::size_t>(positive) < scores.size(), "positive item ", positive,
             " outside 1..", scores.size() - 1);
  const float p = scores[static_cast<std::size_t>(positive)];
  FOFA_CHECK(!std::isnan(p), "NaN score for the positive item ", positive);
  std::int64_t rank = 0;
  for (std::size_t i = 1; i < scores.size(); ++i) {
    if (static_cast<item_t>(i) == positive) continue;
    FOFA_CHECK(!std::isnan(scores[i]), "NaN score for item ", i);
    rank += scores[i] >= p;
  }
  for (item_t e : exclude_sorted)  // interacted items do not compete
    if (e != positive && e >= 1 && static_cast<std::size_t>(e) < scores.size() && scores[static_cast<std::size_t>(e)] >= p)
      --rank;
  return rank;
}

// `count` distinct items from 1..items not in `history_sorted` (sorted, unique).
inline std::vector<item_t> sample_negatives(std::span<const item_t> history_sorted, item_t items, int count, Rng& rng) {
  FOFA_CHECK(count >= 0, "negative sample count ", count);
  const auto in_history = [&](item_t x) { return std::binary_search(history_sorted.begin(), history_sorted.end(), x); };
  std::int64_t allowed = items;
  for (item_t h : history_sorted) allowed -= (h >= 1 && h <= items);
  FOFA_CHECK(allowed >= count, "cannot draw ", count, " negatives: only ", allowed, " of ", items,
             " items are outside the user's history");
  std::vector<item_t> out;
  out.reserve(static_cast<std::size_t>(count));
  while (static_cast<int>(out.size()) < count) {
    const auto x = static_cast<item_t>(1 + rng.below(static_cast<std::uint64_t>(items)));
    if (in_history(x) || std::find(out.begin(), out.end(), x) != out.end()) continue;
    out.push_back(x);
  }
  return out;
}

// Candidates for one evaluated user: [positive, 100 negatives], from stream (seed, user index).
inline std::vector<item_t> sampled_candidates(const SplitData& data, std::size_t user, item_t positive,
                                              std::uint64_t seed, int negatives = 100) {
  Rng rng(seed, user);
  std::vector<item_t> c{positive};
  std::vector<item_t> neg;
  try {
    neg = sample_negatives(data.history_sorted[user], data.items, negatives, rng);
  } catch (const Error& e) {  // name the user: the data set is fine for most of them
    throw Error(std::string(e.what()) + " (user " + std::to_string(user) + ", 0-based in data file order)");
  }
  c.insert(c.end(), neg.begin(), neg.end());
  return c;
}

// HR/NDCG at 5/10/20 accumulated over requests.
struct RankingMetrics {
  std::array<double, 3> hr{}, ndcg{};
  std::int64_t count = 0;

  void add(std::int64_t rank) {
    FOFA_CHECK(rank >= 0, "negative rank ", rank);
    for (std::size_t k = 0; k < kCutoffs.size(); ++k) {
      if (rank < kCutoffs[k]) {
        hr[k] += 1.0;
        ndcg[k] += 1.0 / std::log2(static_cast<double>(rank) + 2.0);
      }
    }
    ++count;
  }
  void merge(const RankingMetrics& o) {
    for (std::size_t k = 0; k < 3; ++k) hr[k] += o.hr[k], ndcg[k] += o.ndcg[k];
    count += o.count;
  }
  static std::size_t slot(int cutoff) {
    for (std::size_t k = 0; k < kCutoffs.size(); ++k)
      if (kCutoffs[k] == cutoff) return k;
    fofa::detail::throw_error("fofa: cutoff ", cutoff, " is not one of 5, 10, 20");
  }
  double hit_rate(int cutoff) const { return count ? hr[slot(cutoff)] / static_cast<double>(count) : 0.0; }
  double ndcg_at(int cutoff) const { return count ? ndcg[slot(cutoff)] / static_cast<double>(count) : 0.0; }
};

}  // namespace fofa::train
