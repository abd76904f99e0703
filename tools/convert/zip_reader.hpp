// tools/convert/zip_reader.hpp — a read-only, validating reader for the zip archives torch.save writes.
//
// torch.save (>= 1.6) writes an uncompressed ("stored") zip: one entry per pickle, per storage
// and a version record, with data descriptors (general-purpose flag bit 3, so the local headers
// carry zero sizes) and ZIP64 records once the archive or an entry passes 4 GiB. The central
// directory is the authority here: every offset and size it gives is checked against the file
// size before use, local headers must agree with it, names are unique, and entry data is
// CRC-32 checked on first access. Compressed or encrypted entries are refused with a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fofa/core/error.hpp"
#include "fofa/io/crc32.hpp"
#include "fofa/io/file_util.hpp"

namespace fofa::convert {

// One stored entry as the central directory describes it, data range already validated.
struct ZipEntry {
  std::string name;
  std::uint64_t data_offset = 0;  // absolute offset of the first data byte
  std::uint64_t size = 0;         // stored == uncompressed size
  std::uint32_t crc32 = 0;
};

namespace detail {

inline constexpr std::uint32_t kLocalHeaderSig = 0x04034b50;
inline constexpr std::uint32_t kCentralHeaderSig = 0x02014b50;
inline constexpr std::uint32_t kEndOfCentralSig = 0x06054b50;
inline constexpr std::uint32_t kZip64EndSig = 0x06064b50;
inline constexpr std::uint32_t kZip64LocatorSig = 0x07064b50;
inline constexpr std::size_t kEndOfCentralSize = 22;
inline constexpr std::size_t kMaxCommentSize = 0xFFFF;

// Little-endian reads bounded by the buffer: a read past the end is a fofa::Error, never UB.
class ByteCursor {
 public:
  ByteCursor(std::span<const std::byte> bytes, std::uint64_t pos, const char* what)
      : bytes_(bytes), pos_(pos), what_(what) {}
  std::uint64_t pos() const { return pos_; }
  void skip(std::uint64_t n) {
    need(n);
    pos_ += n;
  }
  template <class T>
  T read() {
    need(sizeof(T));
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      v |= static_cast<T>(static_cast<T>(std::to_integer<unsigned>(bytes_[pos_ + i])) << (8 * i));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(std::uint64_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += n;
    return s;
  }

 private:
  void need(std::uint64_t n) const {
    FOFA_CHECK(pos_ <= bytes_.size() && n <= bytes_.size() - pos_, "zip: truncated ", what_, " at offset ", pos_,
               " (need ", n, " bytes, file has ", bytes_.size(), ")");
  }
  std::span<const std::byte> bytes_;
  std::uint64_t pos_;
  const char* what_;
};

}  // namespace detail

// The archive keeps the file bytes alive; entries are validated once at open.
class ZipArchive {
 public:
  explicit ZipArchive(std::shared_ptr<const io::FileBytes> file) : file_(std::move(file)) {
    FOFA_CHECK(file_ != nullptr, "zip: no file");
    parse();
  }
  static ZipArchive open(const std::string& path) { return ZipArchive(io::read_file_bytes(path)); }
  static ZipArchive from_memory(std::span<const std::byte> bytes) { return ZipArchive(io::copy_bytes(bytes)); }

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const {
    auto it = by_name_.find(std::string(name));
    return it == by_name_.end() ? nullptr : &entries_[it->second];
  }
  // The bytes of an entry after checking its CRC-32 (the view lives as long as the archive).
  std::span<const std::byte> read(const ZipEntry& e) const {
    auto data = file_->bytes().subspan(static_cast<std::size_t>(e.data_offset), static_cast<std::size_t>(e.size));
    const std::uint32_t got = io::crc32(data);
    FOFA_CHECK(got == e.crc32, "zip: CRC-32 mismatch in entry '", e.name, "' (stored ", e.crc32, ", computed ", got,
               "): the file is corrupt");
    return data;
  }
  std::span<const std::byte> read(std::string_view name) const {
    const ZipEntry* e = find(name);
    FOFA_CHECK(e != nullptr, "zip: no entry named '", name, "'");
    return read(*e);
  }

 private:
  void parse() {
    const auto bytes = file_->bytes();
    const std::uint64_t size = bytes.size();
    FOFA_CHECK(size >= detail::kEndOfCentralSize, "zip: file of ", size, " bytes is too small to be a zip archive");
    // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
    std::uint64_t eocd = UINT64_MAX;
    const std::uint64_t lowest = size > detail::kEndOfCentralSize + detail::kMaxCommentSize
                                     ? size - detail::kEndOfCentralSize - detail::kMaxCommentSize
                                     : 0;
    for (std::uint64_t p = size - detail::kEndOfCentralSize + 1; p-- > lowest;) {
      detail::ByteCursor c(bytes, p, "end record");
      if (c.read<std::uint32_t>() != detail::kEndOfCentralSig) continue;
      c.skip(16);
      if (p + detail::kEndOfCentralSize + c.read<std::uint16_t>() == size) {  // comment must end the file
        eocd = p;
        break;
      }
    }
    FOFA_CHECK(eocd != UINT64_MAX, "zip: no end-of-central-directory record (not a zip archive, or truncated)");
    detail::ByteCursor c(bytes, eocd + 4, "end record");
    const std::uint16_t disk = c.read<std::uint16_t>();
    const std::uint16_t cd_disk = c.read<std::uint16_t>();
    c.skip(2);
    std::uint64_t count = c.read<std::uint16_t>();
    std::uint64_t cd_size = c.read<std::uint32_t>();
    std::uint64_t cd_offset = c.read<std::uint32_t>();
    FOFA_CHECK(disk == 0 && cd_disk == 0, "zip: multi-disk archives are not supported");
    if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
      // ZIP64: the locator (20 bytes) precedes the classic end record and points at the ZIP64 end record.
      FOFA_CHECK(eocd >= 20, "zip: ZIP64 sizes announced but no ZIP64 locator");
      detail::ByteCursor loc(bytes, eocd - 20, "ZIP64 locator");
      FOFA_CHECK(loc.read<std::uint32_t>() == detail::kZip64LocatorSig, "zip: ZIP64 sizes announced but no ZIP64 locator");
      loc.skip(4);
      const std::uint64_t end64 = loc.read<std::uint64_t>();
      FOFA_CHECK(end64 < eocd - 20, "zip: ZIP64 end record offset ", end64, " out of range");
      detail::ByteCursor e64(bytes, end64, "ZIP64 end record");
      FOFA_CHECK(e64.read<std::uint32_t>() == detail::kZip64EndSig, "zip: bad ZIP64 end record signature at ", end64);
      e64.skip(8 + 2 + 2 + 4 + 4 + 8);  // record size, versions, disk numbers, entries on this disk
      count = e64.read<std::uint64_t>();
      cd_size = e64.read<std::uint64_t>();
      cd_offset = e64.read<std::uint64_t>();
    }
    FOFA_CHECK(cd_offset <= size && cd_size <= size - cd_offset, "zip: central directory [", cd_offset, ", +",
               cd_size, ") lies outside the ", size, "-byte file");
    FOFA_CHECK(count <= cd_size / 46, "zip: ", count, " entries cannot fit a ", cd_size, "-byte central directory");
    entries_.reserve(static_cast<std::size_t>(count));
    detail::ByteCursor cd(bytes.first(static_cast<std::size_t>(cd_offset + cd_size)), cd_offset, "central directory");
    for (std::uint64_t i = 0; i < count; ++i) parse_central_entry(cd, bytes);
  }

  void parse_central_entry(detail::ByteCursor& cd, std::span<const std::byte> bytes) {
    FOFA_CHECK(cd.read<std::uint32_t>() == detail::kCentralHeaderSig, "zip: bad central directory entry signature at ",
               cd.pos() - 4);
    cd.skip(4);  // versions
    const std::uint16_t flags = cd.read<std::uint16_t>();
    const std::uint16_t method = cd.read<std::uint16_t>();
    cd.skip(4);  // time, date
    ZipEntry e;
    e.crc32 = cd.read<std::uint32_t>();
    std::uint64_t csize = cd.read<std::uint32_t>();
    std::uint64_t usize = cd.read<std::uint32_t>();
    const std::uint16_t name_len = cd.read<std::uint16_t>();
    const std::uint16_t extra_len = cd.read<std::uint16_t>();
    const std::uint16_t comment_len = cd.read<std::uint16_t>();
    const std::uint16_t disk = cd.read<std::uint16_t>();
    cd.skip(6);  // internal and external attributes
    std::uint64_t local = cd.read<std::uint32_t>();
    e.name = cd.read_string(name_len);
    // ZIP64 extended information: only the fields whose classic value is all ones, in this order.
    const std::uint64_t extra_end = cd.pos() + extra_len;
    while (cd.pos() + 4 <= extra_end) {
      const std::uint16_t id = cd.read<std::uint16_t>();
      const std::uint16_t len = cd.read<std::uint16_t>();
      FOFA_CHECK(cd.pos() + len <= extra_end, "zip: extra field of entry '", e.name, "' overruns its header");
      if (id != 0x0001) {
        cd.skip(len);
        continue;
      }
      detail::ByteCursor z(bytes.first(static_cast<std::size_t>(cd.pos() + len)), cd.pos(), "ZIP64 extra field");
      if (usize == 0xFFFFFFFF) usize = z.read<std::uint64_t>();
      if (csize == 0xFFFFFFFF) csize = z.read<std::uint64_t>();
      if (local == 0xFFFFFFFF) local = z.read<std::uint64_t>();
      cd.skip(len);
    }
    FOFA_CHECK(cd.pos() <= extra_end, "zip: extra field of entry '", e.name, "' overruns its header");
    cd.skip(extra_end - cd.pos());
    cd.skip(comment_len);
    FOFA_CHECK(disk == 0, "zip: entry '", e.name, "' is on another disk");
    FOFA_CHECK((flags & 0x1) == 0, "zip: entry '", e.name, "' is encrypted");
    FOFA_CHECK(method == 0, "zip: entry '", e.name, "' is compressed (method ", method,
               "); torch.save writes stored entries only, re-save the checkpoint with torch.save");
    FOFA_CHECK(csize == usize, "zip: stored entry '", e.name, "' has compressed size ", csize,
               " != uncompressed size ", usize);
    e.size = usize;
    // Local header: its sizes may be zero (data descriptor), so only its lengths are used.
    detail::ByteCursor lh(bytes, local, "local header");
    FOFA_CHECK(lh.read<std::uint32_t>() == detail::kLocalHeaderSig, "zip: bad local header signature for entry '",
               e.name, "' at offset ", local);
    lh.skip(22);
    const std::uint16_t lname_len = lh.read<std::uint16_t>();
    const std::uint16_t lextra_len = lh.read<std::uint16_t>();
    FOFA_CHECK(lh.read_string(lname_len) == e.name, "zip: local header name differs from the central directory for '",
               e.name, "'");
    lh.skip(lextra_len);
    e.data_offset = lh.pos();
    FOFA_CHECK(e.size <= bytes.size() - e.data_offset, "zip: data of entry '", e.name, "' [", e.data_offset, ", +",
               e.size, ") runs past the end of the ", bytes.size(), "-byte file");
    FOFA_CHECK(by_name_.emplace(e.name, entries_.size()).second, "zip: duplicate entry name '", e.name, "'");
    entries_.push_back(std::move(e));
  }

  std::shared_ptr<const io::FileBytes> file_;
  std::vector<ZipEntry> entries_;
  std::map<std::string, std::size_t> by_name_;
};

}  // namespace fofa::convert
