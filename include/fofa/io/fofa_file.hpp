// fofa/io/fofa_file.hpp — the .fofa container (format version 1, see docs/DESIGN.md).
//
// A .fofa file is a 40-byte preamble (magic, version, flags, lengths, CRC-32), a JSON header
// ({"kind", "config", "tensors", "meta", ...}) space-padded to a multiple of 64 bytes, and the
// tensor data, each tensor at a 64-aligned offset, so a memory-mapped file is usable in place.
//   FofaWriter  collects named f32/i32 tensors and JSON, writes atomically (temp, fsync, rename).
//   FofaFile    validates a file (read into memory, memory-mapped, or from a byte span) and hands
//               out zero-copy TensorViews; it is immutable and cheap to copy (shared storage).
// Every failed check throws fofa::Error naming the check, e.g. "CRC mismatch" or "tensor X:
// offset 68 is not a multiple of 64"; no input, however malformed, crashes the reader.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fofa/core/tensor.hpp"
#include "fofa/io/crc32.hpp"
#include "fofa/io/file_util.hpp"

namespace fofa::io {

static_assert(std::endian::native == std::endian::little, "fofa files are little-endian; big-endian hosts are not supported");

inline constexpr std::array<unsigned char, 8> kFofaMagic = {'F', 'O', 'F', 'A', 0x00, 0x01, '\r', '\n'};
inline constexpr std::uint32_t kFofaVersion = 1;
inline constexpr std::size_t kFofaPreambleBytes = 40;
inline constexpr std::size_t kFofaAlignment = 64;

enum class DType : std::uint8_t { f32, i32 };

inline const char* dtype_name(DType t) { return t == DType::f32 ? "f32" : "i32"; }
inline std::size_t dtype_size(DType) { return 4; }

template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int32_t>, ".fofa stores f32 and i32 tensors");
  return std::is_same_v<T, float> ? DType::f32 : DType::i32;
}

// One entry of the tensor table; offset counts from the start of the data section.
struct TensorInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  std::uint64_t offset = 0;
  std::uint64_t bytes() const { return static_cast<std::uint64_t>(shape.numel()) * dtype_size(dtype); }
};

namespace detail {

inline std::uint32_t load_u32(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint64_t load_u64(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void store_u32(std::byte* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
inline void store_u64(std::byte* p, std::uint64_t v) { std::memcpy(p, &v, 8); }

// Parses a tensor shape from JSON: an array of at most kMaxRank non-negative integers whose
// product (and byte size) fits comfortably in 63 bits.
inline Shape parse_shape(const nlohmann::json& j, std::string_view where) {
  FOFA_CHECK(j.is_array(), where, ": shape is not an array");
  FOFA_CHECK(j.size() <= static_cast<std::size_t>(kMaxRank), where, ": shape rank ", j.size(), " > ", kMaxRank);
  Shape s;
  std::uint64_t numel = 1;
  for (const auto& d : j) {
    FOFA_CHECK(d.is_number_unsigned(), where, ": shape entry ", d.dump(), " is not a non-negative integer");
    const std::uint64_t v = d.get<std::uint64_t>();
    FOFA_CHECK(v <= (std::uint64_t{1} << 40), where, ": shape entry ", v, " is too large");
    FOFA_CHECK(v == 0 || numel <= (std::uint64_t{1} << 40) / v, where, ": element count overflows");
    numel *= v;
    s.push_back(static_cast<index_t>(v));
  }
  return s;
}

inline std::string json_shape(const Shape& s) {
  nlohmann::json j = nlohmann::json::array();
  for (index_t d : s) j.push_back(d);
  return j.dump();
}

}  // namespace detail

// A validated, immutable .fofa file. Copies share the underlying bytes.
class FofaFile {
 public:
  FofaFile() = default;

  // Validates a file image held in memory (copied into aligned storage). `source` names it in errors.
  static FofaFile load_from_memory(std::span<const std::byte> bytes, std::string source = "<memory>") {
    return FofaFile(copy_bytes(bytes), std::move(source));
  }
  // Reads the whole file into memory and validates it.
  static FofaFile read(const std::filesystem::path& path) { return FofaFile(read_file_bytes(path), path.string()); }
  // Memory-maps the file read-only and validates it; tensor views point into the mapping.
  static FofaFile map(const std::filesystem::path& path) { return FofaFile(map_file_bytes(path), path.string()); }

  const std::string& kind() const { return impl().kind; }
  const std::string& source() const { return impl().source; }
  const nlohmann::json& header() const { return impl().header; }
  const nlohmann::json& config() const { return impl().header.at("config"); }
  // header()["meta"], or an empty object.
  const nlohmann::json& meta() const { return impl().meta; }
  const std::vector<TensorInfo>& tensors() const { return impl().tensors; }
  bool is_mapped() const { return impl().storage->is_mapped(); }
  std::size_t file_bytes() const { return impl().storage->bytes().size(); }
  std::size_t header_bytes() const { return impl().data_offset; }  // preamble + padded JSON
  std::span<const std::byte> raw() const { return impl().storage->bytes(); }

  const TensorInfo* find(std::string_view name) const {
    for (const auto& t : impl().tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }

  // Zero-copy view of tensor `name`; throws if it is missing or has another dtype.
  template <class T>
  TensorView<const T> view(std::string_view name) const {
    const TensorInfo* t = find(name);
    FOFA_CHECK(t != nullptr, impl().source, ": missing tensor \"", name, "\"");
    FOFA_CHECK(t->dtype == dtype_of<T>(), impl().source, ": tensor \"", name, "\" has dtype ", dtype_name(t->dtype),
               ", expected ", dtype_name(dtype_of<T>()));
    const std::byte* p = impl().storage->bytes().data() + impl().data_offset + t->offset;
    return TensorView<const T>(reinterpret_cast<const T*>(p), t->shape);
  }
  // As view<T>(name), and the shape must equal `expected`.
  template <class T>
  TensorView<const T> view(std::string_view name, const Shape& expected) const {
    TensorView<const T> v = view<T>(name);
    FOFA_CHECK(v.shape() == expected, impl().source, ": tensor \"", name, "\" has shape ", v.shape().str(),
               ", expected ", expected.str());
    return v;
  }
  TensorView<const float> f32(std::string_view name) const { return view<float>(name); }
  TensorView<const float> f32(std::string_view name, const Shape& expected) const { return view<float>(name, expected); }
  TensorView<const std::int32_t> i32(std::string_view name) const { return view<std::int32_t>(name); }
  TensorView<const std::int32_t> i32(std::string_view name, const Shape& expected) const {
    return view<std::int32_t>(name, expected);
  }

 private:
  struct Impl {
    std::shared_ptr<const FileBytes> storage;
    std::string source;
    nlohmann::json header;
    nlohmann::json meta = nlohmann::json::object();
    std::string kind;
    std::vector<TensorInfo> tensors;
    std::size_t data_offset = 0;
  };

  FofaFile(std::shared_ptr<const FileBytes> storage, std::string source) {
    auto im = std::make_shared<Impl>();
    im->storage = std::move(storage);
    im->source = std::move(source);
    validate(*im);
    impl_ = std::move(im);
  }

  const Impl& impl() const {
    FOFA_CHECK(impl_ != nullptr, "use of an empty FofaFile");
    return *impl_;
  }

  static void validate(Impl& im) {
    const std::string& src = im.source;
    const std::span<const std::byte> b = im.storage->bytes();
    const std::uint64_t size = b.size();
    FOFA_CHECK(size >= kFofaPreambleBytes, src, ": file too small (", size, " bytes) for the ", kFofaPreambleBytes,
               "-byte .fofa preamble");
    FOFA_CHECK(std::memcmp(b.data(), kFofaMagic.data(), kFofaMagic.size()) == 0, src,
               ": bad magic (not a .fofa file, or mangled by a text-mode transfer)");
    const std::uint32_t version = detail::load_u32(b.data() + 8);
    FOFA_CHECK(version == kFofaVersion, src, ": unsupported .fofa format version ", version, " (this reader reads ",
               kFofaVersion, ")");
    const std::uint32_t flags = detail::load_u32(b.data() + 12);
    FOFA_CHECK(flags == 0, src, ": unknown flags 0x", std::hex, flags, " in a version-1 file");
    const std::uint64_t H = detail::load_u64(b.data() + 16);
    const std::uint64_t D = detail::load_u64(b.data() + 24);
    const std::uint32_t crc = detail::load_u32(b.data() + 32);
    FOFA_CHECK(detail::load_u32(b.data() + 36) == 0, src, ": reserved preamble field is not zero");
    const std::uint64_t room = size - kFofaPreambleBytes;
    FOFA_CHECK(H <= room, src, ": header length ", H, " exceeds the file (truncated? ", room,
               " bytes after the preamble)");
    FOFA_CHECK(D <= room - H, src, ": data length ", D, " exceeds the file (truncated? ", room - H,
               " bytes after the header)");
    FOFA_CHECK(D == room - H, src, ": ", room - H - D, " trailing bytes after the declared data length ", D);
    FOFA_CHECK(H >= 2 && (kFofaPreambleBytes + H) % kFofaAlignment == 0, src, ": header length ", H,
               " does not put the data at a multiple of 64 bytes");
    const std::uint32_t actual = crc32(b.data() + kFofaPreambleBytes, static_cast<std::size_t>(H + D));
    FOFA_CHECK(actual == crc, src, ": CRC mismatch (stored 0x", std::hex, crc, ", computed 0x", actual,
               "): the file is corrupted");
    im.data_offset = static_cast<std::size_t>(kFofaPreambleBytes + H);

    const char* hb = reinterpret_cast<const char*>(b.data() + kFofaPreambleBytes);
    nlohmann::json header = nlohmann::json::parse(hb, hb + H, nullptr, /*allow_exceptions=*/false);
    FOFA_CHECK(!header.is_discarded(), src, ": header is not valid JSON");
    FOFA_CHECK(header.is_object(), src, ": header JSON is not an object");
    FOFA_CHECK(header.contains("kind") && header["kind"].is_string(), src, ": header has no string \"kind\"");
    im.kind = header["kind"].get<std::string>();
    FOFA_CHECK(im.kind == "model" || im.kind == "device", src, ": unknown kind \"", im.kind,
               "\" (expected \"model\" or \"device\")");
    FOFA_CHECK(header.contains("config") && header["config"].is_object(), src, ": header has no \"config\" object");
    FOFA_CHECK(header.contains("tensors") && header["tensors"].is_object(), src,
               ": header has no \"tensors\" object");
    if (header.contains("meta")) {
      FOFA_CHECK(header["meta"].is_object(), src, ": \"meta\" is not an object");
      im.meta = header["meta"];
    }

    for (const auto& [name, t] : header["tensors"].items()) {
      const std::string where = src + ": tensor \"" + name + "\"";
      FOFA_CHECK(!name.empty(), src, ": tensor with an empty name");
      FOFA_CHECK(t.is_object(), where, ": entry is not an object");
      FOFA_CHECK(t.contains("dtype") && t["dtype"].is_string(), where, ": no string \"dtype\"");
      FOFA_CHECK(t.contains("shape"), where, ": no \"shape\"");
      FOFA_CHECK(t.contains("offset") && t["offset"].is_number_unsigned(), where,
                 ": \"offset\" is missing or not a non-negative integer");
      TensorInfo info;
      info.name = name;
      const std::string dt = t["dtype"].get<std::string>();
      FOFA_CHECK(dt == "f32" || dt == "i32", where, ": unsupported dtype \"", dt, "\" (f32 or i32)");
      info.dtype = dt == "f32" ? DType::f32 : DType::i32;
      info.shape = detail::parse_shape(t["shape"], where);
      info.offset = t["offset"].get<std::uint64_t>();
      FOFA_CHECK(info.offset % kFofaAlignment == 0, where, ": offset ", info.offset, " is not a multiple of 64");
      FOFA_CHECK(info.offset <= D && info.bytes() <= D - info.offset, where, ": bytes [", info.offset, ", ",
                 info.offset + info.bytes(), ") lie outside the ", D, "-byte data section");
      im.tensors.push_back(std::move(info));
    }
    // Overlapping tensors would alias each other's storage: reject.
    std::vector<const TensorInfo*> by_offset;
    for (const auto& t : im.tensors)
      if (t.bytes() > 0) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* c) { return a->offset < c->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i)
      FOFA_CHECK(by_offset[i]->offset >= by_offset[i - 1]->offset + by_offset[i - 1]->bytes(), src, ": tensors \"",
                 by_offset[i - 1]->name, "\" and \"", by_offset[i]->name, "\" overlap");
    im.header = std::move(header);
  }

  std::shared_ptr<const Impl> impl_;
};

// Collects tensors and header JSON, then writes a .fofa v1 file.
class FofaWriter {
 public:
  explicit FofaWriter(std::string kind) : kind_(std::move(kind)) {
    FOFA_CHECK(kind_ == "model" || kind_ == "device", "FofaWriter: unknown kind \"", kind_, "\"");
  }

  FofaWriter& config(nlohmann::json c) {
    FOFA_CHECK(c.is_object(), "FofaWriter: config must be a JSON object");
    config_ = std::move(c);
    return *this;
  }
  FofaWriter& meta(nlohmann::json m) {
    FOFA_CHECK(m.is_object(), "FofaWriter: meta must be a JSON object");
    meta_ = std::move(m);
    return *this;
  }
  // An extra top-level header field, e.g. "device". The reserved keys cannot be set this way.
  FofaWriter& extra(const std::string& key, nlohmann::json value) {
    FOFA_CHECK(key != "kind" && key != "config" && key != "tensors" && key != "meta", "FofaWriter: \"", key,
               "\" is a reserved header key");
    extra_[key] = std::move(value);
    return *this;
  }

  // Copies a tensor (any strides). f32 data must be finite: NaN/Inf weights are rejected here
  // rather than discovered as garbage scores on a device.
  template <class T>
  FofaWriter& add(const std::string& name, TensorView<const T> v) {
    FOFA_CHECK(!name.empty(), "FofaWriter: empty tensor name");
    for (const auto& e : entries_) FOFA_CHECK(e.name != name, "FofaWriter: duplicate tensor \"", name, "\"");
    Tensor<T> copy = Tensor<T>::from(v);
    if constexpr (std::is_same_v<T, float>) {
      for (index_t i = 0; i < copy.numel(); ++i)
        FOFA_CHECK(std::isfinite(copy[i]), "FofaWriter: tensor \"", name, "\" element ", i, " is ", copy[i]);
    }
    Entry e;
    e.name = name;
    e.dtype = dtype_of<T>();
    e.shape = v.shape();
    e.bytes.resize(copy.bytes());
    if (copy.bytes()) std::memcpy(e.bytes.data(), copy.data(), copy.bytes());
    entries_.push_back(std::move(e));
    return *this;
  }
  template <class T>
  FofaWriter& add(const std::string& name, TensorView<T> v) {
    return add<T>(name, TensorView<const T>(v));
  }
  template <class T>
  FofaWriter& add(const std::string& name, const Tensor<T>& t) {
    return add<T>(name, t.view());
  }

  // The complete file image.
  std::vector<std::byte> to_bytes() const {
    nlohmann::json header = nlohmann::json::object();
    header["kind"] = kind_;
    header["config"] = config_;
    nlohmann::json tensors = nlohmann::json::object();
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> offsets;
    for (const auto& e : entries_) {
      offset = (offset + kFofaAlignment - 1) / kFofaAlignment * kFofaAlignment;
      offsets.push_back(offset);
      nlohmann::json shape = nlohmann::json::array();
      for (index_t d : e.shape) shape.push_back(d);
      tensors[e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", shape}, {"offset", offset}};
      offset += e.bytes.size();
    }
    header["tensors"] = std::move(tensors);
    header["meta"] = meta_;
    for (const auto& [k, v] : extra_.items()) header[k] = v;
    std::string text = header.dump();
    text.append((kFofaAlignment - (kFofaPreambleBytes + text.size()) % kFofaAlignment) % kFofaAlignment, ' ');
    if (text.size() < 2) text.append(kFofaAlignment, ' ');  // unreachable for an object, kept for the invariant
    const std::uint64_t H = text.size(), D = offset;

    std::vector<std::byte> out(kFofaPreambleBytes + H + D, std::byte{0});
    std::memcpy(out.data(), kFofaMagic.data(), kFofaMagic.size());
    detail::store_u32(out.data() + 8, kFofaVersion);
    detail::store_u32(out.data() + 12, 0);
    detail::store_u64(out.data() + 16, H);
    detail::store_u64(out.data() + 24, D);
    std::memcpy(out.data() + kFofaPreambleBytes, text.data(), H);
    for (std::size_t i = 0; i < entries_.size(); ++i)
      if (!entries_[i].bytes.empty())
        std::memcpy(out.data() + kFofaPreambleBytes + H + offsets[i], entries_[i].bytes.data(),
                    entries_[i].bytes.size());
    detail::store_u32(out.data() + 32, crc32(out.data() + kFofaPreambleBytes, static_cast<std::size_t>(H + D)));
    return out;
  }

  // Writes atomically (temp file, fsync, rename) and returns the file size in bytes.
  std::size_t write(const std::filesystem::path& path) const {
    const std::vector<std::byte> bytes = to_bytes();
    write_file_atomic(path, bytes);
    return bytes.size();
  }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    std::vector<std::byte> bytes;
  };
  std::string kind_;
  nlohmann::json config_ = nlohmann::json::object();
  nlohmann::json meta_ = nlohmann::json::object();
  nlohmann::json extra_ = nlohmann::json::object();
  std::vector<Entry> entries_;
};

}  // namespace fofa::io
