// .fofa v1 container: round trips (memory, read, mmap), alignment, atomic writes, and every
// kind of corruption (bit flips, truncation, bad preamble, bad JSON, bad tensor table).
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fofa/io/fofa_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace fofa;
using namespace fofa::io;

namespace {

fs::path temp_dir() {
  fs::path p = fs::temp_directory_path() / ("fofa-io-test-" + std::to_string(::getpid()));
  fs::create_directories(p);
  return p;
}

FofaWriter sample_writer() {
  Tensor<float> a(Shape{3, 5});
  for (index_t i = 0; i < a.numel(); ++i) a[i] = 0.25f * static_cast<float>(i) - 1.0f;
  Tensor<std::int32_t> ids(Shape{4}, {7, 0, -3, 2147483647});
  Tensor<float> scalar(Shape{}, {42.5f});
  Tensor<float> empty(Shape{0, 8});
  FofaWriter w("model");
  w.config({{"items", 10}, {"d", 4}}).meta({{"note", "unit test"}}).extra("device", {{"kept", {0, 2}}});
  w.add("a", a).add("ids", ids).add("scalar", scalar).add("empty", empty);
  return w;
}

std::span<const std::byte> as_span(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

// A file image with the given header text and data, correct lengths and (optionally) CRC.
std::vector<std::byte> raw_file(std::string header, std::size_t data_bytes, bool pad = true) {
  if (pad) header.append((64 - (40 + header.size()) % 64) % 64, ' ');
  std::vector<std::byte> out(40 + header.size() + data_bytes, std::byte{0});
  std::memcpy(out.data(), kFofaMagic.data(), 8);
  io::detail::store_u32(out.data() + 8, 1);
  io::detail::store_u64(out.data() + 16, header.size());
  io::detail::store_u64(out.data() + 24, data_bytes);
  std::memcpy(out.data() + 40, header.data(), header.size());
  io::detail::store_u32(out.data() + 32, crc32(out.data() + 40, header.size() + data_bytes));
  return out;
}

std::string load_error(const std::vector<std::byte>& bytes) {
  try {
    FofaFile::load_from_memory(as_span(bytes));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void check_sample(const FofaFile& f) {
  CHECK(f.kind() == "model");
  CHECK(f.config()["items"] == 10);
  CHECK(f.meta()["note"] == "unit test");
  CHECK(f.header()["device"]["kept"][1] == 2);
  REQUIRE(f.tensors().size() == 4);
  auto a = f.f32("a", Shape{3, 5});
  for (index_t i = 0; i < 15; ++i) CHECK(a.data()[i] == 0.25f * static_cast<float>(i) - 1.0f);
  auto ids = f.i32("ids");
  CHECK(ids.shape() == Shape{4});
  CHECK(ids(0) == 7);
  CHECK(ids(2) == -3);
  CHECK(ids(3) == 2147483647);
  CHECK(f.f32("scalar").rank() == 0);
  CHECK(f.f32("scalar").data()[0] == 42.5f);
  CHECK(f.f32("empty").shape() == Shape{0, 8});
  // Every tensor starts on a 64-byte boundary in memory, so kernels can use aligned loads.
  for (const auto& t : f.tensors()) {
    CHECK(t.offset % 64 == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(f.raw().data() + f.header_bytes() + t.offset) % 64 == 0);
  }
  CHECK(f.header_bytes() % 64 == 0);
}

}  // namespace

TEST_CASE("fofa file round trip through memory, read and mmap") {
  const auto bytes = sample_writer().to_bytes();
  check_sample(FofaFile::load_from_memory(as_span(bytes)));

  const fs::path dir = temp_dir();
  const fs::path path = dir / "sample.fofa";
  const std::size_t n = sample_writer().write(path);
  CHECK(n == bytes.size());
  CHECK(fs::file_size(path) == bytes.size());
  const FofaFile read = FofaFile::read(path);
  const FofaFile mapped = FofaFile::map(path);
  CHECK_FALSE(read.is_mapped());
  CHECK(mapped.is_mapped());
  check_sample(read);
  check_sample(mapped);
  // Views stay valid while any copy of the file object lives.
  TensorView<const float> v;
  {
    FofaFile copy = mapped;
    v = copy.f32("a");
  }
  CHECK(v.data()[1] == -0.75f);
  fs::remove_all(dir);
}

TEST_CASE("fofa writer is atomic: no temp file left, existing file replaced whole") {
  const fs::path dir = temp_dir();
  const fs::path path = dir / "model.fofa";
  {
    std::ofstream(path) << "old contents";
  }
  sample_writer().write(path);
  check_sample(FofaFile::read(path));
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
  // An unwritable destination fails cleanly and leaves nothing behind.
  CHECK_THROWS_WITH_AS(sample_writer().write(dir / "no-such-dir" / "x.fofa"), doctest::Contains("cannot create"),
                       Error);
  CHECK_FALSE(fs::exists(dir / "no-such-dir"));
  fs::remove_all(dir);
}

TEST_CASE("check_writable refuses a missing directory or a directory name up front and leaves nothing") {
  const fs::path dir = temp_dir() / "writable";
  fs::create_directories(dir);
  CHECK_NOTHROW(check_writable(dir / "model.fofa"));
  CHECK_FALSE(fs::exists(dir / "model.fofa"));
  CHECK(fs::is_empty(dir));
  CHECK_THROWS_WITH_AS(check_writable(dir / "no-such-dir" / "x.fofa"),
                       doctest::Contains("cannot be written: No such file or directory"), Error);
  CHECK_THROWS_WITH_AS(check_writable(dir), doctest::Contains("is a directory"), Error);
  {
    std::ofstream(dir / "old.fofa") << "old contents";  // an existing file is left as it is
  }
  CHECK_NOTHROW(check_writable(dir / "old.fofa"));
  std::ifstream in(dir / "old.fofa");
  CHECK(std::string((std::istreambuf_iterator<char>(in)), {}) == "old contents");
  fs::remove_all(dir.parent_path());
}

TEST_CASE("writers go through a symbolic link and into a FIFO, never replacing either") {
  const fs::path dir = temp_dir() / "special";
  fs::create_directories(dir);
  sample_writer().write(dir / "target.fofa");
  fs::create_symlink("target.fofa", dir / "link.fofa");
  sample_writer().write(dir / "link.fofa");
  CHECK(fs::is_symlink(dir / "link.fofa"));  // still a link; the bytes went to its target
  check_sample(FofaFile::read(dir / "target.fofa"));
  // A FIFO (as /dev/null or /dev/stdout would be) is written into, not renamed over. The reader
  // end is opened first, non-blocking, so a regression fails the checks instead of hanging.
  const fs::path fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const int rd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(rd >= 0);
  const std::byte bytes[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
  write_file_atomic(fifo, bytes);
  CHECK(fs::is_fifo(fifo));
  char got[8] = {};
  CHECK(::read(rd, got, sizeof got) == 3);
  CHECK(got[2] == 3);
  ::close(rd);
  CHECK_NOTHROW(check_writable(fifo));
  // A dangling link is written through too: its target is created, the link stays.
  fs::create_symlink("sub/../created.fofa", dir / "dangling.fofa");
  fs::create_directories(dir / "sub");
  sample_writer().write(dir / "dangling.fofa");
  CHECK(fs::is_symlink(dir / "dangling.fofa"));
  check_sample(FofaFile::read(dir / "created.fofa"));
  CHECK(is_stdout("/dev/stdout"));
  CHECK_FALSE(is_stdout(dir / "created.fofa"));
  // Names of files not created yet are compared as normalised absolute paths.
  CHECK(same_file(dir / "new.fofa", dir / "sub" / ".." / "new.fofa"));
  CHECK_FALSE(same_file(dir / "new.fofa", dir / "new2.fofa"));
  CHECK_THROWS_WITH_AS(write_file_atomic("", bytes), doctest::Contains("output file name is empty"), Error);
  CHECK_THROWS_WITH_AS(check_writable(""), doctest::Contains("output file name is empty"), Error);
  CHECK_THROWS_WITH_AS(write_file_atomic(dir, bytes), doctest::Contains("is a directory"), Error);
  fs::remove_all(dir);
}

TEST_CASE("check_writable refuses an output that is one of the inputs") {
  const fs::path dir = temp_dir() / "same";
  fs::create_directories(dir);
  sample_writer().write(dir / "in.fofa");
  fs::create_symlink("in.fofa", dir / "alias.fofa");
  CHECK_THROWS_WITH_AS(check_writable(dir / "in.fofa", {dir / "in.fofa"}),
                       doctest::Contains("is the same file as the input"), Error);
  CHECK_THROWS_WITH_AS(check_writable(dir / "alias.fofa", {dir / "other", dir / "in.fofa"}),
                       doctest::Contains("writing it would destroy that input"), Error);
  CHECK_NOTHROW(check_writable(dir / "out.fofa", {dir / "in.fofa", ""}));
  check_sample(FofaFile::read(dir / "in.fofa"));
  fs::remove_all(dir);
}

TEST_CASE("read_text_file names a directory or a missing file") {
  const fs::path dir = temp_dir();
  CHECK_THROWS_WITH_AS(read_text_file(dir, "data file"), doctest::Contains("is a directory, not a data file"), Error);
  CHECK_THROWS_WITH_AS(read_text_file(dir / "missing.txt", "configuration"),
                       doctest::Contains("cannot open configuration"), Error);
  std::ofstream(dir / "t.txt") << "1 2\n";
  CHECK(read_text_file(dir / "t.txt", "data file") == "1 2\n");
  fs::remove(dir / "t.txt");
}

TEST_CASE("fofa writer rejects bad tensors and keys") {
  FofaWriter w("device");
  Tensor<float> t(Shape{2});
  w.add("x", t);
  CHECK_THROWS_WITH_AS(w.add("x", t), doctest::Contains("duplicate tensor \"x\""), Error);
  CHECK_THROWS_WITH_AS(w.add("", t), doctest::Contains("empty tensor name"), Error);
  Tensor<float> bad(Shape{3}, {1.0f, std::nanf(""), 2.0f});
  CHECK_THROWS_WITH_AS(w.add("bad", bad), doctest::Contains("element 1"), Error);
  CHECK_THROWS_AS(w.extra("tensors", 1), Error);
  CHECK_THROWS_AS(w.config(nlohmann::json::array()), Error);
  CHECK_THROWS_AS(FofaWriter("weights"), Error);
}

TEST_CASE("strided views are written contiguously") {
  Tensor<float> m(Shape{3, 4});
  for (index_t i = 0; i < 12; ++i) m[i] = static_cast<float>(i);
  // Column 1 of m: a [3] view with stride 4.
  TensorView<const float> col(m.data() + 1, Shape{3}, Strides{4, 0, 0, 0});
  FofaWriter w("model");
  w.add("col", col);
  const auto bytes = w.to_bytes();
  const FofaFile f = FofaFile::load_from_memory(as_span(bytes));
  auto v = f.f32("col");
  CHECK(v(0) == 1.0f);
  CHECK(v(1) == 5.0f);
  CHECK(v(2) == 9.0f);
}

TEST_CASE("tensor lookups name the problem") {
  const auto bytes = sample_writer().to_bytes();
  const FofaFile f = FofaFile::load_from_memory(as_span(bytes));
  CHECK_THROWS_WITH_AS(f.f32("nope"), doctest::Contains("missing tensor \"nope\""), Error);
  CHECK_THROWS_WITH_AS(f.f32("ids"), doctest::Contains("dtype i32, expected f32"), Error);
  CHECK_THROWS_WITH_AS(f.f32("a", Shape{5, 3}), doctest::Contains("shape [3, 5], expected [5, 3]"), Error);
  CHECK_THROWS_AS(FofaFile().kind(), Error);
}

TEST_CASE("flipping any bit of a fofa file is detected") {
  const auto good = sample_writer().to_bytes();
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int bit : {0, 5}) {
      auto bad = good;
      bad[i] ^= std::byte(1 << bit);
      const std::string err = load_error(bad);
      CAPTURE(i);
      CHECK_FALSE(err.empty());
      // Past the preamble only the checksum can notice.
      if (i >= 40) CHECK(err.find("CRC mismatch") != std::string::npos);
    }
  }
}

TEST_CASE("truncating a fofa file at any length fails cleanly") {
  const auto good = sample_writer().to_bytes();
  for (std::size_t n = 0; n < good.size(); ++n) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string err = load_error(cut);
    CAPTURE(n);
    CHECK_FALSE(err.empty());
    if (n < 40)
      CHECK(err.find("too small") != std::string::npos);
    else
      CHECK(err.find("truncated") != std::string::npos);
  }
  auto longer = good;
  longer.push_back(std::byte{0});
  CHECK(load_error(longer).find("1 trailing bytes") != std::string::npos);
}

TEST_CASE("preamble checks: magic, text-mode mangling, version, flags, reserved") {
  const auto good = sample_writer().to_bytes();
  auto bad = good;
  bad[0] = std::byte{'G'};
  CHECK(load_error(bad).find("bad magic") != std::string::npos);
  // A text-mode transfer turns \r\n into \n: the magic catches it.
  bad = good;
  bad.erase(bad.begin() + 6);
  CHECK(load_error(bad).find("bad magic") != std::string::npos);
  bad = good;
  io::detail::store_u32(bad.data() + 8, 2);
  CHECK(load_error(bad).find("unsupported .fofa format version 2") != std::string::npos);
  bad = good;
  io::detail::store_u32(bad.data() + 12, 4);
  CHECK(load_error(bad).find("unknown flags") != std::string::npos);
  bad = good;
  io::detail::store_u32(bad.data() + 36, 1);
  CHECK(load_error(bad).find("reserved") != std::string::npos);
  bad = good;
  io::detail::store_u64(bad.data() + 16, ~std::uint64_t{0});
  CHECK(load_error(bad).find("header length") != std::string::npos);
  bad = good;
  io::detail::store_u64(bad.data() + 24, ~std::uint64_t{0});
  CHECK(load_error(bad).find("data length") != std::string::npos);
}

TEST_CASE("header JSON checks") {
  CHECK(load_error(raw_file("{\"kind\": \"model\", ", 0)).find("not valid JSON") != std::string::npos);
  CHECK(load_error(raw_file("[1, 2]", 0)).find("not an object") != std::string::npos);
  CHECK(load_error(raw_file(R"({"config": {}, "tensors": {}})", 0)).find("\"kind\"") != std::string::npos);
  CHECK(load_error(raw_file(R"({"kind": "weights", "config": {}, "tensors": {}})", 0)).find("unknown kind") !=
        std::string::npos);
  CHECK(load_error(raw_file(R"({"kind": "model", "tensors": {}})", 0)).find("\"config\"") != std::string::npos);
  CHECK(load_error(raw_file(R"({"kind": "model", "config": {}})", 0)).find("\"tensors\"") != std::string::npos);
  CHECK(load_error(raw_file(R"({"kind": "model", "config": {}, "tensors": {}, "meta": 3})", 0))
            .find("\"meta\" is not an object") != std::string::npos);
  // A header whose length does not put the data on a 64-byte boundary.
  CHECK(load_error(raw_file(R"({"kind": "model", "config": {}, "tensors": {}})", 0, false))
            .find("multiple of 64") != std::string::npos);
  // The smallest valid file.
  CHECK(load_error(raw_file(R"({"kind": "device", "config": {}, "tensors": {}})", 0)).empty());
}

TEST_CASE("tensor table checks") {
  auto err = [](const std::string& tensors, std::size_t data = 256) {
    return load_error(raw_file(R"({"kind": "model", "config": {}, "tensors": )" + tensors + "}", data));
  };
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [2, 3], "offset": 0}})").empty());
  CHECK(err(R"({"t": {"dtype": "f16", "shape": [2], "offset": 0}})").find("unsupported dtype \"f16\"") !=
        std::string::npos);
  CHECK(err(R"({"t": {"dtype": 3, "shape": [2], "offset": 0}})").find("dtype") != std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [-2], "offset": 0}})").find("not a non-negative integer") !=
        std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [2.5], "offset": 0}})").find("not a non-negative integer") !=
        std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": "2", "offset": 0}})").find("not an array") != std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [1, 1, 1, 1, 1], "offset": 0}})").find("rank 5") !=
        std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [1099511627776, 1099511627776], "offset": 0}})")
            .find("overflows") != std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [2]}})").find("\"offset\"") != std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [2], "offset": "0"}})").find("\"offset\"") != std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [2], "offset": 4}})").find("offset 4 is not a multiple of 64") !=
        std::string::npos);
  CHECK(err(R"({"t": {"dtype": "f32", "shape": [65], "offset": 0}})").find("outside the 256-byte data") !=
        std::string::npos);
  CHECK(err(R"({"t": {"dtype": "i32", "shape": [1], "offset": 18446744073709551552}})").find("outside") !=
        std::string::npos);
  CHECK(err(R"({"a": {"dtype": "f32", "shape": [32], "offset": 0}, "b": {"dtype": "i32", "shape": [4], "offset": 64}})")
            .find("overlap") != std::string::npos);
  // Zero-sized tensors occupy no bytes and may share an offset.
  CHECK(err(R"({"a": {"dtype": "f32", "shape": [0], "offset": 0}, "b": {"dtype": "i32", "shape": [4], "offset": 0}})")
            .empty());
  CHECK(err(R"({"t": [1]})").find("not an object") != std::string::npos);
}

TEST_CASE("reading a missing or non-regular file fails with the path") {
  CHECK_THROWS_WITH_AS(FofaFile::map("/nonexistent/dir/x.fofa"), doctest::Contains("/nonexistent/dir/x.fofa"), Error);
  CHECK_THROWS_WITH_AS(FofaFile::read("/nonexistent/dir/x.fofa"), doctest::Contains("cannot open"), Error);
  CHECK_THROWS_WITH_AS(FofaFile::map(fs::temp_directory_path()), doctest::Contains("not a regular file"), Error);
  CHECK_THROWS_WITH_AS(FofaFile::read(fs::temp_directory_path()), doctest::Contains("not a regular file"), Error);
  const fs::path dir = temp_dir();
  { std::ofstream(dir / "empty.fofa"); }
  CHECK_THROWS_WITH_AS(FofaFile::map(dir / "empty.fofa"), doctest::Contains("too small (0 bytes)"), Error);
  fs::remove_all(dir);
}
