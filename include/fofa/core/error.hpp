// fofa/core/error.hpp — the one exception type fofa throws, and the check macro.
//
// Every recoverable misuse (wrong shape, out-of-range id, malformed file, bad budget)
// throws fofa::Error with a message that names the offending value. Nothing in fofa
// aborts on bad input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace fofa {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
[[noreturn]] inline void throw_error(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}
}  // namespace detail

}  // namespace fofa

// FOFA_CHECK(cond, "message ", value, ...) throws fofa::Error("fofa: message value...")
#define FOFA_CHECK(cond, ...)                                    \
  do {                                                           \
    if (!(cond)) ::fofa::detail::throw_error("fofa: ", __VA_ARGS__); \
  } while (0)
