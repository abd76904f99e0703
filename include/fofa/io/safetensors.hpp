// fofa/io/safetensors.hpp — reader and writer for the safetensors format, and conversions
// between .safetensors and .fofa, so Python tools (safetensors, PyTorch, numpy) can exchange
// weights with fofa without pickle.
//
// Format (huggingface/safetensors): u64 LE header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data; offsets are relative to the data start. The reader validates like the reference
// implementation: header size, JSON, known dtypes (F32, F16, BF16, F64, I32, I64), byte length ==
// numel * dtype size, tensors contiguous without overlaps or holes and covering the whole buffer.
// Converting to f32/i32 widens F16/BF16/F64 and range-checks I64. Writers emit F32 and I32.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fofa/core/tensor.hpp"
#include "fofa/io/file_util.hpp"
#include "fofa/io/fofa_file.hpp"

namespace fofa::io {

enum class StDType : std::uint8_t { F32, F16, BF16, F64, I32, I64 };

inline const char* st_dtype_name(StDType t) {
  switch (t) {
    case StDType::F32: return "F32";
    case StDType::F16: return "F16";
    case StDType::BF16: return "BF16";
    case StDType::F64: return "F64";
    case StDType::I32: return "I32";
    case StDType::I64: return "I64";
  }
  return "?";
}
inline std::size_t st_dtype_size(StDType t) {
  switch (t) {
    case StDType::F16:
    case StDType::BF16: return 2;
    case StDType::F32:
    case StDType::I32: return 4;
    case StDType::F64:
    case StDType::I64: return 8;
  }
  return 0;
}
inline std::optional<StDType> st_dtype_from_name(const std::string& s) {
  for (StDType t : {StDType::F32, StDType::F16, StDType::BF16, StDType::F64, StDType::I32, StDType::I64})
    if (s == st_dtype_name(t)) return t;
  return std::nullopt;
}

// IEEE binary16 -> binary32, exact (subnormals, infinities and NaN included).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    std::uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct StTensorInfo {
  std::string name;
  StDType dtype = StDType::F32;
  Shape shape;
  std::uint64_t begin = 0, end = 0;  // byte range in the data section
};

// A validated, immutable safetensors file.
class SafetensorsFile {
 public:
  // The reference implementation's limit on the header length.
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

  SafetensorsFile() = default;
  static SafetensorsFile load_from_memory(std::span<const std::byte> bytes, std::string source = "<memory>") {
    return SafetensorsFile(copy_bytes(bytes), std::move(source));
  }
  static SafetensorsFile read(const std::filesystem::path& path) {
    return SafetensorsFile(read_file_bytes(path), path.string());
  }
  static SafetensorsFile map(const std::filesystem::path& path) {
    return SafetensorsFile(map_file_bytes(path), path.string());
  }

  const std::vector<StTensorInfo>& tensors() const { return impl().tensors; }
  // "__metadata__" as a JSON object of strings (empty when absent).
  const nlohmann::json& metadata() const { return impl().metadata; }
  const std::string& source() const { return impl().source; }

  const StTensorInfo* find(std::string_view name) const {
    for (const auto& t : impl().tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  const StTensorInfo& at(std::string_view name) const {
    const StTensorInfo* t = find(name);
    FOFA_CHECK(t != nullptr, impl().source, ": missing tensor \"", name, "\"");
    return *t;
  }
  // The raw little-endian bytes of a tensor.
  std::span<const std::byte> raw(std::string_view name) const {
    const StTensorInfo& t = at(name);
    return impl().storage->bytes().subspan(impl().data_offset + t.begin, t.end - t.begin);
  }

  // A float copy of a floating-point tensor (F32, F16, BF16, F64 -> f32).
  Tensor<float> to_f32(std::string_view name) const {
    const StTensorInfo& t = at(name);
    const std::byte* p = raw(name).data();
    Tensor<float> out(t.shape);
    const index_t n = t.shape.numel();
    switch (t.dtype) {
      case StDType::F32:
        if (n) std::memcpy(out.data(), p, static_cast<std::size_t>(n) * 4);
        break;
      case StDType::F16:
      case StDType::BF16:
        for (index_t i = 0; i < n; ++i) {
          std::uint16_t h;
          std::memcpy(&h, p + 2 * i, 2);
          out[i] = t.dtype == StDType::F16 ? half_to_float(h) : bf16_to_float(h);
        }
        break;
      case StDType::F64:
        for (index_t i = 0; i < n; ++i) {
          double v;
          std::memcpy(&v, p + 8 * i, 8);
          out[i] = static_cast<float>(v);
        }
        break;
      default:
        ::fofa::detail::throw_error("fofa: ", impl().source, ": tensor \"", name, "\" has integer dtype ",
                                    st_dtype_name(t.dtype), ", expected a floating-point dtype");
    }
    return out;
  }
  // An int32 copy of an integer tensor (I32, I64 with every value in int32 range).
  Tensor<std::int32_t> to_i32(std::string_view name) const {
    const StTensorInfo& t = at(name);
    const std::byte* p = raw(name).data();
    Tensor<std::int32_t> out(t.shape);
    const index_t n = t.shape.numel();
    if (t.dtype == StDType::I32) {
      if (n) std::memcpy(out.data(), p, static_cast<std::size_t>(n) * 4);
    } else if (t.dtype == StDType::I64) {
      for (index_t i = 0; i < n; ++i) {
        std::int64_t v;
        std::memcpy(&v, p + 8 * i, 8);
        FOFA_CHECK(v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max(),
                   impl().source, ": tensor \"", name, "\" element ", i, " = ", v, " does not fit in int32");
        out[i] = static_cast<std::int32_t>(v);
      }
    } else {
      ::fofa::detail::throw_error("fofa: ", impl().source, ": tensor \"", name, "\" has dtype ",
                                  st_dtype_name(t.dtype), ", expected I32 or I64");
    }
    return out;
  }

 private:
  struct Impl {
    std::shared_ptr<const FileBytes> storage;
    std::string source;
    std::vector<StTensorInfo> tensors;
    nlohmann::json metadata = nlohmann::json::object();
    std::size_t data_offset = 0;
  };

  SafetensorsFile(std::shared_ptr<const FileBytes> storage, std::string source) {
    auto im = std::make_shared<Impl>();
    im->storage = std::move(storage);
    im->source = std::move(source);
    validate(*im);
    impl_ = std::move(im);
  }
  const Impl& impl() const {
    FOFA_CHECK(impl_ != nullptr, "use of an empty SafetensorsFile");
    return *impl_;
  }

  static void validate(Impl& im) {
    const std::string& src = im.source;
    const auto b = im.storage->bytes();
    const std::uint64_t size = b.size();
    FOFA_CHECK(size >= 8, src, ": file too small (", size, " bytes) for the safetensors header length");
    const std::uint64_t N = detail::load_u64(b.data());
    FOFA_CHECK(N <= kMaxHeaderBytes, src, ": header length ", N, " exceeds the ", kMaxHeaderBytes, "-byte limit");
    FOFA_CHECK(N <= size - 8, src, ": header length ", N, " exceeds the file (", size - 8,
               " bytes after the length; truncated?)");
    const char* hb = reinterpret_cast<const char*>(b.data() + 8);
    nlohmann::json header = nlohmann::json::parse(hb, hb + N, nullptr, /*allow_exceptions=*/false);
    FOFA_CHECK(!header.is_discarded(), src, ": header is not valid JSON");
    FOFA_CHECK(header.is_object(), src, ": header JSON is not an object");
    const std::uint64_t data_size = size - 8 - N;
    im.data_offset = static_cast<std::size_t>(8 + N);

    for (const auto& [name, t] : header.items()) {
      if (name == "__metadata__") {
        FOFA_CHECK(t.is_object(), src, ": __metadata__ is not an object");
        for (const auto& [k, v] : t.items())
          FOFA_CHECK(v.is_string(), src, ": __metadata__ value of \"", k, "\" is not a string");
        im.metadata = t;
        continue;
      }
      const std::string where = src + ": tensor \"" + name + "\"";
      FOFA_CHECK(t.is_object(), where, ": entry is not an object");
      FOFA_CHECK(t.contains("dtype") && t["dtype"].is_string(), where, ": no string \"dtype\"");
      FOFA_CHECK(t.contains("shape"), where, ": no \"shape\"");
      FOFA_CHECK(t.contains("data_offsets") && t["data_offsets"].is_array() && t["data_offsets"].size() == 2 &&
                     t["data_offsets"][0].is_number_unsigned() && t["data_offsets"][1].is_number_unsigned(),
                 where, ": \"data_offsets\" is not a pair of non-negative integers");
      StTensorInfo info;
      info.name = name;
      const std::string dt = t["dtype"].get<std::string>();
      const auto dtype = st_dtype_from_name(dt);
      FOFA_CHECK(dtype.has_value(), where, ": unsupported dtype \"", dt, "\" (F32, F16, BF16, F64, I32, I64)");
      info.dtype = *dtype;
      info.shape = detail::parse_shape(t["shape"], where);
      info.begin = t["data_offsets"][0].get<std::uint64_t>();
      info.end = t["data_offsets"][1].get<std::uint64_t>();
      FOFA_CHECK(info.begin <= info.end, where, ": data_offsets [", info.begin, ", ", info.end, "] are reversed");
      const std::uint64_t want = static_cast<std::uint64_t>(info.shape.numel()) * st_dtype_size(info.dtype);
      FOFA_CHECK(info.end - info.begin == want, where, ": ", info.end - info.begin, " bytes for shape ",
                 info.shape.str(), " of ", dt, " (expected ", want, ")");
      FOFA_CHECK(info.end <= data_size, where, ": bytes [", info.begin, ", ", info.end, ") lie outside the ",
                 data_size, "-byte data section");
      im.tensors.push_back(std::move(info));
    }
    // The reference format has no holes and no overlaps: sorted ranges must tile the buffer.
    std::vector<const StTensorInfo*> sorted;
    for (const auto& t : im.tensors) sorted.push_back(&t);
    std::sort(sorted.begin(), sorted.end(),
              [](auto* a, auto* c) { return a->begin != c->begin ? a->begin < c->begin : a->end < c->end; });
    std::uint64_t expect = 0;
    for (const auto* t : sorted) {
      FOFA_CHECK(t->begin >= expect, src, ": tensor \"", t->name, "\" at ", t->begin, " overlaps the previous tensor (ends at ",
                 expect, ")");
      FOFA_CHECK(t->begin == expect, src, ": hole of ", t->begin - expect, " bytes before tensor \"", t->name, "\"");
      expect = t->end;
    }
    FOFA_CHECK(expect == data_size, src, ": data section has ", data_size, " bytes but the tensors cover ", expect);
  }

  std::shared_ptr<const Impl> impl_;
};

// Builds a safetensors file from f32/i32 tensors, in insertion order.
class SafetensorsWriter {
 public:
  template <class T>
  SafetensorsWriter& add(const std::string& name, TensorView<const T> v) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int32_t>);
    FOFA_CHECK(!name.empty() && name != "__metadata__", "SafetensorsWriter: invalid tensor name \"", name, "\"");
    for (const auto& e : entries_) FOFA_CHECK(e.name != name, "SafetensorsWriter: duplicate tensor \"", name, "\"");
    Tensor<T> copy = Tensor<T>::from(v);
    Entry e{name, std::is_same_v<T, float> ? StDType::F32 : StDType::I32, v.shape(), {}};
    e.bytes.resize(copy.bytes());
    if (copy.bytes()) std::memcpy(e.bytes.data(), copy.data(), copy.bytes());
    entries_.push_back(std::move(e));
    return *this;
  }
  template <class T>
  SafetensorsWriter& add(const std::string& name, TensorView<T> v) {
    return add<T>(name, TensorView<const T>(v));
  }
  template <class T>
  SafetensorsWriter& add(const std::string& name, const Tensor<T>& t) {
    return add<T>(name, t.view());
  }
  SafetensorsWriter& metadata(const std::string& key, std::string value) {
    metadata_[key] = std::move(value);
    return *this;
  }

  std::vector<std::byte> to_bytes() const {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (const auto& e : entries_) {
      nlohmann::json shape = nlohmann::json::array();
      for (index_t d : e.shape) shape.push_back(d);
      header[e.name] = {{"dtype", st_dtype_name(e.dtype)},
                        {"shape", shape},
                        {"data_offsets", {offset, offset + e.bytes.size()}}};
      offset += e.bytes.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // the reference pads so the data is 8-aligned
    std::vector<std::byte> out(8 + text.size() + offset);
    detail::store_u64(out.data(), text.size());
    std::memcpy(out.data() + 8, text.data(), text.size());
    std::size_t at = 8 + text.size();
    for (const auto& e : entries_) {
      if (!e.bytes.empty()) std::memcpy(out.data() + at, e.bytes.data(), e.bytes.size());
      at += e.bytes.size();
    }
    return out;
  }
  std::size_t write(const std::filesystem::path& path) const {
    const auto bytes = to_bytes();
    write_file_atomic(path, bytes);
    return bytes.size();
  }

 private:
  struct Entry {
    std::string name;
    StDType dtype;
    Shape shape;
    std::vector<std::byte> bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Every tensor of a .fofa file as safetensors; the header travels in __metadata__
// ("fofa_kind", "fofa_config" and "fofa_header": the remaining header fields as JSON).
inline SafetensorsWriter fofa_to_safetensors(const FofaFile& f) {
  SafetensorsWriter w;
  for (const auto& t : f.tensors()) {
    if (t.dtype == DType::f32)
      w.add<float>(t.name, f.f32(t.name));
    else
      w.add<std::int32_t>(t.name, f.i32(t.name));
  }
  nlohmann::json rest = nlohmann::json::object();
  for (const auto& [k, v] : f.header().items())
    if (k != "kind" && k != "config" && k != "tensors") rest[k] = v;
  w.metadata("fofa_kind", f.kind()).metadata("fofa_config", f.config().dump()).metadata("fofa_header", rest.dump());
  return w;
}

// A .fofa writer holding every tensor of a safetensors file (floating dtypes -> f32, integer
// dtypes -> i32). The configuration is `config` when given, else __metadata__["fofa_config"].
inline FofaWriter safetensors_to_fofa(const SafetensorsFile& st, std::optional<nlohmann::json> config = std::nullopt) {
  const nlohmann::json& md = st.metadata();
  auto md_json = [&](const char* key) -> std::optional<nlohmann::json> {
    if (!md.contains(key)) return std::nullopt;
    nlohmann::json j = nlohmann::json::parse(md[key].get<std::string>(), nullptr, false);
    FOFA_CHECK(!j.is_discarded(), st.source(), ": __metadata__[\"", key, "\"] is not valid JSON");
    return j;
  };
  if (!config) config = md_json("fofa_config");
  FOFA_CHECK(config.has_value(), st.source(),
             ": no model configuration (pass one, or store it as __metadata__[\"fofa_config\"])");
  const std::string kind = md.contains("fofa_kind") ? md["fofa_kind"].get<std::string>() : "model";
  FofaWriter w(kind);
  w.config(*config);
  if (auto rest = md_json("fofa_header")) {
    FOFA_CHECK(rest->is_object(), st.source(), ": __metadata__[\"fofa_header\"] is not an object");
    for (const auto& [k, v] : rest->items()) {
      if (k == "meta")
        w.meta(v);
      else if (k != "kind" && k != "config" && k != "tensors")
        w.extra(k, v);
    }
  }
  for (const auto& t : st.tensors()) {
    if (t.dtype == StDType::I32 || t.dtype == StDType::I64)
      w.add(t.name, st.to_i32(t.name));
    else
      w.add(t.name, st.to_f32(t.name));
  }
  return w;
}

}  // namespace fofa::io
