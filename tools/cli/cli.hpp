// tools/cli/cli.hpp — what every `fofa` subcommand shares: the command signature, argument
// parsing with usage errors (exit code 2) kept apart from fofa::Error (exit code 1), id lists
// (candidate lists: non-empty, no duplicates) and budgets parsed strictly, and small printing helpers.
#pragma once

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include <nlohmann/json.hpp>

#include "fofa/fofa.hpp"

namespace fofa::cli {

// Whether a stream (STDOUT_FILENO / STDERR_FILENO: 1 / 2) is a terminal, where progress is drawn
// as a bar redrawn in place; elsewhere (a log file, a pipe) as plain lines.
inline bool is_terminal(int fd) {
#if __has_include(<unistd.h>)
  return ::isatty(fd) == 1;
#else
  (void)fd;
  return false;
#endif
}

// A malformed command line: main prints it with the command's usage and exits with 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// args: everything after the subcommand name. Returns the exit code.
using CommandFn = int (*)(const std::vector<std::string>& args, std::ostream& out);

// Splits arguments into positionals, valued options (--name VALUE or --name=VALUE) and flags.
class Args {
 public:
  Args(const std::vector<std::string>& args, std::vector<std::string> valued, std::vector<std::string> flags) {
    auto is = [](const std::vector<std::string>& v, const std::string& s) {
      for (const auto& x : v)
        if (x == s) return true;
      return false;
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
        std::string name = a, value;
        const auto eq = a.find('=');
        const bool inline_value = eq != std::string::npos;
        if (inline_value) {
          name = a.substr(0, eq);
          value = a.substr(eq + 1);
        }
        if (is(flags, name)) {
          if (inline_value) throw UsageError(name + " takes no value");
          flags_[name] = true;
        } else if (is(valued, name)) {
          if (!inline_value) {
            if (i + 1 >= args.size()) throw UsageError(name + " needs a value");
            value = args[++i];
          }
          if (options_.count(name)) throw UsageError(name + " given twice");
          options_[name] = value;
        } else {
          throw UsageError("unknown option " + name);
        }
      } else {
        positional_.push_back(a);
      }
    }
  }
  const std::vector<std::string>& positional() const { return positional_; }
  bool flag(const std::string& name) const { return flags_.count(name) != 0; }
  bool has(const std::string& name) const { return options_.count(name) != 0; }
  const std::string& get(const std::string& name) const {
    auto it = options_.find(name);
    if (it == options_.end()) throw UsageError("missing " + name);
    return it->second;
  }
  // Exactly n positional arguments, named in `what` for the message.
  void expect_positional(std::size_t n, const char* what) const {
    if (positional_.size() != n)
      throw UsageError("expected " + std::string(what) + ", got " + std::to_string(positional_.size()) +
                       " positional argument(s)");
  }

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::string> options_;
  std::map<std::string, bool> flags_;
};

// "3,17,42" -> {3, 17, 42}; anything but comma-separated decimal int32 values is a usage error.
inline std::vector<std::int32_t> parse_ids(const std::string& s, const char* option) {
  std::vector<std::int32_t> ids;
  if (s.empty()) return ids;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = s.find(',', pos);
    const std::string tok = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    errno = 0;
    const long long v = tok.empty() ? 0 : std::strtoll(tok.c_str(), &end, 10);
    if (tok.empty() || *end != '\0' || errno == ERANGE || v < INT32_MIN || v > INT32_MAX)
      throw UsageError(std::string(option) + ": \"" + tok + "\" is not an item id (expected e.g. 3,17,42)");
    ids.push_back(static_cast<std::int32_t>(v));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ids;
}

// A --candidates list: at least one id, each id once. The library would rank an empty list as
// an empty ranking and a repeated id once per occurrence (its documented API rules), which on
// the command line is a typo, so both are usage errors here.
inline std::vector<std::int32_t> parse_candidates(const std::string& s, const char* option) {
  std::vector<std::int32_t> ids = parse_ids(s, option);
  if (ids.empty()) throw UsageError(std::string(option) + ": empty candidate list (expected e.g. 5,6,7)");
  std::vector<std::int32_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end())
    throw UsageError(std::string(option) + ": item " + std::to_string(*dup) + " is listed more than once");
  return ids;
}

// A number; range checks (budget in (0, 1]) are the library's and give fofa::Error.
inline float parse_number(const std::string& s, const char* option) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0') throw UsageError(std::string(option) + ": \"" + s + "\" is not a number");
  return static_cast<float>(v);
}

inline std::uint64_t parse_count(const std::string& s, const char* option) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE || s[0] == '-')
    throw UsageError(std::string(option) + ": \"" + s + "\" is not a non-negative integer");
  return v;
}

inline std::string join(std::span<const float> v, int precision = 4) {
  std::string s;
  char buf[64];
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.*f", i ? " " : "", precision, static_cast<double>(v[i]));
    s += buf;
  }
  return s;
}

inline std::string human_bytes(double b) {
  char buf[64];
  if (b >= 1 << 20)
    std::snprintf(buf, sizeof buf, "%.2f MB", b / (1 << 20));
  else if (b >= 1 << 10)
    std::snprintf(buf, sizeof buf, "%.1f KB", b / (1 << 10));
  else
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

}  // namespace fofa::cli
