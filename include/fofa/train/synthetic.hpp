// fofa/train/synthetic.hpp — a seeded synthetic interaction data set for demos and tests.
//
// Two kinds of users, so the controller has a reason to differ between them:
//   - "short" users follow a first-order pattern: the next item is a fixed successor of the current
//     one (a shallow model suffices);
//   - "long" users follow one of two long-range patterns (SyntheticOptions::long_pattern):
//     lag:       the next item is transform[item `long_lag` steps back] (default 3).
//     induction: between the lag steps a user sometimes returns to an item seen once before, at j (a
//                "query"); the next item is then recall[item at j + 1], a new item. Matching the query
//                against "the item before me" needs that item copied into row j + 1 first, i.e. two
//                attention hops; one block can only score the recall images of the whole history (a
//                "bag" of candidates). The second-to-last item is always a query, so the held-out test
//                item is always an answer.
// Each rule step is noise (a random item) with probability `noise`. Same (options, seed) -> same data.
// disjoint_items: short users draw from items 1..items/2 and long users from the rest, so the two
// kinds differ in WHAT they consume as well as in how it is ordered (the controller's mean extractor
// sees only the former; with a shared catalogue the kinds are indistinguishable to it).
// fresh_items (required by induction): only queries repeat an item; a rule whose answer is already in the
// history and noise draw an item the user has not seen. Training negatives and evaluation candidates
// are items outside the history, so "repeat an item of the history" would be learnable at any depth.
// With fresh_items the successor and transform tables are single cycles through their half.
//
// Measured: depth does NOT help on either pattern with fofa's trainer (commands and config in
// tools/cli/cmd_demo.cpp). lag: one block reads any fixed offset; 1, 2 and 4 static blocks reach the same
// HR@10. induction (the demo's `--long-pattern induction` data, static d 32 models, 40 epochs, test
// HR@10 / NDCG@10 per kind):
//   blocks 1: short 0.887 / 0.877, long 0.375 / 0.181
//   blocks 2: short 0.894 / 0.878, long 0.379 / 0.189
//   blocks 4: short 0.891 / 0.876, long 0.410 / 0.193
// Long-range users alone (d 32 and 64, 1-4 blocks, up to 200 epochs) plateau the same way: the optimiser
// settles on the one-hop bag and never forms the two-hop circuit.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "fofa/train/dataset.hpp"
#include "fofa/train/random.hpp"

namespace fofa::train {

enum class LongPattern { lag, induction };

inline LongPattern parse_long_pattern(const std::string& s) {
  if (s == "lag") return LongPattern::lag;
  if (s == "induction") return LongPattern::induction;
  fofa::detail::throw_error("unknown long-range pattern \"", s, "\" (expected lag or induction)");
}

struct SyntheticOptions {
  std::int32_t items = 300;
  std::int64_t users = 600;
  int min_length = 8, max_length = 30;
  double long_range_fraction = 0.5;
  double noise = 0.1;
  std::uint64_t seed = 7;
  int long_lag = 3;  // lag pattern only
  bool disjoint_items = false;
  LongPattern long_pattern = LongPattern::lag;
  double query_rate = 0.3;   // induction only: probability that a step not answering a query is a query
  bool fresh_items = false;  // no repeats within a sequence except induction queries (required by induction)
};

struct SyntheticData {
  InteractionData data;
  std::vector<bool> long_range;  // per user
  // The rules' tables, indexed by item id (0 unused), for tests and documentation.
  std::vector<std::int32_t> successor;  // short users: next = successor[current]
  std::vector<std::int32_t> transform;  // long users: next = transform[item long_lag back]
  std::vector<std::int32_t> recall;     // induction: answer = recall[item after the query's earlier occurrence]
};

// The induction rule's answer for the step after seq.back(): when seq.back() occurred before, at j
// (the latest such j), recall[seq[j + 1]]; otherwise 0.
inline std::int32_t induction_answer(std::span<const item_t> seq, const SyntheticData& syn) {
  FOFA_CHECK(!seq.empty(), "induction_answer of an empty sequence");
  const std::size_t t = seq.size() - 1;
  for (std::size_t j = t; j-- > 0;)
    if (seq[j] == seq[t]) return syn.recall[static_cast<std::size_t>(seq[j + 1])];
  return 0;
}

inline SyntheticData make_synthetic(const SyntheticOptions& o) {
  FOFA_CHECK(o.items >= 10 && o.users >= 1 && o.min_length >= 3 && o.max_length >= o.min_length,
             "synthetic options out of range: items ", o.items, " (>= 10), users ", o.users, " (>= 1), min_length ",
             o.min_length, " (>= 3), max_length ", o.max_length, " (>= min_length)");
  FOFA_CHECK(o.long_range_fraction >= 0 && o.long_range_fraction <= 1, "long_range_fraction ", o.long_range_fraction,
             " must be in [0, 1]");
  FOFA_CHECK(o.noise >= 0 && o.noise <= 1, "noise ", o.noise, " must be in [0, 1]");
  const bool induction = o.long_pattern == LongPattern::induction;
  FOFA_CHECK(o.long_lag >= 1 && o.long_lag < o.min_length, "long_lag ", o.long_lag, " must be in [1, min_length)");
  if (induction) {
    FOFA_CHECK(o.fresh_items, "the induction pattern needs fresh_items (its answers must be new items)");
    FOFA_CHECK(o.min_length >= 4, "the induction pattern needs min_length >= 4, got ", o.min_length);
    FOFA_CHECK(o.query_rate >= 0 && o.query_rate <= 1, "query_rate ", o.query_rate, " must be in [0, 1]");
  }
  Rng rng(o.seed);
  // Item ranges per kind: [lo, lo + n).
  const std::int32_t half = o.items / 2;
  const std::int32_t short_lo = 1, short_n = o.disjoint_items ? half : o.items;
  const std::int32_t long_lo = o.disjoint_items ? half + 1 : 1, long_n = o.disjoint_items ? o.items - half : o.items;
  if (o.fresh_items)
    FOFA_CHECK(2 * o.max_length <= std::min(short_n, long_n), "fresh_items: max_length ", o.max_length,
               " must be at most half of each kind's catalogue (", std::min(short_n, long_n), " items)");
  // Fixed random tables shared by all users of a kind.
  SyntheticData out;
  out.successor.assign(static_cast<std::size_t>(o.items) + 1, 0);
  out.transform.assign(out.successor.size(), 0);
  for (std::size_t i = 1; i < out.successor.size(); ++i) {
    out.successor[i] = static_cast<std::int32_t>(short_lo + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(short_n))));
    out.transform[i] = static_cast<std::int32_t>(long_lo + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(long_n))));
  }
  if (o.fresh_items) {
    // Successor and transform become one cycle through their kind's catalogue (a chain only meets itself
    // after a full turn, so fewer answers collide with the history); recall is a permutation (different
    // retrieved items, different answers).
    auto shuffled = [&](std::int32_t lo, std::int32_t n) {
      std::vector<std::int32_t> p(static_cast<std::size_t>(n));
      for (std::int32_t k = 0; k < n; ++k) p[static_cast<std::size_t>(k)] = lo + k;
      for (std::size_t k = p.size(); k > 1; --k) std::swap(p[k - 1], p[rng.below(k)]);
      return p;
    };
    auto make_cycle = [&](std::vector<std::int32_t>& table, std::int32_t lo, std::int32_t n) {
      const auto c = shuffled(lo, n);
      for (std::size_t k = 0; k < c.size(); ++k) table[static_cast<std::size_t>(c[k])] = c[(k + 1) % c.size()];
    };
    make_cycle(out.successor, short_lo, short_n);
    make_cycle(out.transform, long_lo, long_n);
    if (induction) {
      out.recall.assign(out.successor.size(), 0);
      const auto perm = shuffled(long_lo, long_n);
      for (std::int32_t k = 0; k < long_n; ++k) out.recall[static_cast<std::size_t>(long_lo + k)] = perm[static_cast<std::size_t>(k)];
    }
  }
  std::vector<std::size_t> eligible;
  for (std::int64_t u = 0; u < o.users; ++u) {
    const bool is_long = rng.uniform() < o.long_range_fraction;
    const int len = o.min_length + static_cast<int>(rng.below(static_cast<std::uint64_t>(o.max_length - o.min_length + 1)));
    std::vector<item_t> seq;
    const std::int32_t lo = is_long ? long_lo : short_lo, n = is_long ? long_n : short_n;
    const auto seen = [&](item_t x) { return std::find(seq.begin(), seq.end(), x) != seq.end(); };
    auto random_item = [&] {
      for (;;) {
        const auto x = static_cast<item_t>(lo + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(n))));
        if (!o.fresh_items || !seen(x)) return x;
      }
    };
    if (is_long && induction) {
      // The step after a query is its answer. Other steps are queries (with probability query_rate, always
      // the second-to-last step and never the one before it, so the held-out last item is an answer) or
      // follow the lag pattern. A query repeats an item seen once, at j, whose answer recall[seq[j + 1]] is new.
      std::size_t query_of = 0;  // j + 1 of the pending query, 0 = none
      for (int i = 0; i < len; ++i) {
        item_t x = 0;
        if (query_of) {
          if (!(rng.uniform() < o.noise)) x = out.recall[static_cast<std::size_t>(seq[query_of])];
          query_of = 0;
        } else if (i >= 2 && i != len - 3 && (i == len - 2 || rng.uniform() < o.query_rate)) {
          eligible.clear();
          for (std::size_t j = 0; j + 2 <= static_cast<std::size_t>(i); ++j)
            if (std::count(seq.begin(), seq.end(), seq[j]) == 1 && !seen(out.recall[static_cast<std::size_t>(seq[j + 1])]))
              eligible.push_back(j);
          if (!eligible.empty()) {
            const std::size_t j = eligible[rng.below(eligible.size())];
            x = seq[j];
            query_of = j + 1;
          }
        } else if (i >= o.long_lag && !(rng.uniform() < o.noise)) {
          x = out.transform[static_cast<std::size_t>(seq[static_cast<std::size_t>(i - o.long_lag)])];
          if (seen(x)) x = 0;
        }
        if (x == 0) x = random_item();
        seq.push_back(x);
      }
    } else {
      const int warm = std::max(3, o.long_lag);  // leading random items (3 by default, as before)
      for (int i = 0; i < len; ++i) {
        item_t x = 0;
        if (i >= warm && !(rng.uniform() < o.noise)) {
          if (!is_long)
            x = out.successor[static_cast<std::size_t>(seq.back())];
          else
            x = out.transform[static_cast<std::size_t>(seq[static_cast<std::size_t>(i - o.long_lag)])];
          if (o.fresh_items && seen(x)) x = 0;
        }
        if (x == 0) x = random_item();
        seq.push_back(x);
      }
    }
    out.data.user_ids.push_back(u + 1);
    out.data.users.push_back(std::move(seq));
    out.long_range.push_back(is_long);
  }
  out.data.items = o.items;
  return out;
}

}  // namespace fofa::train
