// fofa/train/dataset.hpp — interaction data sets (SPEC section 9) and the leave-one-out split.
//
// Two text formats are read: "pairs" (one "user item" pair per line, each user's lines in time
// order, e.g. amazon-games.txt) and "sequences" (one "user item1 item2 ..." line per user, e.g.
// amazon-beauty.txt). Ids are positive 32-bit integers; item 0 is the padding id. Every malformed
// line throws fofa::Error naming file:line and the offending token. Blank lines are skipped.
// split_leave_one_out() follows SASRec: last item = test, second last = validation, the rest =
// training; users with fewer than 3 items keep everything for training and are not evaluated.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fofa/core/error.hpp"
#include "fofa/io/file_util.hpp"

namespace fofa::train {

using item_t = std::int32_t;

enum class DataFormat { automatic, pairs, sequences };

// Per-user chronological item lists; users[u] is the user with external id user_ids[u].
struct InteractionData {
  std::vector<std::int64_t> user_ids;
  std::vector<std::vector<item_t>> users;
  item_t items = 0;  // largest item id (ids are 1..items)
  std::int64_t actions() const {
    std::int64_t n = 0;
    for (const auto& s : users) n += static_cast<std::int64_t>(s.size());
    return n;
  }
};

namespace detail {

// Splits on spaces/tabs; a trailing '\r' (CRLF files) is ignored.
inline std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

inline std::int64_t parse_id(std::string_view tok, const std::string& where, const char* what) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  FOFA_CHECK(ec == std::errc() && p == tok.data() + tok.size(), where, ": ", what, " id '", tok,
             "' is not an integer");
  FOFA_CHECK(v >= 1 && v <= INT32_MAX, where, ": ", what, " id ", v, " out of range [1, ", INT32_MAX, "]");
  return v;
}

}  // namespace detail

// Parses text already in memory; `name` is used in error messages ("name:line: ...").
inline InteractionData parse_interactions(std::string_view text, const std::string& name,
                                          DataFormat format = DataFormat::automatic) {
  struct Line {
    std::size_t number;
    std::vector<std::string_view> fields;
  };
  std::vector<Line> lines;
  std::size_t start = 0, number = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ++number;
    auto f = detail::split_fields(text.substr(start, end - start));
    if (!f.empty()) lines.push_back({number, std::move(f)});
    start = end + 1;
  }
  FOFA_CHECK(!lines.empty(), name, ": no interactions (empty file)");
  if (format == DataFormat::automatic) {
    // Pairs files have exactly two fields on every line; a sequences file has a longer line somewhere.
    const bool all_two = std::all_of(lines.begin(), lines.end(), [](const Line& l) { return l.fields.size() == 2; });
    format = all_two ? DataFormat::pairs : DataFormat::sequences;
  }

  InteractionData data;
  std::unordered_map<std::int64_t, std::size_t> index;      // external user id -> slot
  std::unordered_map<std::int64_t, std::size_t> first_line;  // for duplicate-user messages
  for (const Line& l : lines) {
    const std::string where = name + ":" + std::to_string(l.number);
    FOFA_CHECK(l.fields.size() >= 2, where, ": expected 'user item", format == DataFormat::pairs ? "" : " ...",
               "', got ", l.fields.size(), " field");
    FOFA_CHECK(format == DataFormat::sequences || l.fields.size() == 2, where,
               ": pairs format expects exactly 2 fields, got ", l.fields.size());
    const std::int64_t user = detail::parse_id(l.fields[0], where, "user");
    auto [it, inserted] = index.try_emplace(user, data.users.size());
    if (inserted) {
      data.user_ids.push_back(user);
      data.users.emplace_back();
      first_line[user] = l.number;
    } else {
      FOFA_CHECK(format == DataFormat::pairs, where, ": user ", user, " already has a line (", name, ":",
                 first_line[user], ") in sequences format");
    }
    auto& seq = data.users[it->second];
    for (std::size_t k = 1; k < l.fields.size(); ++k) {
      const auto item = static_cast<item_t>(detail::parse_id(l.fields[k], where, "item"));
      seq.push_back(item);
      data.items = std::max(data.items, item);
    }
  }
  return data;
}

inline InteractionData load_interactions(const std::filesystem::path& path, DataFormat format = DataFormat::automatic) {
  return parse_interactions(io::read_text_file(path, "data file"), path.string(), format);
}

// Directory of the shared data sets: $FOFA_DATA_DIR, else <repo_root>/../shared/data.
inline std::filesystem::path data_dir(const std::filesystem::path& repo_root) {
  if (const char* env = std::getenv("FOFA_DATA_DIR"); env && *env) return env;
  return repo_root / ".." / "shared" / "data";
}

// One user's leave-one-out split. valid/test are 0 (padding) when the user is not evaluated.
struct UserSplit {
  std::vector<item_t> train;
  item_t valid = 0, test = 0;
  bool evaluated() const { return test != 0; }
};

struct SplitData {
  std::vector<UserSplit> users;
  std::vector<std::vector<item_t>> history_sorted;  // every item of the user, sorted unique (for negatives)
  item_t items = 0;
};

inline SplitData split_leave_one_out(const InteractionData& data) {
  FOFA_CHECK(data.items >= 1, "data set has no items");
  SplitData s;
  s.items = data.items;
  s.users.resize(data.users.size());
  s.history_sorted.resize(data.users.size());
  for (std::size_t u = 0; u < data.users.size(); ++u) {
    const auto& seq = data.users[u];
    auto& out = s.users[u];
    if (seq.size() < 3) {
      out.train = seq;
    } else {
      out.train.assign(seq.begin(), seq.end() - 2);
      out.valid = seq[seq.size() - 2];
      out.test = seq.back();
    }
    auto h = seq;
    std::sort(h.begin(), h.end());
    h.erase(std::unique(h.begin(), h.end()), h.end());
    s.history_sorted[u] = std::move(h);
  }
  return s;
}

}  // namespace fofa::train
