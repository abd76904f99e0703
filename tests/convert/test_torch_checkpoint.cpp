// The zip reader, the restricted unpickler and the state-dict loader against checkpoints written
// by PyTorch 1.13 (tests/convert/make_checkpoints.py) and against hand-broken bytes.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../../tools/convert/torch_checkpoint.hpp"
#include "test_util.hpp"

using namespace fofa;
using namespace fofa::convert;
using namespace std::string_literals;

namespace {

std::vector<std::byte> file_bytes(const std::string& name) {
  auto f = io::read_file_bytes(data_path(name));
  return {f->bytes().begin(), f->bytes().end()};
}

StateDict load_bytes(const std::vector<std::byte>& b) { return load_torch_checkpoint(io::copy_bytes(b)); }

std::string error_of(const std::vector<std::byte>& b) {
  try {
    load_bytes(b);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Every tensor of `sd` equals the values PyTorch printed (exact: all conversions are exact).
void check_against(const StateDict& sd, const nlohmann::json& expected) {
  CHECK(sd.tensors.size() == expected.size());
  for (const auto& item : expected.items()) {
    const std::string& name = item.key();  // INFO captures it: no structured binding
    const nlohmann::json& exp = item.value();
    INFO("tensor ", name);
    const NamedTensor* t = sd.find(name);
    REQUIRE(t != nullptr);
    CHECK(t->sizes == exp["shape"].get<std::vector<std::int64_t>>());
    if (exp.contains("integer")) {
      CHECK_FALSE(t->has_values);
      continue;
    }
    REQUIRE(t->has_values);
    const auto values = exp["values"].get<std::vector<float>>();
    REQUIRE(t->values.numel() == static_cast<index_t>(values.size()));
    for (std::size_t i = 0; i < values.size(); ++i) CHECK(t->values[static_cast<index_t>(i)] == values[i]);
  }
}

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> b(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) b[i] = static_cast<std::byte>(s[i]);
  return b;
}

}  // namespace

TEST_CASE("torch.save tensors: shared storage, offsets, strides, f16/bf16/f64, scalars, nested dicts") {
  const StateDict sd = load_torch_checkpoint(data_path("convert_tensors.pt"));
  check_against(sd, read_json("convert_tensors.json"));
  CHECK(sd.non_tensors == std::vector<std::string>{"epoch"});
  CHECK(sd.find("model.count")->source_dtype == StorageDtype::i64);
  CHECK(sd.find("model.half")->source_dtype == StorageDtype::f16);
  CHECK(sd.find("model.scalar")->values.rank() == 0);
}

TEST_CASE("ZIP64 archives (sizes and offsets in extra fields, ZIP64 end records) read the same") {
  check_against(load_torch_checkpoint(data_path("convert_tensors_zip64.pt")), read_json("convert_tensors.json"));
}

TEST_CASE("a big-endian byteorder record swaps every element width") {
  check_against(load_torch_checkpoint(data_path("convert_bigendian.pt")), read_json("convert_bigendian.json"));
}

TEST_CASE("a pickle asking for os.system is refused before anything runs") {
  const std::string err = error_of(file_bytes("convert_malicious.pt"));
  CHECK(err.find("refusing global 'os.system'") != std::string::npos);
}

TEST_CASE("the legacy pre-1.6 format is refused with a way out") {
  const std::string err = error_of(file_bytes("convert_legacy.pt"));
  CHECK(err.find("legacy (pre-1.6)") != std::string::npos);
  CHECK(err.find("re-save") != std::string::npos);
}

TEST_CASE("corrupt data fails the CRC-32 check, naming the entry") {
  auto b = file_bytes("convert_tensors.pt");
  const ZipArchive zip = ZipArchive::from_memory(b);
  const ZipEntry* e = zip.find("convert_tensors/data/0");
  REQUIRE(e != nullptr);
  b[static_cast<std::size_t>(e->data_offset)] ^= std::byte{0x40};
  const std::string err = error_of(b);
  CHECK(err.find("CRC-32 mismatch in entry 'convert_tensors/data/0'") != std::string::npos);
}

TEST_CASE("every truncation of a checkpoint is an Error, never a crash") {
  const auto b = file_bytes("convert_tensors.pt");
  int errors = 0;
  for (std::size_t n = 0; n < b.size(); n += 7) {
    std::vector<std::byte> cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
    CHECK_THROWS_AS(load_bytes(cut), Error);
    ++errors;
  }
  CHECK(errors > 100);
}

TEST_CASE("single-byte corruptions anywhere are either detected or harmless") {
  const auto b = file_bytes("convert_tensors_zip64.pt");
  for (std::size_t i = 0; i < b.size(); i += 3) {
    auto c = b;
    c[i] ^= std::byte{0xFF};
    try {
      load_bytes(c);  // e.g. a flipped byte in an unused header field
    } catch (const Error&) {
    }
  }
}

TEST_CASE("zip: compressed entries, bad signatures and out-of-range offsets are named") {
  auto b = file_bytes("convert_tensors.pt");
  const ZipArchive zip = ZipArchive::from_memory(b);
  // The method field of the first central directory entry sits 10 bytes into it.
  std::size_t cd = 0;
  for (std::size_t i = 0; i + 4 <= b.size(); ++i)
    if (b[i] == std::byte{'P'} && b[i + 1] == std::byte{'K'} && b[i + 2] == std::byte{1} && b[i + 3] == std::byte{2}) {
      cd = i;
      break;
    }
  REQUIRE(cd > 0);
  auto deflated = b;
  deflated[cd + 10] = std::byte{8};
  CHECK(error_of(deflated).find("is compressed (method 8)") != std::string::npos);
  auto far = b;
  far[cd + 42 + 3] = std::byte{0x7F};  // local header offset -> ~2 GiB
  CHECK(error_of(far).find("zip: truncated local header") != std::string::npos);
  CHECK(error_of(bytes_of("PK\x03\x04 this is not really a zip archive at all")).find("end-of-central-directory") != std::string::npos);
  CHECK(error_of(bytes_of("hello")).find("not a torch.save zip") != std::string::npos);
}

TEST_CASE("pickle: only the allow-list, bounded, no code") {
  auto run = [](const std::string& s) -> std::string {
    try {
      unpickle(bytes_of(s));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(run("\x80\x02" "cbuiltins\neval\n)R."s).find("refusing global 'builtins.eval'") != std::string::npos);
  CHECK(run("\x80\x02" "cposix\nsystem\n)R."s).find("refusing global 'posix.system'") != std::string::npos);
  // STACK_GLOBAL (protocol 4) goes through the same check.
  CHECK(run("\x80\x04\x8c\x02os\x8c\x06system\x93)R."s).find("refusing global 'os.system'") != std::string::npos);
  CHECK(run("\x80\x02" "ccollections\nOrderedDict\n)\x81."s).find("unsupported opcode 0x81") != std::string::npos);
  CHECK(run("\x80\x02}"s).find("truncated") != std::string::npos);
  CHECK(run("\x80\x02h\x05."s).find("memo entry 5 read before it was written") != std::string::npos);
  CHECK(run("\x80\x02s."s).find("stack underflow") != std::string::npos);
  CHECK(run("\x80\x02X\xff\xff\xff\x7f"s).find("runs past the end") != std::string::npos);
  // A storage type is not callable even though it is an allowed global.
  CHECK(run("\x80\x02" "ctorch\nFloatStorage\n)R."s).find("refusing to call 'torch FloatStorage'") != std::string::npos);
  // A list containing itself is fine for the arena (no reference cycle, no leak under ASan).
  const PickleResult r = unpickle(bytes_of("\x80\x02]q\x00h\x00" "a."s));
  CHECK(r.at(r.root).items.size() == 1);
  CHECK(r.at(r.root).items[0] == r.root);
  PickleLimits tight;
  tight.max_stack = 4;
  CHECK_THROWS_AS(unpickle(bytes_of("\x80\x02NNNNN."s), tight), Error);
}

namespace {

// A stored zip (no data descriptors) in memory, enough for hand-written pickles.
std::vector<std::byte> make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  auto put16 = [](std::vector<std::byte>& v, unsigned x) {
    v.push_back(std::byte(x & 0xFF));
    v.push_back(std::byte((x >> 8) & 0xFF));
  };
  auto put32 = [&](std::vector<std::byte>& v, std::uint32_t x) {
    put16(v, x & 0xFFFF);
    put16(v, x >> 16);
  };
  std::vector<std::byte> body, central;
  for (const auto& [name, data] : entries) {
    const std::uint32_t off = static_cast<std::uint32_t>(body.size());
    const std::uint32_t crc = io::crc32(data);
    for (auto* v : {&body, &central}) {
      put32(*v, v == &body ? 0x04034b50 : 0x02014b50);
      if (v == &central) put16(*v, 20);
      for (int i = 0; i < 5; ++i) put16(*v, i == 0 ? 20 : 0);  // version, flags, method, time, date
      put32(*v, crc);
      put32(*v, static_cast<std::uint32_t>(data.size()));
      put32(*v, static_cast<std::uint32_t>(data.size()));
      put16(*v, static_cast<unsigned>(name.size()));
      put16(*v, 0);
      if (v == &central) {
        for (int i = 0; i < 3; ++i) put16(*v, 0);  // comment, disk, internal attributes
        put32(*v, 0);
        put32(*v, off);
      }
      for (char c : name) v->push_back(std::byte(c));
    }
    for (char c : data) body.push_back(std::byte(c));
  }
  const std::uint32_t cd_off = static_cast<std::uint32_t>(body.size());
  body.insert(body.end(), central.begin(), central.end());
  put32(body, 0x06054b50);
  put16(body, 0);
  put16(body, 0);
  put16(body, static_cast<unsigned>(entries.size()));
  put16(body, static_cast<unsigned>(entries.size()));
  put32(body, static_cast<std::uint32_t>(central.size()));
  put32(body, cd_off);
  put16(body, 0);
  return body;
}

// {"w": _rebuild_tensor_v2(FloatStorage "0" of 2 elements, offset, size, stride)} as torch pickles it.
std::string tensor_pickle(const std::string& offset, const std::string& size, const std::string& stride) {
  return "\x80\x02}(X\x01\x00\x00\x00w"
         "ctorch._utils\n_rebuild_tensor_v2\n"
         "((X\x07\x00\x00\x00storage" "ctorch\nFloatStorage\n" "X\x01\x00\x00\x00" "0" "X\x03\x00\x00\x00" "cpu"
         "K\x02tQ"s + offset + size + stride + "\x89}tRu."s;
}

const std::string kTwoFloats = "\x00\x00\x80\x3f\x00\x00\x00\x40"s;  // 1.0f, 2.0f

}  // namespace

TEST_CASE("tensor descriptions reaching past their storage are refused") {
  // offset 1, size (2,), stride (1,) needs element 2 of 2.
  const std::string err = error_of(make_zip({{"a/data.pkl", tensor_pickle("K\x01", "K\x02\x85", "K\x01\x85")},
                                             {"a/data/0", kTwoFloats}}));
  CHECK(err.find("reaches element 2 of storage '0' which has 2 elements") != std::string::npos);
  // The storage entry must hold exactly numel * 4 bytes.
  CHECK(error_of(make_zip({{"a/data.pkl", tensor_pickle("K\x00"s, "K\x02\x85", "K\x01\x85")}, {"a/data/0", "abc"}}))
            .find("declares 2 float32 elements but its entry has 3 bytes") != std::string::npos);
}

TEST_CASE("stride-0 (expanded) views materialise, within a budget tied to the file size") {
  const StateDict sd = load_bytes(make_zip({{"a/data.pkl", tensor_pickle("K\x01", "K\x03\x85", "K\x00\x85"s)},
                                            {"a/data/0", kTwoFloats}}));
  REQUIRE(sd.tensors.size() == 1);
  CHECK(sd.tensors[0].values.numel() == 3);
  for (index_t i = 0; i < 3; ++i) CHECK(sd.tensors[0].values[i] == 2.0f);
  // (2^20, 2^20) floats from a 2-element storage: refused instead of allocating 4 TiB.
  const std::string err = error_of(make_zip(
      {{"a/data.pkl", tensor_pickle("K\x00"s, "J\x00\x00\x10\x00J\x00\x00\x10\x00\x86"s, "K\x00K\x00\x86"s)},
       {"a/data/0", kTwoFloats}}));
  CHECK(err.find("more than the checkpoint's size can account for") != std::string::npos);
}
