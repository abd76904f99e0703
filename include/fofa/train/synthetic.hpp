// fofa/train/synthetic.hpp — a seeded synthetic interaction data set for demos and tests.
//
// Two kinds of users, so the controller has a reason to differ between them:
//   - "short" users follow a first-order pattern: the next item is a fixed successor of the current
//     one (a shallow model suffices);
//   - "long" users follow a long-range pattern: the next item is a fixed function of the item
//     `long_lag` steps back (default 3), so the model must look past the last item.
// Each sequence mixes in 10% uniformly random items. Same (options, seed) -> same data everywhere.
// disjoint_items: short users draw from items 1..items/2 and long users from the rest, so the two
// kinds differ in WHAT they consume as well as in how it is ordered (the controller's mean extractor
// sees only the former; with a shared catalogue the kinds are indistinguishable to it).
#pragma once

#include <algorithm>
#include <vector>

#include "fofa/train/dataset.hpp"
#include "fofa/train/random.hpp"

namespace fofa::train {

struct SyntheticOptions {
  std::int32_t items = 300;
  std::int64_t users = 600;
  int min_length = 8, max_length = 30;
  double long_range_fraction = 0.5;
  double noise = 0.1;
  std::uint64_t seed = 7;
  int long_lag = 3;
  bool disjoint_items = false;
};

struct SyntheticData {
  InteractionData data;
  std::vector<bool> long_range;  // per user
};

inline SyntheticData make_synthetic(const SyntheticOptions& o) {
  FOFA_CHECK(o.items >= 10 && o.users >= 1 && o.min_length >= 3 && o.max_length >= o.min_length,
             "synthetic options out of range");
  FOFA_CHECK(o.long_lag >= 1 && o.long_lag < o.min_length, "long_lag ", o.long_lag, " must be in [1, min_length)");
  Rng rng(o.seed);
  // Item ranges per kind: [lo, lo + n).
  const std::int32_t half = o.items / 2;
  const std::int32_t short_lo = 1, short_n = o.disjoint_items ? half : o.items;
  const std::int32_t long_lo = o.disjoint_items ? half + 1 : 1, long_n = o.disjoint_items ? o.items - half : o.items;
  // Fixed random successor tables shared by all users of a kind.
  std::vector<std::int32_t> next1(static_cast<std::size_t>(o.items) + 1), next3(next1.size());
  for (std::size_t i = 1; i < next1.size(); ++i) {
    next1[i] = static_cast<std::int32_t>(short_lo + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(short_n))));
    next3[i] = static_cast<std::int32_t>(long_lo + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(long_n))));
  }
  SyntheticData out;
  for (std::int64_t u = 0; u < o.users; ++u) {
    const bool is_long = rng.uniform() < o.long_range_fraction;
    const int len = o.min_length + static_cast<int>(rng.below(static_cast<std::uint64_t>(o.max_length - o.min_length + 1)));
    std::vector<item_t> seq;
    const std::int32_t lo = is_long ? long_lo : short_lo, n = is_long ? long_n : short_n;
    auto random_item = [&] { return static_cast<item_t>(lo + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(n)))); };
    const int warm = std::max(3, o.long_lag);  // leading random items (3 by default, as before)
    for (int i = 0; i < len; ++i) {
      item_t x;
      if (i < warm || rng.uniform() < o.noise)
        x = random_item();
      else
        x = is_long ? next3[static_cast<std::size_t>(seq[static_cast<std::size_t>(i - o.long_lag)])]
                    : next1[static_cast<std::size_t>(seq.back())];
      seq.push_back(x);
      out.data.items = std::max(out.data.items, x);
    }
    out.data.user_ids.push_back(u + 1);
    out.data.users.push_back(std::move(seq));
    out.long_range.push_back(is_long);
  }
  out.data.items = o.items;
  return out;
}

}  // namespace fofa::train
