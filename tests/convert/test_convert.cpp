// fofa-convert end to end: each public SASRec layout, built in PyTorch 1.13 with random weights
// (make_checkpoints.py), is converted by convert_main(), loaded back from the .fofa file and
// scored by ForwardOfa; the logits must match the PyTorch module's within 1e-4. Also the CLI's
// refusals: no output file is ever left behind.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "../../tools/convert/convert_main.hpp"
#include "fofa/model/forward_ofa.hpp"
#include "test_util.hpp"

using namespace fofa;
using namespace fofa::convert;
namespace fs = std::filesystem;

namespace {

struct Run {
  int code;
  std::string out, err;
};

Run run_convert(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = convert_main(args, out, err);
  return {code, out.str(), err.str()};
}

// A fresh, empty directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("fofa-convert-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
  std::size_t files() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
  static int& counter() {
    static int c = 0;  // test-local naming only
    return c;
  }
};

// Max |fofa - torch| over every case of `layout`.json for a converted model file.
float max_logit_diff(const std::string& fofa_path, const std::string& layout) {
  const nlohmann::json exp = read_json("convert_" + layout + ".json");
  io::LoadedModel m = io::load_model(fofa_path);
  const ForwardOfa model(m.config, std::move(m.weights));
  float worst = 0;
  for (const auto& c : exp["cases"]) {
    const auto history = c["history"].get<std::vector<std::int32_t>>();
    const auto candidates = c["candidates"].get<std::vector<std::int32_t>>();
    const auto want = c["logits"].get<std::vector<float>>();
    // Layouts without controller/mapper run the static plan; fofa's own model adapts per budget.
    const std::vector<float> got = c.contains("budget") ? model.score(history, candidates, c["budget"].get<float>())
                                                         : model.score(history, candidates, model.static_plan());
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  }
  return worst;
}

}  // namespace

TEST_CASE("converted layouts reproduce the PyTorch logits (max abs diff <= 1e-4)") {
  struct Layout {
    const char* layout;
    const char* preset;
    const char* file;
  };
  for (const Layout& l : {Layout{"pmixer", "pmixer_sasrec", "convert_pmixer.pt"},
                          Layout{"pmixer_v2", "pmixer_sasrec", "convert_pmixer_v2.pt"},
                          Layout{"recbole", "recbole_sasrec", "convert_recbole.pt"},
                          Layout{"recbole", "recbole_sasrec", "convert_recbole.safetensors"},
                          Layout{"s3rec", "s3rec_sasrec", "convert_s3rec.pt"},
                          Layout{"fofa", "fofa", "convert_fofa.pt"}}) {
    INFO("layout ", std::string(l.layout), " from ", std::string(l.file));
    TempDir dir;
    const Run r = run_convert({"--preset", l.preset, "--heads", "2", data_path(l.file), dir / "model.fofa"});
    INFO(r.out, r.err);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("inferred config") != std::string::npos);
    const float diff = max_logit_diff(dir / "model.fofa", l.layout);
    MESSAGE(std::string(l.file), ": max |logit diff| = ", diff);
    CHECK(diff <= 1e-4f);
    CHECK(dir.files() == 1);  // no temp files left next to it
  }
}

TEST_CASE("the inferred configuration follows each layout") {
  TempDir dir;
  Run r = run_convert({"--preset", "pmixer_sasrec", "--heads", "2", data_path("convert_pmixer_v2.pt"), dir / "m.fofa"});
  REQUIRE(r.code == 0);
  io::LoadedModel m = io::load_model(dir / "m.fofa");
  CHECK(m.config.norm == Norm::query_only);
  CHECK(m.config.activation == Activation::relu);
  CHECK(m.config.padding == Padding::left_window);
  CHECK(m.config.positions == Positions::end);
  CHECK(m.config.max_len == 6);  // 7 rows, row 0 the padding row
  CHECK(m.config.items == 20);
  CHECK(m.config.ffn == 8);
  CHECK(r.out.find("pos_first=1") != std::string::npos);
  r = run_convert({"--preset", "recbole_sasrec", "--heads", "2", data_path("convert_recbole.pt"), dir / "r.fofa"});
  REQUIRE(r.code == 0);
  m = io::load_model(dir / "r.fofa");
  CHECK(m.config.norm == Norm::post);
  CHECK(m.config.eps == doctest::Approx(1e-12).epsilon(1e-6));
  CHECK(m.config.input_ln);
  CHECK_FALSE(m.config.final_ln);
  CHECK(m.config.ffn == 32);
  CHECK_FALSE(m.config.controller.enabled);
  CHECK(m.config.mapper.mode == MapperMode::off);
}

TEST_CASE("leftover tensors are reported; --strict refuses them; a user mapping can ignore them") {
  TempDir dir;
  Run r = run_convert({"--preset", "s3rec_sasrec", "--heads", "2", data_path("convert_s3rec.pt"), dir / "a.fofa"});
  REQUIRE(r.code == 0);
  CHECK(r.out.find("leftover (not converted): aap_norm.weight [8, 8]") != std::string::npos);
  CHECK(r.out.find("leftover (not converted): mip_norm.bias [8]") != std::string::npos);
  r = run_convert({"--strict", "--preset", "s3rec_sasrec", "--heads", "2", data_path("convert_s3rec.pt"), dir / "b.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("--strict: 4 source tensor(s) left over") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "b.fofa"));
  // The same schema from a user's file: the built-in preset plus an ignore list.
  nlohmann::json mapping = fofa::convert::detail::find_preset("s3rec_sasrec");
  mapping["name"] = "my_s3rec";
  mapping["ignore"] = {"aap_norm.*", "mip_norm.*"};
  std::ofstream(dir / "mapping.json") << mapping.dump(1);
  r = run_convert({"--strict", "--preset", dir / "mapping.json", "--heads", "2", data_path("convert_s3rec.pt"), dir / "c.fofa"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("leftover") == std::string::npos);
  CHECK(max_logit_diff(dir / "c.fofa", "s3rec") <= 1e-4f);
}

TEST_CASE("a user mapping with transpose and squeeze rules is applied as written") {
  // Maps recbole's Linear weights through a double transpose: the result must be unchanged.
  nlohmann::json mapping = fofa::convert::detail::find_preset("recbole_sasrec");
  for (auto& rule : mapping["tensors"])
    if (rule["to"].get<std::string>().find("ffn.w1.weight") != std::string::npos) rule["transpose"] = true;
  TempDir dir;
  std::ofstream(dir / "bad.json") << mapping.dump();
  Run r = run_convert({"--preset", dir / "bad.json", "--heads", "2", data_path("convert_recbole.pt"), dir / "x.fofa"});
  CHECK(r.code == 1);  // [8, 32] is not the [32, 8] fofa expects: validated before writing
  CHECK(r.err.find("blocks.0.ffn.w1.weight: shape [8, 32] does not match expected [32, 8]") != std::string::npos);
  CHECK(dir.files() == 1);
  // An optional rule whose source is absent is skipped; a required one is an error naming it.
  mapping = fofa::convert::detail::find_preset("recbole_sasrec");
  mapping["tensors"].push_back({{"to", "final_ln.weight"}, {"from", "no_such.weight"}, {"optional", true}});
  std::ofstream(dir / "opt.json") << mapping.dump();
  r = run_convert({"--preset", dir / "opt.json", "--heads", "2", data_path("convert_recbole.pt"), dir / "o.fofa"});
  CHECK(r.code == 0);
  mapping["tensors"].back().erase("optional");
  std::ofstream(dir / "req.json") << mapping.dump();
  r = run_convert({"--preset", dir / "req.json", "--heads", "2", data_path("convert_recbole.pt"), dir / "q.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("has no tensor 'no_such.weight'") != std::string::npos);
}

TEST_CASE("refusals: malicious pickle, missing --heads, wrong preset, legacy file, bad flags") {
  TempDir dir;
  Run r = run_convert({"--preset", "pmixer_sasrec", "--heads", "2", data_path("convert_malicious.pt"), dir / "m.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("refusing global 'os.system'") != std::string::npos);
  CHECK_FALSE(fs::exists("/tmp/fofa_convert_pwned"));
  r = run_convert({"--preset", "pmixer_sasrec", data_path("convert_pmixer.pt"), dir / "m.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("--heads is required") != std::string::npos);
  r = run_convert({"--preset", "recbole_sasrec", "--heads", "2", data_path("convert_pmixer.pt"), dir / "m.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("has no tensor 'item_embedding.weight'") != std::string::npos);
  r = run_convert({"--preset", "pmixer_sasrec", "--heads", "3", data_path("convert_pmixer.pt"), dir / "m.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("not divisible by config.heads = 3") != std::string::npos);
  r = run_convert({"--preset", "pmixer_sasrec", "--heads", "2", data_path("convert_legacy.pt"), dir / "m.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("legacy (pre-1.6)") != std::string::npos);
  r = run_convert({"--preset", "pmixer_sasrec", "--heads", "2", "--max-len", "4", data_path("convert_pmixer.pt"), dir / "m.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("anchored at the end") != std::string::npos);
  r = run_convert({"--preset", "fofa", "--heads", "2", "--max-len", "3", data_path("convert_fofa.pt"), dir / "m.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("--max-len is not supported with preset 'fofa'") != std::string::npos);
  r = run_convert({"--preset", "nope", "--heads", "2", data_path("convert_pmixer.pt"), dir / "m.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("unknown preset 'nope'") != std::string::npos);
  CHECK(run_convert({"--heads", "x", "a", "b"}).code == 2);
  for (const char* bad : {" 2", "+2", "-2", "0x2"}) CHECK(run_convert({"--preset", "fofa", "--heads", bad, "a", "b"}).code == 2);
  {  // a mapping file given as OUT is an input too: refused, and left as it was
    const std::string map = (dir.path / "map.json").string();
    std::ofstream(map) << "{}";
    r = run_convert({"--preset", map, "--heads", "2", data_path("convert_pmixer.pt"), map});
    CHECK(r.code == 1);
    CHECK(r.err.find("is the same file as the input") != std::string::npos);
    std::ifstream in(map);
    CHECK(std::string((std::istreambuf_iterator<char>(in)), {}) == "{}");
    fs::remove(map);
  }
  CHECK(run_convert({"--preset", "fofa", "only-one-file"}).code == 2);
  CHECK(run_convert({"--bogus"}).code == 2);
  r = run_convert({"--preset", "fofa", "--heads", "1", "--heads", "2", "a", "b"});  // was: the last one won
  CHECK(r.code == 2);
  CHECK(r.err.find("--heads given twice") != std::string::npos);
  CHECK(run_convert({"--preset", "fofa", "--strict=yes", "a", "b"}).code == 2);
  CHECK(dir.files() == 0);
  r = run_convert({"--help"});
  CHECK(r.code == 0);
  CHECK(r.out.find("usage: fofa-convert") != std::string::npos);
  r = run_convert({"--list-presets"});
  for (const char* p : {"fofa", "pmixer_sasrec", "recbole_sasrec", "s3rec_sasrec"}) CHECK(r.out.find(p) != std::string::npos);
}

TEST_CASE("--max-len truncates start-anchored positions; --set overrides config fields") {
  TempDir dir;
  Run r = run_convert({"--preset=recbole_sasrec", "--heads=2", "--max-len", "4", "--set", "eps=1e-5",
                   data_path("convert_recbole.pt"), dir / "m.fofa"});  // --name=VALUE as well as --name VALUE
  INFO(r.err);
  REQUIRE(r.code == 0);
  io::LoadedModel m = io::load_model(dir / "m.fofa");
  CHECK(m.config.max_len == 4);
  CHECK(m.config.eps == doctest::Approx(1e-5));
  CHECK(m.weights.get("pos_emb.weight").dim(0) == 4);
  r = run_convert({"--preset", "recbole_sasrec", "--heads", "2", "--set", "norm=sideways", data_path("convert_recbole.pt"),
               dir / "n.fofa"});
  CHECK(r.code == 1);
  CHECK(r.err.find("unknown norm") != std::string::npos);
}

TEST_CASE("preset 'fofa' round-trips a fofa model's own tensors") {
  // Convert pmixer first, then export its weights under fofa names as a safetensors state dict.
  TempDir dir;
  REQUIRE(run_convert({"--preset", "pmixer_sasrec", "--heads", "2", data_path("convert_pmixer.pt"), dir / "p.fofa"}).code == 0);
  const io::LoadedModel m = io::load_model(dir / "p.fofa");
  io::SafetensorsWriter w;
  for (const auto& [name, t] : m.weights.tensors()) w.add(name, t);
  const auto bytes = w.to_bytes();
  io::write_file_atomic(dir / "p.safetensors", bytes);
  const Run r = run_convert({"--preset", "fofa", "--heads", "2", "--set", "norm=query_only", "--set", "activation=relu",
                         "--set", "positions=end", "--set", "padding=left_window", dir / "p.safetensors", dir / "q.fofa"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(max_logit_diff(dir / "q.fofa", "pmixer") <= 1e-4f);
}
