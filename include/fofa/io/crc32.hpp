// fofa/io/crc32.hpp — CRC-32 with the zlib/PNG/zip polynomial (reflected 0xEDB88320).
//
// Used for the .fofa checksum and by the converter's zip reader, so it must agree with
// zlib's crc32() bit for bit: crc32("123456789") == 0xCBF43926. The table is built at
// compile time (no global mutable state); crc32_update lets callers checksum in pieces.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace fofa::io {

namespace detail {
constexpr std::array<std::uint32_t, 256> make_crc32_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
inline constexpr std::array<std::uint32_t, 256> kCrc32Table = make_crc32_table();
}  // namespace detail

// Continues a CRC: crc32_update(crc32_update(0, a), b) == crc32(a + b), as zlib's crc32(crc, ...).
inline std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t c = ~crc;
  for (std::size_t i = 0; i < size; ++i) c = detail::kCrc32Table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
  return ~c;
}

inline std::uint32_t crc32(const void* data, std::size_t size) { return crc32_update(0, data, size); }
inline std::uint32_t crc32(std::span<const std::byte> bytes) { return crc32(bytes.data(), bytes.size()); }
inline std::uint32_t crc32(std::string_view s) { return crc32(s.data(), s.size()); }

}  // namespace fofa::io
