// libFuzzer: arbitrary bytes through the restricted unpickler. Small limits keep each run fast;
// any outcome but a result or fofa::Error is a finding.
#include <cstddef>
#include <cstdint>

#include "../../tools/convert/pickle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fofa::convert::PickleLimits limits;
  limits.max_stack = 1 << 12;
  limits.max_objects = 1 << 16;
  try {
    const auto r = fofa::convert::unpickle({reinterpret_cast<const std::byte*>(data), size}, limits);
    (void)r.at(r.root).kind;
  } catch (const fofa::Error&) {
  }
  return 0;
}
