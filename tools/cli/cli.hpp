// tools/cli/cli.hpp — what every `fofa` subcommand shares: the command signature, argument
// parsing with usage errors (exit code 2) kept apart from fofa::Error (exit code 1), id lists
// (candidate lists: non-empty) and budgets parsed strictly, and small printing helpers.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <iostream>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
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

// Where a command reports what it wrote: `out` (stdout), unless the file it wrote is stdout
// itself (`fofa to-safetensors m.fofa /dev/stdout | ...`): then stderr, so the report does not
// end up inside the output.
inline std::ostream& report_to(const std::string& written, std::ostream& out) {
  return io::is_stdout(written) ? std::cerr : out;
}

// A malformed command line: main prints it with the command's usage and exits with 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// args: everything after the subcommand name. Returns the exit code.
using CommandFn = int (*)(const std::vector<std::string>& args, std::ostream& out);

// Numbers on the command line are parsed strictly, and every one is checked against the range of
// the variable it goes into, so that no call site can narrow a value silently (--threads 4294967297
// once ran with 1 thread): a value that does not parse or is out of range is a usage error naming the
// option, what the user typed and the allowed range.

// %g: the shortest readable form of a bound or of a budget ("0.01", not "0.0").
inline std::string show(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A count or id: plain decimal digits only ("42"; no sign, space, '+' or hex), in [min, max].
template <std::integral T>
T parse_count(const std::string& s, const std::string& option, T min = 0, T max = std::numeric_limits<T>::max()) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);  // unsigned: digits only
  if (s.empty() || end != s.data() + s.size())
    throw UsageError(option + ": \"" + s + "\" is not a non-negative integer (decimal digits only)");
  if (ec == std::errc::result_out_of_range || !std::in_range<T>(v) || static_cast<T>(v) < min || static_cast<T>(v) > max)
    throw UsageError(option + ": " + s + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return static_cast<T>(v);
}

// "3,17,42" -> {3, 17, 42}; anything but comma-separated decimal int32 values is a usage error (the
// library checks them against the model's items).
inline std::vector<std::int32_t> parse_ids(const std::string& s, const std::string& option) {
  std::vector<std::int32_t> ids;
  if (s.empty()) return ids;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = s.find(',', pos);
    const std::string tok = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    try {
      ids.push_back(parse_count<std::int32_t>(tok, option));
    } catch (const UsageError&) {
      throw UsageError(option + ": \"" + tok + "\" is not an item id (expected e.g. 3,17,42)");
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ids;
}

// A --candidates list: at least one id (an empty list on the command line is a mistake; the
// library would return an empty ranking). A repeated id is ranked once per occurrence, the
// library's documented rule, as candidate lists from a retrieval stage may repeat items.
inline std::vector<std::int32_t> parse_candidates(const std::string& s, const std::string& option) {
  std::vector<std::int32_t> ids = parse_ids(s, option);
  if (ids.empty()) throw UsageError(option + ": empty candidate list (expected e.g. 5,6,7)");
  return ids;
}

// The range of a floating-point option: [min, max], or (min, max] with open_min; never inf or nan.
struct Range {
  double min, max;
  bool open_min = false;
  bool contains(double v) const { return std::isfinite(v) && (open_min ? v > min : v >= min) && v <= max; }
  std::string str() const {  // "(0, 1]", "[0, inf)"
    std::string s = open_min || std::isinf(min) ? "(" : "[";
    s += show(min) + ", " + show(max);
    return s + (std::isinf(max) ? ")" : "]");
  }
};
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr Range kBudget{0, 1, true};  // a session budget, as ForwardOfa::adapt takes it
constexpr Range kNonNegative{0, kInf};
constexpr Range kPositive{0, kInf, true};
constexpr Range kAnyFinite{-kInf, kInf};

// A decimal number in `range` ("0.5", "-1", "1e-3"; no space, '+' or hex), checked as
// typed and again as the T it becomes (--budget 1e-50 is 0 as a float, 1e300 does not fit).
template <std::floating_point T>
T parse_number(const std::string& s, const std::string& option, Range range) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || end != s.data() + s.size())
    throw UsageError(option + ": \"" + s + "\" is not a number");
  if (ec == std::errc{} && !std::isfinite(v)) throw UsageError(option + ": " + s + " is not a finite number");
  if (ec != std::errc{} || !range.contains(v))
    throw UsageError(option + ": " + s + " is out of range " + range.str());
  if (std::abs(v) > std::numeric_limits<T>::max())
    throw UsageError(option + ": " + s + " is too large (the limit is " + show(std::numeric_limits<T>::max()) + ")");
  const T t = static_cast<T>(v);
  if (!range.contains(t)) throw UsageError(option + ": " + s + " rounds to " + show(t) + ", out of range " + range.str());
  return t;
}

// Splits arguments into positionals, valued options (--name VALUE or --name=VALUE) and flags. Any
// other argument starting with '-' is an unknown option, except a lone "-" and everything after
// "--" (positionals: `fofa info -- -odd-name.fofa`).
class Args {
 public:
  Args(const std::vector<std::string>& args, std::vector<std::string> valued, std::vector<std::string> flags) {
    auto is = [](const std::vector<std::string>& v, const std::string& s) {
      for (const auto& x : v)
        if (x == s) return true;
      return false;
    };
    bool options_end = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (options_end || a.size() < 2 || a[0] != '-') {
        positional_.push_back(a);
      } else if (a == "--") {
        options_end = true;
      } else {
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
            value = args[++i];  // taken as it is: --head-bias -1
          }
          if (options_.count(name)) throw UsageError(name + " given twice");
          options_[name] = value;
        } else {
          throw UsageError("unknown option " + name);
        }
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
  // The value of an optional count or number, or `fallback` when the option is absent.
  template <std::integral T>
  T count(const std::string& name, T fallback, T min = 0, T max = std::numeric_limits<T>::max()) const {
    return has(name) ? parse_count<T>(get(name), name, min, max) : fallback;
  }
  template <std::floating_point T>
  T number(const std::string& name, T fallback, Range range) const {
    return has(name) ? parse_number<T>(get(name), name, range) : fallback;
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
