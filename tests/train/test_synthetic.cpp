// Synthetic demo data (train/synthetic.hpp): disjoint catalogues per user kind and the long-range lag.
#include <doctest/doctest.h>

#include <map>

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
