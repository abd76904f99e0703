// fofa/train/synthetic.hpp — a seeded synthetic interaction data set for demos and tests.
//
// Two kinds of users, so the controller has a reason to differ between them:
//   - "short" users follow a first-order pattern: the next item is a fixed successor of the current
//     one (a shallow model suffices);
//   - "long" users follow a long-range pattern: the next item is a fixed function of the item three
//     steps back, so the model must look past the last item (deeper models help).
// Each sequence mixes in 10% uniformly random items. Same (options, seed) -> same data everywhere.
#pragma once

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
};

struct SyntheticData {
  InteractionData data;
  std::vector<bool> long_range;  // per user
};

inline SyntheticData make_synthetic(const SyntheticOptions& o) {
  FOFA_CHECK(o.items >= 10 && o.users >= 1 && o.min_length >= 3 && o.max_length >= o.min_length,
             "synthetic options out of range");
  Rng rng(o.seed);
  // Fixed random successor tables shared by all users of a kind.
  std::vector<std::int32_t> next1(static_cast<std::size_t>(o.items) + 1), next3(next1.size());
  for (std::size_t i = 1; i < next1.size(); ++i) {
    next1[i] = static_cast<std::int32_t>(1 + rng.below(static_cast<std::uint64_t>(o.items)));
    next3[i] = static_cast<std::int32_t>(1 + rng.below(static_cast<std::uint64_t>(o.items)));
  }
  SyntheticData out;
  for (std::int64_t u = 0; u < o.users; ++u) {
    const bool is_long = rng.uniform() < o.long_range_fraction;
    const int len = o.min_length + static_cast<int>(rng.below(static_cast<std::uint64_t>(o.max_length - o.min_length + 1)));
    std::vector<item_t> seq;
    auto random_item = [&] { return static_cast<item_t>(1 + rng.below(static_cast<std::uint64_t>(o.items))); };
    for (int i = 0; i < len; ++i) {
      item_t x;
      if (i < 3 || rng.uniform() < o.noise)
        x = random_item();
      else
        x = is_long ? next3[static_cast<std::size_t>(seq[static_cast<std::size_t>(i - 3)])]
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
