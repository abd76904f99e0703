// Data set parsing (both formats, file:line errors), leave-one-out, and the SPEC 7 metrics by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "fofa/train/dataset.hpp"
#include "fofa/train/metrics.hpp"

using namespace fofa::train;

namespace {
std::string error_of(auto&& f) {
  try {
    f();
  } catch (const fofa::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("pairs format groups lines per user in order") {
  auto d = parse_interactions("1 5\n1 3\n2 7\n\n1 9\r\n", "g.txt");
  REQUIRE(d.users.size() == 2);
  CHECK(d.user_ids == std::vector<std::int64_t>{1, 2});
  CHECK(d.users[0] == std::vector<item_t>{5, 3, 9});
  CHECK(d.users[1] == std::vector<item_t>{7});
  CHECK(d.items == 9);
  CHECK(d.actions() == 4);
}

TEST_CASE("sequences format: one line per user") {
  auto d = parse_interactions("1 1 2 3\n2 4\n3 2 5 6 7\n", "b.txt");
  REQUIRE(d.users.size() == 3);
  CHECK(d.users[0] == std::vector<item_t>{1, 2, 3});
  CHECK(d.users[1] == std::vector<item_t>{4});
  CHECK(d.items == 7);
}

TEST_CASE("malformed lines name file:line and the token") {
  CHECK(error_of([] { parse_interactions("1 2\n1 x\n", "f.txt"); }).find("f.txt:2") != std::string::npos);
  CHECK(error_of([] { parse_interactions("1 2\n1 x\n", "f.txt"); }).find("'x'") != std::string::npos);
  CHECK(error_of([] { parse_interactions("1 2\n0 3\n", "f.txt"); }).find("f.txt:2: user id 0 out of range") !=
        std::string::npos);
  CHECK(error_of([] { parse_interactions("1 2\n2 -3\n", "f.txt"); }).find("f.txt:2") != std::string::npos);
  CHECK(error_of([] { parse_interactions("1 2\n2 99999999999\n", "f.txt"); }).find("out of range") !=
        std::string::npos);
  CHECK(error_of([] { parse_interactions("1 2 3\n7\n", "f.txt"); }).find("f.txt:2") != std::string::npos);
  CHECK(error_of([] { parse_interactions("1 2 3\n1 4 5\n", "f.txt"); }).find("already has a line (f.txt:1)") !=
        std::string::npos);
  CHECK(error_of([] { parse_interactions("1 2 3\n", "f.txt", DataFormat::pairs); }).find("exactly 2") !=
        std::string::npos);
  CHECK(error_of([] { parse_interactions("\n\n", "f.txt"); }).find("empty") != std::string::npos);
  CHECK(error_of([] { load_interactions("/nonexistent/fofa.txt"); }).find("cannot open") != std::string::npos);
}

TEST_CASE("leave-one-out split") {
  auto d = parse_interactions("1 1 2 3 4\n2 5 6\n", "s.txt");
  auto s = split_leave_one_out(d);
  CHECK(s.users[0].train == std::vector<item_t>{1, 2});
  CHECK(s.users[0].valid == 3);
  CHECK(s.users[0].test == 4);
  CHECK(s.users[0].evaluated());
  CHECK(s.users[1].train == std::vector<item_t>{5, 6});  // too short: training only
  CHECK_FALSE(s.users[1].evaluated());
  CHECK(s.history_sorted[0] == std::vector<item_t>{1, 2, 3, 4});
}

TEST_CASE("rank counts ties against the positive") {
  std::vector<float> s = {0.5f, 0.1f, 0.9f, 0.5f, -1.f};
  CHECK(rank_of_positive(s) == 2);  // 0.9 beats it, the tie 0.5 too
  std::vector<float> all_equal(101, 1.0f);
  CHECK(rank_of_positive(all_equal) == 100);
  std::vector<float> bad = {0.5f, NAN};
  CHECK_THROWS_AS(rank_of_positive(bad), fofa::Error);
}

TEST_CASE("HR and NDCG by hand") {
  RankingMetrics m;
  m.add(0);   // hit everywhere, ndcg 1
  m.add(4);   // hit @5, ndcg 1/log2(6)
  m.add(9);   // hit @10/@20, ndcg 1/log2(11)
  m.add(50);  // miss
  CHECK(m.hit_rate(5) == doctest::Approx(0.5));
  CHECK(m.hit_rate(10) == doctest::Approx(0.75));
  CHECK(m.hit_rate(20) == doctest::Approx(0.75));
  CHECK(m.ndcg_at(5) == doctest::Approx((1.0 + 1.0 / std::log2(6.0)) / 4));
  CHECK(m.ndcg_at(10) == doctest::Approx((1.0 + 1.0 / std::log2(6.0) + 1.0 / std::log2(11.0)) / 4));
  CHECK_THROWS_AS(m.hit_rate(7), fofa::Error);
}

TEST_CASE("full ranking excludes other interacted items") {
  // items 1..5; positive 3 with score 0.5; item 1 (0.9) is in history -> excluded; item 4 (0.7) competes.
  std::vector<float> scores = {99.f, 0.9f, 0.1f, 0.5f, 0.7f, 0.5f};
  std::vector<item_t> hist = {1, 3};
  CHECK(rank_full(scores, 3, hist) == 2);  // item 4 and the tie item 5
  CHECK_THROWS_AS(rank_full(scores, 6, hist), fofa::Error);
}

TEST_CASE("sampled negatives avoid history, are distinct, and are seeded") {
  std::vector<item_t> hist = {2, 4, 6};
  Rng a(7, 3), b(7, 3), c(8, 3);
  auto na = sample_negatives(hist, 10, 7, a);
  auto nb = sample_negatives(hist, 10, 7, b);
  auto nc = sample_negatives(hist, 10, 7, c);
  CHECK(na == nb);
  std::sort(na.begin(), na.end());
  CHECK(na == std::vector<item_t>{1, 3, 5, 7, 8, 9, 10});  // all 7 allowed items
  CHECK(nc.size() == 7);
  Rng d(1);
  CHECK_THROWS_AS(sample_negatives(hist, 10, 8, d), fofa::Error);  // only 7 exist
  // Evaluation candidates name the user whose history leaves too few items.
  const SplitData s = split_leave_one_out(parse_interactions("1 1 2 3 4 5\n2 1 2 3 4 5 6 7 8 9\n", "s.txt"));
  CHECK(sampled_candidates(s, 0, 5, 1, 4).size() == 5);
  CHECK_THROWS_WITH_AS(sampled_candidates(s, 1, 9, 1, 4), doctest::Contains("(user 1, 0-based in data file order)"),
                       fofa::Error);
}

TEST_CASE("real data sets load when present") {
  const char* env = std::getenv("FOFA_DATA_DIR");
  const auto dir = data_dir(FOFA_SOURCE_DIR);
  if (!std::filesystem::exists(dir)) {
    REQUIRE_MESSAGE(!(env && *env), "FOFA_DATA_DIR=", env, " does not exist");
    MESSAGE("data directory ", dir.string(), " not present: skipped");
    return;
  }
  auto games = load_interactions(dir / "amazon-games.txt");
  CHECK(games.users.size() == 31013);
  CHECK(games.items == 23715);
  auto beauty = load_interactions(dir / "amazon-beauty.txt");
  CHECK(beauty.users.size() > 1000);
  auto split = split_leave_one_out(games);
  std::size_t evaluated = 0;
  for (auto& u : split.users) evaluated += u.evaluated();
  CHECK(evaluated > 30000);
}
