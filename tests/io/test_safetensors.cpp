// safetensors: reading a file written by an independent numpy writer, round trips, dtype
// widening, every validation rule of the reference implementation, and .fofa interop.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "fofa/io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace fofa;
using namespace fofa::io;

namespace {

std::span<const std::byte> as_span(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

std::vector<std::byte> raw_st(const std::string& header, std::size_t data_bytes) {
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0});
  io::detail::store_u64(out.data(), header.size());
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

std::string st_error(const std::vector<std::byte>& bytes) {
  try {
    SafetensorsFile::load_from_memory(as_span(bytes));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("half and bfloat16 widening is exact") {
  CHECK(half_to_float(0x3C00) == 1.0f);
  CHECK(half_to_float(0xC000) == -2.0f);
  CHECK(half_to_float(0x7BFF) == 65504.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(half_to_float(0x03FF) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(half_to_float(0x8000) == 0.0f);
  CHECK(std::isinf(half_to_float(0x7C00)));
  CHECK(std::isnan(half_to_float(0x7E00)));
  CHECK(bf16_to_float(0x3F80) == 1.0f);
  CHECK(bf16_to_float(0xC060) == -3.5f);
}

TEST_CASE("reads the numpy-written safetensors fixture") {
  const fs::path path = fs::path(FOFA_TEST_DATA_DIR) / "io" / "numpy_written.safetensors";
  for (const SafetensorsFile& f : {SafetensorsFile::read(path), SafetensorsFile::map(path)}) {
    CHECK(f.tensors().size() == 7);
    CHECK(f.metadata()["writer"] == "numpy fixture");
    const Tensor<float> a = f.to_f32("layer.f32");
    CHECK(a.shape() == Shape{2, 3});
    for (index_t i = 0; i < 6; ++i) CHECK(a[i] == static_cast<float>(i) * 0.5f - 1.0f);
    const Tensor<float> h = f.to_f32("layer.f16");
    CHECK(h.shape() == Shape{5});
    CHECK(h[0] == 1.0f);
    CHECK(h[1] == -2.0f);
    CHECK(h[2] == 65504.0f);
    CHECK(h[3] == std::ldexp(1.0f, -24));
    CHECK(h[4] == 0.333251953125f);
    const Tensor<float> b = f.to_f32("layer.bf16");
    CHECK(b.shape() == Shape{2, 2});
    CHECK(b[0] == 1.0f);
    CHECK(b[1] == -3.5f);
    CHECK(b[2] == 256.0f);
    CHECK(b[3] == 0.0078125f);
    const Tensor<float> d = f.to_f32("layer.f64");
    CHECK(d.shape() == Shape{1, 2});
    CHECK(d[0] == static_cast<float>(1.0 / 3.0));
    CHECK(d[1] == -1e10f);
    const Tensor<std::int32_t> i = f.to_i32("ids.i32");
    CHECK(i[0] == 0);
    CHECK(i[1] == -1);
    CHECK(i[2] == 2147483647);
    CHECK(i[3] == -2147483647 - 1);
    const Tensor<std::int32_t> j = f.to_i32("ids.i64");
    CHECK(j.shape() == Shape{3});
    CHECK(j[0] == 5);
    CHECK(j[1] == -6);
    CHECK(j[2] == 7);
    const Tensor<float> s = f.to_f32("scalar");
    CHECK(s.rank() == 0);
    CHECK(s[0] == 2.75f);
    CHECK_THROWS_WITH_AS(f.to_f32("ids.i32"), doctest::Contains("integer dtype I32"), Error);
    CHECK_THROWS_WITH_AS(f.to_i32("layer.f32"), doctest::Contains("expected I32 or I64"), Error);
    CHECK_THROWS_WITH_AS(f.to_f32("missing"), doctest::Contains("missing tensor \"missing\""), Error);
  }
}

TEST_CASE("safetensors writer round trip and format details") {
  Tensor<float> w(Shape{3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor<std::int32_t> ids(Shape{3}, {9, 8, 7});
  SafetensorsWriter sw;
  sw.add("w", w).add("ids", ids).metadata("k", "v");
  const auto bytes = sw.to_bytes();
  // The header is padded so the data starts 8-aligned, like the reference writer.
  CHECK(io::detail::load_u64(bytes.data()) % 8 == 0);
  const SafetensorsFile f = SafetensorsFile::load_from_memory(as_span(bytes));
  CHECK(f.metadata()["k"] == "v");
  CHECK(f.at("w").dtype == StDType::F32);
  CHECK(f.at("ids").dtype == StDType::I32);
  const Tensor<float> w2 = f.to_f32("w");
  CHECK(w2.shape() == Shape{3, 2});
  for (index_t i = 0; i < 6; ++i) CHECK(w2[i] == w[i]);
  CHECK(f.to_i32("ids")[2] == 7);
  CHECK_THROWS_AS(sw.add("w", w), Error);
  CHECK_THROWS_AS(sw.add("__metadata__", w), Error);
}

TEST_CASE("truncating a safetensors file at any length fails cleanly") {
  const fs::path path = fs::path(FOFA_TEST_DATA_DIR) / "io" / "numpy_written.safetensors";
  const auto file = read_file_bytes(path);
  const std::vector<std::byte> good(file->bytes().begin(), file->bytes().end());
  CHECK(st_error(good).empty());
  for (std::size_t n = 0; n < good.size(); ++n) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    CAPTURE(n);
    CHECK_FALSE(st_error(cut).empty());
  }
}

TEST_CASE("safetensors validation rules") {
  auto err = [](const std::string& h, std::size_t data) { return st_error(raw_st(h, data)); };
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8).empty());
  CHECK(err(R"({})", 0).empty());
  CHECK(st_error({}).find("too small") != std::string::npos);
  {
    auto b = raw_st("{}", 0);
    io::detail::store_u64(b.data(), 200'000'000);
    CHECK(st_error(b).find("limit") != std::string::npos);
    io::detail::store_u64(b.data(), 3);
    CHECK(st_error(b).find("exceeds the file") != std::string::npos);
  }
  CHECK(err(R"({"a": )", 0).find("not valid JSON") != std::string::npos);
  CHECK(err(R"([])", 0).find("not an object") != std::string::npos);
  CHECK(err(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})", 2).find("unsupported dtype \"U8\"") !=
        std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8).find("expected 12") !=
        std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8).find("reversed") !=
        std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4).find("outside") !=
        std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8).find("data_offsets") !=
        std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            12)
            .find("overlaps") != std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8).find("hole of 4 bytes") !=
        std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8).find("cover 4") !=
        std::string::npos);
  CHECK(err(R"({"__metadata__": {"a": 1}})", 0).find("not a string") != std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}})", 0).find("non-negative") !=
        std::string::npos);
  CHECK(err(R"({"a": {"dtype": "F32", "shape": [1, 1, 1, 1, 1], "data_offsets": [0, 4]}})", 4).find("rank 5") !=
        std::string::npos);
  {
    auto b = raw_st(R"({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", 8);
    const std::int64_t big = std::int64_t{1} << 40;
    std::memcpy(b.data() + b.size() - 8, &big, 8);
    const SafetensorsFile f = SafetensorsFile::load_from_memory(as_span(b));
    CHECK_THROWS_WITH_AS(f.to_i32("a"), doctest::Contains("does not fit in int32"), Error);
  }
}

TEST_CASE("fofa -> safetensors -> fofa keeps tensors, config and header fields") {
  Tensor<float> e(Shape{4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor<std::int32_t> ids(Shape{2}, {3, 1});
  FofaWriter w("device");
  w.config({{"items", 3}, {"d", 2}}).meta({{"by", "test"}}).extra("device", {{"kept", {1}}, {"budget", 0.5}});
  w.add("emb", e).add("ids", ids);
  const auto fbytes = w.to_bytes();
  const FofaFile f = FofaFile::load_from_memory(as_span(fbytes));

  const auto sbytes = fofa_to_safetensors(f).to_bytes();
  const SafetensorsFile st = SafetensorsFile::load_from_memory(as_span(sbytes));
  CHECK(st.metadata()["fofa_kind"] == "device");
  const auto back_bytes = safetensors_to_fofa(st).to_bytes();
  const FofaFile back = FofaFile::load_from_memory(as_span(back_bytes));
  CHECK(back.kind() == "device");
  CHECK(back.config() == f.config());
  CHECK(back.meta() == f.meta());
  CHECK(back.header()["device"] == f.header()["device"]);
  for (index_t i = 0; i < 8; ++i) CHECK(back.f32("emb").data()[i] == e[i]);
  CHECK(back.i32("ids")(0) == 3);

  // A foreign file (no fofa metadata) needs an explicit configuration.
  const fs::path path = fs::path(FOFA_TEST_DATA_DIR) / "io" / "numpy_written.safetensors";
  const SafetensorsFile foreign = SafetensorsFile::read(path);
  CHECK_THROWS_WITH_AS(safetensors_to_fofa(foreign), doctest::Contains("no model configuration"), Error);
  const auto conv = safetensors_to_fofa(foreign, nlohmann::json{{"items", 1}}).to_bytes();
  const FofaFile cf = FofaFile::load_from_memory(as_span(conv));
  CHECK(cf.kind() == "model");
  CHECK(cf.i32("ids.i64")(1) == -6);
  CHECK(cf.f32("layer.bf16")(1, 0) == 256.0f);
}
