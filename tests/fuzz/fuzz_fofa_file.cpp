// libFuzzer: arbitrary bytes as a .fofa file; every tensor of a file that validates is read, and
// a "model" file goes through the full model validation. Only fofa::Error may escape the reader.
#include <cstddef>
#include <cstdint>

#include "fofa/io/model_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = fofa::io::FofaFile::load_from_memory({reinterpret_cast<const std::byte*>(data), size});
    float sink = 0;
    for (const auto& t : f.tensors()) {
      if (t.dtype == fofa::io::DType::f32) {
        const auto v = f.view<float>(t.name);
        for (fofa::index_t i = 0; i < v.numel(); ++i) sink += v.data()[i];
      }
    }
    (void)sink;
    if (f.kind() == "model") (void)fofa::io::model_from_file(f);
  } catch (const fofa::Error&) {
  }
  return 0;
}
