// Synthetic demo data (train/synthetic.hpp): disjoint catalogues per user kind, the long-range lag, and the
// induction pattern (fresh items, rule fractions, determinism, option validation).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "fofa/train/synthetic.hpp"

using namespace fofa::train;

TEST_CASE("synthetic data: disjoint catalogues and a functional dependence at the configured lag") {
  for (int lag : {3, 6}) {
    const auto syn = make_synthetic({.items = 100, .users = 300, .min_length = 10, .max_length = 20, .noise = 0.0,
                                     .long_lag = lag, .disjoint_items = true});
    std::map<std::int32_t, std::int32_t> next_long, next_short;  // item at i - lag (long) / i - 1 (short) -> item at i
    int long_users = 0, checked = 0;
    for (std::size_t u = 0; u < syn.data.users.size(); ++u) {
      const auto& seq = syn.data.users[u];
      const bool is_long = syn.long_range[u];
      long_users += is_long;
      for (auto x : seq) CHECK((is_long ? x > 50 && x <= 100 : x >= 1 && x <= 50));
      const int back = is_long ? lag : 1;
      auto& table = is_long ? next_long : next_short;
      for (std::size_t i = static_cast<std::size_t>(std::max(3, lag)); i < seq.size(); ++i) {
        auto [it, fresh] = table.emplace(seq[i - static_cast<std::size_t>(back)], seq[i]);
        if (!fresh) {
          CHECK(it->second == seq[i]);
          ++checked;
        }
      }
    }
    CHECK(long_users > 100);
    CHECK(long_users < 200);
    CHECK(checked > 500);
  }
  CHECK_THROWS_AS(make_synthetic({.min_length = 5, .long_lag = 5}), fofa::Error);
  CHECK_THROWS_AS(make_synthetic({.long_lag = 0}), fofa::Error);
}

namespace {

SyntheticOptions induction_options() {
  return {.items = 160, .users = 400, .min_length = 10, .max_length = 20, .noise = 0.1, .seed = 3, .long_lag = 2,
          .disjoint_items = true, .long_pattern = LongPattern::induction, .query_rate = 0.3, .fresh_items = true};
}

std::string error_of(const SyntheticOptions& o) {
  try {
    make_synthetic(o);
  } catch (const fofa::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("synthetic induction data: deterministic, fresh answers, the rule holds on 1 - noise of its steps") {
  const SyntheticOptions o = induction_options();
  const auto syn = make_synthetic(o);
  const auto again = make_synthetic(o);
  CHECK(syn.data.users == again.data.users);
  CHECK(syn.long_range == again.long_range);
  SyntheticOptions other = o;
  other.seed = 4;
  CHECK(make_synthetic(other).data.users != syn.data.users);
  // The default options still give the data the other tests were written against (no induction tables).
  CHECK(make_synthetic({}).recall.empty());

  int answer_steps = 0, answers_hold = 0, lag_steps = 0, lag_hold = 0, short_steps = 0, short_hold = 0;
  int last_is_answer = 0, long_users = 0;
  for (std::size_t u = 0; u < syn.data.users.size(); ++u) {
    const auto& seq = syn.data.users[u];
    const bool is_long = syn.long_range[u];
    long_users += is_long;
    for (auto x : seq) CHECK((is_long ? x > 80 && x <= 160 : x >= 1 && x <= 80));
    for (std::size_t i = 1; i < seq.size(); ++i) {
      const std::span<const item_t> prefix(seq.data(), i);
      const bool repeat = std::count(prefix.begin(), prefix.end(), seq[i]) > 0;
      if (!is_long) {
        CHECK_FALSE(repeat);  // short users never repeat an item
        if (i < 3) continue;  // leading random items
        ++short_steps;
        short_hold += seq[i] == syn.successor[static_cast<std::size_t>(seq[i - 1])];
        continue;
      }
      const item_t answer = induction_answer(prefix, syn);
      if (answer != 0) {
        // After a query (a repeat of an item seen once) the rule's answer is never in the history.
        CHECK(std::count(prefix.begin(), prefix.end() - 1, prefix.back()) == 1);
        CHECK(std::find(prefix.begin(), prefix.end(), answer) == prefix.end());
        ++answer_steps;
        answers_hold += seq[i] == answer;
        if (i + 1 == seq.size()) ++last_is_answer;
      } else if (!repeat && i >= 2) {
        ++lag_steps;
        lag_hold += seq[i] == syn.transform[static_cast<std::size_t>(seq[i - 2])];
      }
      // Only queries repeat an item, and only an item seen once.
      if (repeat) CHECK(std::count(prefix.begin(), prefix.end(), seq[i]) == 1);
    }
  }
  REQUIRE(long_users > 150);
  REQUIRE(answer_steps > 500);
  const double answer_rate = static_cast<double>(answers_hold) / answer_steps;
  CHECK(answer_rate > 1 - o.noise - 0.04);
  CHECK(answer_rate < 1 - o.noise + 0.04);
  CHECK(last_is_answer > 0.95 * long_users);  // the held-out item tests the rule
  MESSAGE("induction answers ", answer_rate, ", lag steps ", static_cast<double>(lag_hold) / lag_steps,
          ", short steps ", static_cast<double>(short_hold) / short_steps, " follow their rule");
  CHECK(static_cast<double>(lag_hold) / lag_steps > 0.6);
  CHECK(static_cast<double>(short_hold) / short_steps > 0.8);
  // Tables: successor and transform are single cycles through their half, recall a permutation of the long half.
  std::set<std::int32_t> recall_image(syn.recall.begin() + 81, syn.recall.end());
  CHECK(recall_image.size() == 80);
  CHECK(*recall_image.begin() == 81);
  std::int32_t x = 1;
  for (int k = 0; k < 80; ++k) {
    x = syn.successor[static_cast<std::size_t>(x)];
    CHECK((x >= 1 && x <= 80));
    if (k < 79) CHECK(x != 1);
  }
  CHECK(x == 1);
}

TEST_CASE("synthetic options: out-of-range values fail with a message naming them") {
  SyntheticOptions o = induction_options();
  o.fresh_items = false;
  CHECK(error_of(o).find("fresh_items") != std::string::npos);
  o = induction_options();
  o.max_length = 41;  // 80 items per kind: a fresh sequence can be at most 40 long
  CHECK(error_of(o).find("max_length 41") != std::string::npos);
  o = induction_options();
  o.query_rate = 1.5;
  CHECK(error_of(o).find("query_rate 1.5") != std::string::npos);
  o = induction_options();
  o.min_length = 3;
  o.long_lag = 1;
  CHECK(error_of(o).find("min_length >= 4") != std::string::npos);
  o = induction_options();
  o.noise = -0.1;
  CHECK(error_of(o).find("noise") != std::string::npos);
  o = induction_options();
  o.long_range_fraction = 2;
  CHECK(error_of(o).find("long_range_fraction 2") != std::string::npos);
  CHECK(error_of({.items = 5}).find("items 5") != std::string::npos);
  CHECK_THROWS_WITH_AS(parse_long_pattern("lagg"), doctest::Contains("lagg"), fofa::Error);
  CHECK(parse_long_pattern("induction") == LongPattern::induction);
  CHECK(parse_long_pattern("lag") == LongPattern::lag);
}
