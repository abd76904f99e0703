// libFuzzer: arbitrary bytes as an interaction data file (SPEC 9), read as pairs, as sequences and
// with the format detected; every text that parses is split leave-one-out. Only fofa::Error may
// escape, and a parsed data set must hold what the format promises.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fofa/train/dataset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto format : {fofa::train::DataFormat::automatic, fofa::train::DataFormat::pairs,
                            fofa::train::DataFormat::sequences}) {
    try {
      const auto d = fofa::train::parse_interactions(text, "fuzz", format);
      if (d.users.empty() || d.user_ids.size() != d.users.size() || d.items < 1) __builtin_trap();
      for (const auto& seq : d.users) {
        if (seq.empty()) __builtin_trap();
        for (const auto item : seq)
          if (item < 1 || item > d.items) __builtin_trap();
      }
      const auto split = fofa::train::split_leave_one_out(d);
      if (split.users.size() != d.users.size()) __builtin_trap();
    } catch (const fofa::Error&) {
    }
  }
  return 0;
}
