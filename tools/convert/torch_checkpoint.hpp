// tools/convert/torch_checkpoint.hpp — a torch.save state dict read without Python, as f32 tensors.
//
// load_torch_checkpoint() opens the zip format (torch >= 1.6): `<prefix>/data.pkl` is run through
// the restricted unpickler, every tensor's storage `<prefix>/data/<key>` is looked up and each
// tensor is materialised contiguous in float32 from (storage, offset, sizes, strides), so shared
// storages, views with storage offsets and non-contiguous strides all come out as PyTorch would
// print them. f32/f64/f16/bf16 convert to f32; integer tensors are listed but carry no data. The
// optional `<prefix>/byteorder` record ("little"/"big") is honoured. The legacy pre-1.6 format
// and anything else is refused with a message saying what to do. Nested dicts flatten to dotted
// names ({"model": {"w": t}} -> "model.w"). Every size, offset and stride is checked, and the
// floats materialised are capped at 4 x the file size + 16M (stride-0 views cannot blow up memory).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fofa/core/tensor.hpp"
#include "fofa/io/safetensors.hpp"
#include "pickle.hpp"
#include "zip_reader.hpp"

namespace fofa::convert {

// One entry of a state dict. Floating tensors hold their values; others only their shape.
struct NamedTensor {
  std::string name;
  StorageDtype source_dtype = StorageDtype::f32;
  std::vector<std::int64_t> sizes;
  bool has_values = false;  // false for integer/bool tensors
  Tensor<float> values;     // contiguous, PyTorch order
};

struct StateDict {
  std::vector<NamedTensor> tensors;      // in file order
  std::vector<std::string> non_tensors;  // names of entries that were not tensors (skipped)
  const NamedTensor* find(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
};

namespace detail {

inline std::uint64_t load_bytes_as(const std::byte* p, std::size_t n, bool big_endian) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t src = big_endian ? n - 1 - i : i;
    v |= std::uint64_t{std::to_integer<unsigned>(p[src])} << (8 * i);
  }
  return v;
}

inline float element_as_float(const std::byte* p, StorageDtype t, bool big_endian) {
  const std::uint64_t bits = load_bytes_as(p, dtype_size(t), big_endian);
  switch (t) {
    case StorageDtype::f32: return std::bit_cast<float>(static_cast<std::uint32_t>(bits));
    case StorageDtype::f64: return static_cast<float>(std::bit_cast<double>(bits));
    case StorageDtype::f16: return io::half_to_float(static_cast<std::uint16_t>(bits));
    case StorageDtype::bf16: return io::bf16_to_float(static_cast<std::uint16_t>(bits));
    default: return 0.0f;
  }
}

class CheckpointReader {
 public:
  // Materialised elements may exceed the file's bytes only by tied names and small expansions.
  CheckpointReader(const ZipArchive& zip, std::uint64_t file_size)
      : zip_(zip), element_budget_(4 * file_size + (std::uint64_t{1} << 24)) {}

  StateDict read() {
    std::string pkl;
    for (const auto& e : zip_.entries()) {
      const bool match = e.name == "data.pkl" ||
                         (e.name.size() > 9 && e.name.compare(e.name.size() - 9, 9, "/data.pkl") == 0 &&
                          e.name.find('/') == e.name.size() - 9);
      if (!match) continue;
      FOFA_CHECK(pkl.empty(), "checkpoint: two pickles ('", pkl, "' and '", e.name, "') in one archive");
      pkl = e.name;
    }
    FOFA_CHECK(!pkl.empty(), "checkpoint: zip archive holds no '<name>/data.pkl': not a torch.save file");
    prefix_ = pkl.substr(0, pkl.size() - 8);
    if (const ZipEntry* bo = zip_.find(prefix_ + "byteorder")) {
      auto b = zip_.read(*bo);
      const std::string order(reinterpret_cast<const char*>(b.data()), b.size());
      FOFA_CHECK(order == "little" || order == "big", "checkpoint: byteorder record is '", order.substr(0, 16),
                 "', expected 'little' or 'big'");
      big_endian_ = order == "big";
    }
    pickle_ = unpickle(zip_.read(pkl));
    StateDict sd;
    const PickleValue& root = pickle_.at(pickle_.root);
    FOFA_CHECK(root.kind == PickleValue::Kind::dict, "checkpoint: top-level object is not a dict (state_dict)");
    flatten(pickle_.root, "", 0, sd);
    FOFA_CHECK(!sd.tensors.empty(), "checkpoint: the state dict holds no tensors");
    return sd;
  }

 private:
  void flatten(ValueId dict, const std::string& prefix, int depth, StateDict& sd) {
    FOFA_CHECK(depth < 8, "checkpoint: dicts nested deeper than 8 levels at '", prefix, "'");
    const auto& items = pickle_.at(dict).items;
    for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
      const PickleValue& key = pickle_.at(items[i]);
      FOFA_CHECK(key.kind == PickleValue::Kind::string, "checkpoint: a dict key under '", prefix, "' is not a string");
      const std::string name = prefix + key.text;
      const PickleValue& v = pickle_.at(items[i + 1]);
      if (v.kind == PickleValue::Kind::tensor) {
        for (const auto& t : sd.tensors) FOFA_CHECK(t.name != name, "checkpoint: tensor '", name, "' appears twice");
        sd.tensors.push_back(materialise(name, v));
      } else if (v.kind == PickleValue::Kind::dict) {
        flatten(items[i + 1], name + ".", depth + 1, sd);
      } else {
        sd.non_tensors.push_back(name);
      }
    }
  }

  std::span<const std::byte> storage_bytes(const PickleValue& s) {
    auto it = storages_.find(s.text);
    if (it != storages_.end()) return it->second;
    const std::string entry = prefix_ + "data/" + s.text;
    const ZipEntry* e = zip_.find(entry);
    FOFA_CHECK(e != nullptr, "checkpoint: storage '", s.text, "' has no zip entry '", entry, "'");
    const std::uint64_t elem = dtype_size(s.dtype);
    FOFA_CHECK(static_cast<std::uint64_t>(s.numel) <= e->size / elem && e->size == static_cast<std::uint64_t>(s.numel) * elem,
               "checkpoint: storage '", s.text, "' declares ", s.numel, " ", dtype_name(s.dtype), " elements but its entry has ",
               e->size, " bytes");
    auto bytes = zip_.read(*e);
    storages_.emplace(s.text, bytes);
    return bytes;
  }

  NamedTensor materialise(const std::string& name, const PickleValue& t) {
    const PickleValue& s = pickle_.at(t.storage);
    NamedTensor nt;
    nt.name = name;
    nt.source_dtype = s.dtype;
    nt.sizes = t.sizes;
    FOFA_CHECK(t.sizes.size() <= static_cast<std::size_t>(kMaxRank), "checkpoint: tensor '", name, "' has rank ",
               t.sizes.size(), " (fofa supports up to ", kMaxRank, ")");
    // Largest element index reached: offset + sum (size_i - 1) * stride_i, computed without overflow.
    std::uint64_t numel = 1, last = static_cast<std::uint64_t>(t.offset);
    bool empty = false;
    for (std::size_t i = 0; i < t.sizes.size(); ++i) {
      const auto size = static_cast<std::uint64_t>(t.sizes[i]);
      const auto stride = static_cast<std::uint64_t>(t.strides[i]);
      if (size == 0) empty = true;
      FOFA_CHECK(size == 0 || numel <= (std::uint64_t{1} << 40) / size, "checkpoint: tensor '", name, "' is too large");
      numel *= size;
      if (size > 1) {
        FOFA_CHECK(stride <= (std::uint64_t{1} << 40) && size - 1 <= (std::uint64_t{1} << 40) / (stride ? stride : 1),
                   "checkpoint: tensor '", name, "' has an out-of-range stride ", stride);
        last += (size - 1) * stride;
      }
    }
    const auto bytes = storage_bytes(s);
    // Stride-0 (expanded) views could ask for far more floats than the file holds: cap the total.
    FOFA_CHECK(empty || numel <= element_budget_, "checkpoint: tensor '", name, "' has ", numel,
               " elements, more than the checkpoint's size can account for (", element_budget_, " left)");
    if (!empty) element_budget_ -= numel;
    FOFA_CHECK(empty || last < static_cast<std::uint64_t>(s.numel), "checkpoint: tensor '", name, "' (offset ", t.offset,
               ") reaches element ", last, " of storage '", s.text, "' which has ", s.numel, " elements");
    if (!is_floating(s.dtype)) return nt;
    nt.has_values = true;
    Shape shape;
    for (auto d : t.sizes) shape.push_back(d);
    nt.values = Tensor<float>(shape);
    const std::size_t elem = dtype_size(s.dtype);
    std::int64_t idx[kMaxRank] = {};
    const int rank = static_cast<int>(t.sizes.size());
    for (std::uint64_t e = 0; e < (empty ? 0 : numel); ++e) {
      std::uint64_t src = static_cast<std::uint64_t>(t.offset);
      for (int k = 0; k < rank; ++k) src += static_cast<std::uint64_t>(idx[k] * t.strides[static_cast<std::size_t>(k)]);
      const float v = element_as_float(bytes.data() + src * elem, s.dtype, big_endian_);
      FOFA_CHECK(std::isfinite(v), "checkpoint: tensor '", name, "' holds a non-finite value (", v, ") at flat index ", e);
      nt.values[static_cast<index_t>(e)] = v;
      for (int k = rank - 1; k >= 0; --k) {
        if (++idx[k] < t.sizes[static_cast<std::size_t>(k)]) break;
        idx[k] = 0;
      }
    }
    return nt;
  }

  const ZipArchive& zip_;
  std::string prefix_;
  std::uint64_t element_budget_;
  bool big_endian_ = false;
  PickleResult pickle_;
  std::map<std::string, std::span<const std::byte>> storages_;
};

}  // namespace detail

// What a file's first bytes say it is.
enum class CheckpointFormat { torch_zip, torch_legacy, safetensors, unknown };

inline CheckpointFormat sniff_checkpoint(std::span<const std::byte> b) {
  auto at = [&](std::size_t i) { return i < b.size() ? std::to_integer<unsigned>(b[i]) : 256u; };
  if (at(0) == 'P' && at(1) == 'K' && at(2) == 3 && at(3) == 4) return CheckpointFormat::torch_zip;
  if (at(0) == 0x80 && at(1) >= 2 && at(1) <= 5) return CheckpointFormat::torch_legacy;  // a bare pickle stream
  if (b.size() > 262 && at(257) == 'u' && at(258) == 's' && at(259) == 't' && at(260) == 'a' && at(261) == 'r')
    return CheckpointFormat::torch_legacy;  // the tar format of torch < 0.4
  if (b.size() >= 9 && at(8) == '{') return CheckpointFormat::safetensors;
  return CheckpointFormat::unknown;
}

// Reads a torch.save zip checkpoint held in memory.
inline StateDict load_torch_checkpoint(std::shared_ptr<const io::FileBytes> file) {
  const auto fmt = sniff_checkpoint(file->bytes());
  FOFA_CHECK(fmt != CheckpointFormat::torch_legacy,
             "checkpoint: this is the legacy (pre-1.6) torch.save format, which fofa-convert does not read; "
             "re-save it with torch >= 1.6: torch.save(torch.load(IN), OUT) (zip format is the default)");
  FOFA_CHECK(fmt == CheckpointFormat::torch_zip, "checkpoint: not a torch.save zip file (first bytes do not read 'PK')");
  const std::uint64_t size = file->bytes().size();
  ZipArchive zip(std::move(file));
  return detail::CheckpointReader(zip, size).read();
}

inline StateDict load_torch_checkpoint(const std::string& path) {
  try {
    return load_torch_checkpoint(io::read_file_bytes(path));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace fofa::convert
