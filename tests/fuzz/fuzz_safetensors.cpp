// libFuzzer: arbitrary bytes as a safetensors file; every tensor of a file that validates is
// converted. Only fofa::Error may escape.
#include <cstddef>
#include <cstdint>

#include "fofa/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto st = fofa::io::SafetensorsFile::load_from_memory({reinterpret_cast<const std::byte*>(data), size});
    for (const auto& t : st.tensors()) {
      try {
        (void)st.to_f32(t.name);
      } catch (const fofa::Error&) {  // integer tensors
        (void)st.to_i32(t.name);
      }
    }
  } catch (const fofa::Error&) {
  }
  return 0;
}
