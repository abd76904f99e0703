// CRC-32 against published zlib check values and its incremental form.
#include <doctest/doctest.h>

#include <string>

#include "fofa/io/crc32.hpp"

using fofa::io::crc32;
using fofa::io::crc32_update;

TEST_CASE("crc32 matches zlib check values") {
  CHECK(crc32(std::string_view("")) == 0x00000000u);
  CHECK(crc32(std::string_view("123456789")) == 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  CHECK(crc32(std::string_view("The quick brown fox jumps over the lazy dog")) == 0x414FA339u);
  CHECK(crc32(std::string_view("a")) == 0xE8B7BE43u);
}

TEST_CASE("crc32_update over pieces equals one pass") {
  std::string s;
  for (int i = 0; i < 1000; ++i) s.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
  const std::uint32_t whole = crc32(std::string_view(s));
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{499}, std::size_t{1000}}) {
    const std::uint32_t a = crc32_update(0, s.data(), cut);
    CHECK(crc32_update(a, s.data() + cut, s.size() - cut) == whole);
  }
}

TEST_CASE("crc32 detects every single-bit flip of a buffer") {
  std::string s = "fofa header and data";
  const std::uint32_t ref = crc32(std::string_view(s));
  for (std::size_t i = 0; i < s.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      std::string t = s;
      t[i] = static_cast<char>(t[i] ^ (1 << bit));
      CHECK(crc32(std::string_view(t)) != ref);
    }
}
