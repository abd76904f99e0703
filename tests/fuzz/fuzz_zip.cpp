// libFuzzer: arbitrary bytes as a torch.save checkpoint (zip reader, unpickler, tensor
// materialisation). Any outcome but a value or fofa::Error is a finding.
#include <cstddef>
#include <cstdint>

#include "../../tools/convert/torch_checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const fofa::convert::ZipArchive zip = fofa::convert::ZipArchive::from_memory(bytes);
    for (const auto& e : zip.entries()) (void)zip.read(e);
  } catch (const fofa::Error&) {
  }
  try {
    (void)fofa::convert::load_torch_checkpoint(fofa::io::copy_bytes(bytes));
  } catch (const fofa::Error&) {
  }
  return 0;
}
