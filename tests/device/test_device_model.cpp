// DeviceModel against the full cloud model: same plan -> same scores, push() == recomputation
// from scratch, file contents and size, and refusal of bad files and bad ids.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "device_test_util.hpp"
#include "fofa/io/model_file.hpp"

namespace fs = std::filesystem;

using namespace fofa;
using namespace fofa::testing;

namespace {

void check_close(std::span<const float> a, std::span<const float> b, float tol) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(a[i] - b[i]) <= tol * std::max(1.0f, std::abs(b[i])));
  }
}

struct Variant {
  const char* name;
  void (*edit)(ModelConfig&);
};

const Variant kVariants[] = {
    {"pre (SPEC default)", [](ModelConfig&) {}},
    {"query_only + left_window + end positions (pmixer)",
     [](ModelConfig& c) {
       c.norm = Norm::query_only;
       c.padding = Padding::left_window;
       c.positions = Positions::end;
     }},
    {"post + input_ln + relu (BERT)",
     [](ModelConfig& c) {
       c.norm = Norm::post;
       c.input_ln = true;
       c.activation = Activation::relu;
       c.emb_scale = EmbScale::none;
     }},
    {"no final_ln, full mapper", [](ModelConfig& c) {
       c.final_ln = false;
       c.mapper.mode = MapperMode::full;
     }},
    {"mapper off, controller off", [](ModelConfig& c) {
       c.mapper.mode = MapperMode::off;
       c.controller.enabled = false;
     }},
    {"gru controller, end positions", [](ModelConfig& c) {
       c.controller.extractor = ExtractorKind::gru;
       c.positions = Positions::end;
     }},
};

}  // namespace

TEST_CASE("device rerank equals the full model's rerank for the same plan") {
  for (const Variant& v : kVariants) {
    for (float budget : {1.0f, 0.5f, 0.2f}) {
      CAPTURE(v.name);
      CAPTURE(budget);
      ModelConfig cfg = tiny_config();
      v.edit(cfg);
      const ForwardOfa model = make_model(cfg, 11);
      for (std::size_t t : {std::size_t{1}, std::size_t{5}, std::size_t{8}, std::size_t{13}}) {
        CAPTURE(t);
        const auto history = ids_from(100 + t, t, cfg.items);
        const auto candidates = ids_from(200 + t, 12, cfg.items);
        const DevicePlan plan = model.adapt(history, budget);
        const auto bytes = device_bytes(model, plan, history, candidates);
        const DeviceModel dm = device_from_bytes(bytes);
        CHECK(std::vector<index_t>(dm.kept().begin(), dm.kept().end()) == plan.kept());
        DeviceSession s(dm);
        const RankingView r = s.rerank();
        const Ranking full = model.rerank(history, candidates, plan);
        check_close(r.scores, full.scores, 1e-5f);
        CHECK(std::vector<std::int32_t>(r.items.begin(), r.items.end()) == full.items);
        const Ranking once = dm.rerank();  // the one-shot form gives the session's result
        CHECK(once.items == std::vector<std::int32_t>(r.items.begin(), r.items.end()));
        CHECK(once.scores == std::vector<float>(r.scores.begin(), r.scores.end()));
      }
    }
  }
}

TEST_CASE("the budget decides the kept blocks and the device file follows") {
  const ModelConfig cfg = tiny_config();
  const ForwardOfa model = make_model(cfg, 3);
  const auto history = ids_from(1, 6, cfg.items);
  const auto candidates = ids_from(2, 10, cfg.items);
  CHECK(model.adapt(history, 1.0f).kept().size() == 4);
  CHECK(model.adapt(history, 0.5f).kept().size() == 2);
  CHECK(model.adapt(history, 0.2f).kept().size() == 1);
  const DeviceModel dm = device_from_bytes(device_bytes(model, model.adapt(history, 0.5f), history, candidates));
  CHECK(dm.kept().size() == 2);
  CHECK(dm.budget() == 0.5f);
  CHECK(dm.pi().size() == 4);
  CHECK(dm.flops() == doctest::Approx(2 * cfg.block_flops()));
}

TEST_CASE("push() equals recomputation from scratch and computes one row while the window fills") {
  for (const Variant& v : kVariants) {
    CAPTURE(v.name);
    ModelConfig cfg = tiny_config();
    v.edit(cfg);
    const ForwardOfa model = make_model(cfg, 5);
    std::vector<std::int32_t> history = ids_from(7, 3, cfg.items);
    const auto candidates = ids_from(8, 12, cfg.items);
    const DevicePlan plan = model.adapt(history, 0.5f);
    const DeviceModel dm = device_from_bytes(device_bytes(model, plan, history, candidates));
    DeviceSession s(dm);
    DeviceSession fresh(dm);
    CHECK(s.last_update_rows() == (cfg.padding == Padding::none ? 3 : cfg.max_len));
    // Push candidates until the window overflows (max_len = 8): pushes 4..8 fill it, 9.. slide it.
    for (int step = 0; step < 9; ++step) {
      CAPTURE(step);
      const std::int32_t item = candidates[static_cast<std::size_t>(step)];
      s.push(item);
      history.push_back(item);
      const bool filling = static_cast<index_t>(history.size()) <= cfg.max_len;
      if (dm.incremental_push() && filling)
        CHECK(s.last_update_rows() == 1);
      else
        CHECK(s.last_update_rows() > 1);
      const auto window = newest_window(history, cfg.max_len);
      CHECK(std::vector<std::int32_t>(s.history().begin(), s.history().end()) ==
            std::vector<std::int32_t>(window.begin(), window.end()));
      fresh.reset(history);
      check_close(s.user_state(), fresh.user_state(), 1e-5f);
      const RankingView r = s.rerank();
      const std::vector<float> pushed(r.scores.begin(), r.scores.end());
      // The cloud model with the same plan on the whole history agrees too.
      check_close(pushed, model.score(history, candidates, plan), 1e-5f);
    }
  }
}

TEST_CASE("rerank rules: subsets, duplicates, ties, empty list, unknown ids") {
  const ModelConfig cfg = tiny_config();
  const ForwardOfa model = make_model(cfg, 9);
  const std::vector<std::int32_t> history = {3, 4, 5};
  const std::vector<std::int32_t> candidates = {10, 11, 12, 13};
  const DeviceModel dm = device_from_bytes(device_bytes(model, model.adapt(history, 1.0f), history, candidates));
  DeviceSession s(dm);
  const std::vector<float> all(s.rerank().scores.begin(), s.rerank().scores.end());
  const std::vector<std::int32_t> sub = {12, 10, 12};
  const RankingView r = s.rerank(sub);
  REQUIRE(r.scores.size() == 3);
  CHECK(r.scores[0] == all[2]);
  CHECK(r.scores[1] == all[0]);
  CHECK(r.scores[2] == all[2]);
  // The duplicate ties with itself: the earlier position ranks first.
  const auto first12 = std::find(r.order.begin(), r.order.end(), 0);
  const auto second12 = std::find(r.order.begin(), r.order.end(), 2);
  CHECK(first12 < second12);
  for (std::size_t i = 1; i < r.order.size(); ++i)
    CHECK(r.scores[static_cast<std::size_t>(r.order[i - 1])] >= r.scores[static_cast<std::size_t>(r.order[i])]);
  CHECK(s.rerank(std::span<const std::int32_t>()).items.empty());
  const std::vector<std::int32_t> bad = {10, 4};  // 4 has a row (history) but is not a candidate
  CHECK_THROWS_WITH_AS(s.rerank(bad), doctest::Contains("candidate item 4 is not among"), Error);
  const std::vector<std::int32_t> unknown = {39};
  CHECK_THROWS_WITH_AS(s.rerank(unknown), doctest::Contains("candidate item 39"), Error);
  CHECK_THROWS_WITH_AS(s.push(39), doctest::Contains("pushed item 39 has no embedding row"), Error);
  CHECK_THROWS_WITH_AS(s.reset(std::span<const std::int32_t>()), doctest::Contains("empty history"), Error);
  // A failed call leaves the session usable and unchanged.
  CHECK(std::vector<float>(s.rerank().scores.begin(), s.rerank().scores.end()) == all);
  s.push(4);  // a history item may be clicked again
  CHECK(s.history().size() == 4);
}

TEST_CASE("export_device refuses bad input") {
  const ModelConfig cfg = tiny_config();
  const ForwardOfa model = make_model(cfg, 9);
  const std::vector<std::int32_t> history = {3, 4, 5}, candidates = {10, 11};
  const DevicePlan plan = model.adapt(history, 1.0f);
  CHECK_THROWS_WITH_AS(device_bytes(model, plan, {}, candidates), doctest::Contains("empty history"), Error);
  const std::vector<std::int32_t> bad_hist = {3, 41}, bad_cand = {0};
  CHECK_THROWS_WITH_AS(device_bytes(model, plan, bad_hist, candidates), doctest::Contains("history item id 41"), Error);
  CHECK_THROWS_WITH_AS(device_bytes(model, plan, history, bad_cand), doctest::Contains("candidate item id 0"), Error);
  DevicePlan wrong = plan;
  wrong.mask.pop_back();
  CHECK_THROWS_WITH_AS(device_bytes(model, wrong, history, candidates), doctest::Contains("plan mask"), Error);
  wrong = plan;
  wrong.ffn.pop_back();
  CHECK_THROWS_WITH_AS(device_bytes(model, wrong, history, candidates), doctest::Contains("no FFN for kept block 3"),
                       Error);
  wrong = plan;
  wrong.budget = 0.0f;
  CHECK_THROWS_WITH_AS(device_bytes(model, wrong, history, candidates), doctest::Contains("budget"), Error);
  // A device file ranks at least one candidate.
  CHECK_THROWS_WITH_AS(device_bytes(model, plan, history, {}), doctest::Contains("empty candidate list"), Error);
}

// Finite weights that overflow float in the forward pass: the device refuses the non-finite user
// state or score, and export_device refuses (before writing) a session the device would refuse.
TEST_CASE("weights that overflow float: the device and export_device refuse non-finite results") {
  const ModelConfig cfg = tiny_config();
  const ModelWeights base = random_weights(cfg, 9, {.mapper_scale = 0.05f, .controller_head_bias = 4.0f});
  const ForwardOfa model(cfg, base);
  const std::vector<std::int32_t> history = {3, 4, 5}, candidates = {10, 11};
  const DevicePlan plan = model.adapt(history, 1.0f);
  const auto good = device_bytes(model, plan, history, candidates);
  const std::vector<float> u = [&] {
    DeviceSession s(device_from_bytes(good));
    return std::vector<float>(s.user_state().begin(), s.user_state().end());
  }();
  // E[10] = 3e38 * sign(u): the logit of 10 is +inf (not NaN), the user state stays finite.
  std::vector<float> row10(u.size()), big(u.size(), 3e38f);
  for (std::size_t i = 0; i < u.size(); ++i) row10[i] = std::copysign(3e38f, u[i]);

  // A device file with that row (patched in place, CRC fixed up) loads, then refuses to rank.
  const io::FofaFile f = io::FofaFile::load_from_memory({good.data(), good.size()});
  auto patched = [&](std::vector<std::byte> b, const char* tensor, index_t row, const std::vector<float>& v) {
    std::memcpy(b.data() + f.header_bytes() + f.find(tensor)->offset + row * 4 * u.size(), v.data(), 4 * v.size());
    io::detail::store_u32(b.data() + 32, io::crc32(b.data() + 40, b.size() - 40));
    return b;
  };
  DeviceSession s(device_from_bytes(patched(good, "items.emb", device_from_bytes(good).row_of(10), row10)));
  CHECK_THROWS_WITH_AS(s.rerank(), doctest::Contains("device: non-finite score inf of candidate 10"), Error);
  const std::vector<std::int32_t> only11 = {11};
  CHECK(s.rerank(only11).scores.size() == 1);
  // An extreme final LayerNorm: the user state overflows when the session starts.
  const auto ln = patched(patched(good, "final_ln.weight", 0, big), "final_ln.bias", 0, big);
  CHECK_THROWS_WITH_AS(DeviceSession(device_from_bytes(ln)), doctest::Contains("device: non-finite user state"),
                       Error);

  // The same row in the cloud model: export_device refuses and leaves no file behind.
  ModelWeights w = base;
  std::copy(row10.begin(), row10.end(), w.get_mut("item_emb.weight").data() + 10 * cfg.d);
  const ForwardOfa cloud(cfg, std::move(w));
  const fs::path path = temp_path("overflow.fofa");
  CHECK_THROWS_WITH_AS(io::export_device(cloud, cloud.adapt(history, 1.0f), history, candidates, path),
                       doctest::Contains("non-finite score inf of candidate 10"), Error);
  CHECK_FALSE(fs::exists(path));
  CHECK_NOTHROW(device_bytes(cloud, cloud.adapt(history, 1.0f), history, only11));
}

TEST_CASE("device file at the SPEC default: only the SPEC tensors, header < 4 KB, size printed") {
  ModelConfig cfg;  // SPEC defaults: d 64, H 2, L 6, n 50, f 256
  cfg.items = 2000;
  const ForwardOfa model = make_model(cfg, 21);
  const auto history = ids_from(5, 50, cfg.items);
  const auto candidates = ids_from(6, 101, cfg.items);
  const DevicePlan plan = model.adapt(history, 0.5f);
  REQUIRE(plan.kept().size() == 3);
  const fs::path path = temp_path("default.fofa");
  const std::size_t size = io::export_device(model, plan, history, candidates, path);
  const io::FofaFile f = io::FofaFile::map(path);
  MESSAGE("device file, default config, 3 blocks + 101 candidates: ", size, " bytes (header ", f.header_bytes(),
          " bytes)");
  CHECK(f.header_bytes() < 4096);
  // Expected payload from the SPEC list, independent of the writer.
  std::vector<std::int32_t> rows(history.begin(), history.end());
  rows.insert(rows.end(), candidates.begin(), candidates.end());
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  const index_t d = 64, f_ = 256, n = 50, m = static_cast<index_t>(rows.size());
  const index_t block = 2 * d + 4 * (d * d + d) + 2 * d + f_ * d + f_ + d * f_ + d + d;  // + gate
  std::vector<index_t> floats = {n * d, d, d, block, block, block, m, m * d, 50, 101};
  std::size_t payload = 0;
  for (index_t x : floats) payload = (payload + 63) / 64 * 64 + static_cast<std::size_t>(x) * 4;
  CHECK(f.file_bytes() == f.header_bytes() + payload);
  CHECK(f.tensors().size() == 10);
  CHECK(size > 600'000);
  CHECK(size < 700'000);
  // What a device file does not hold: the controller, the mapper, other blocks, other items.
  for (const auto& t : f.tensors()) {
    CHECK(t.name.find("controller") == std::string::npos);
    CHECK(t.name.find("mapper") == std::string::npos);
    CHECK(t.name != "item_emb.weight");
  }
  // The session plan of one user stays under 1 MB.
  const DeviceModel dm = io::load_device(path);
  MESSAGE("session bytes (caches + workspace): ", dm.session_bytes());
  CHECK(dm.session_bytes() < (1u << 20));
  fs::remove(path);
}

TEST_CASE("bad device files are refused with the reason") {
  const ModelConfig cfg = tiny_config();
  const ForwardOfa model = make_model(cfg, 9);
  const std::vector<std::int32_t> history = {3, 4, 5}, candidates = {10, 11};
  const DevicePlan plan = model.adapt(history, 0.5f);
  const auto good = device_bytes(model, plan, history, candidates);
  auto err = [](const std::vector<std::byte>& b) -> std::string {
    try {
      device_from_bytes(b);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(err(good).empty());
  // Truncated at every length: a clean error each time.
  for (std::size_t n = 0; n < good.size(); n += 7) {
    CAPTURE(n);
    CHECK_FALSE(err(std::vector<std::byte>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n))).empty());
  }
  auto flipped = good;
  flipped[good.size() / 2] ^= std::byte{0x10};
  CHECK(err(flipped).find("CRC mismatch") != std::string::npos);
  // A whole model is not a device file.
  const auto mbytes = io::model_writer(model.config(), model.weights()).to_bytes();
  CHECK(err(mbytes).find("expected a device file") != std::string::npos);

  // Re-write the good file with one change to the header or tensors.
  const io::FofaFile f = io::FofaFile::load_from_memory({good.data(), good.size()});
  auto rewrite = [&](auto edit) {
    io::FofaWriter w("device");
    nlohmann::json header = f.header();
    std::vector<std::string> names;
    for (const auto& t : f.tensors()) names.push_back(t.name);
    edit(header, names);
    w.config(header["config"]).extra("device", header["device"]);
    for (const auto& name : names) {
      if (f.find(name) == nullptr) {
        w.add(name, Tensor<float>(Shape{1}));
      } else if (f.find(name)->dtype == io::DType::i32) {
        w.add(name, f.i32(name));
      } else {
        w.add(name, f.f32(name));
      }
    }
    return w.to_bytes();
  };
  using J = nlohmann::json;
  using Names = std::vector<std::string>;
  CHECK(err(rewrite([](J&, Names& n) { n.push_back("controller.head.bias"); })).find("unexpected tensor") !=
        std::string::npos);
  CHECK(err(rewrite([](J&, Names& n) { n.erase(std::find(n.begin(), n.end(), "items.emb")); }))
            .find("missing tensor \"items.emb\"") != std::string::npos);
  CHECK(err(rewrite([](J& h, Names&) { h["device"]["block_layout"][0][0] = "ln0.weight"; })).find("block_layout") !=
        std::string::npos);
  CHECK(err(rewrite([](J& h, Names&) { h["device"]["budget"] = 1.5; })).find("budget 1.5") != std::string::npos);
  CHECK(err(rewrite([](J& h, Names&) { h["device"]["kept"] = {0, 9}; })).find("kept block 9") != std::string::npos);
  CHECK(err(rewrite([](J& h, Names&) { h["device"].erase("kept"); })).find("device.kept") != std::string::npos);
  CHECK(err(rewrite([](J& h, Names&) { h["config"]["max_len"] = 7; })).find("shape [8, 16]") != std::string::npos);
  CHECK(err(rewrite([](J& h, Names&) { h["config"]["norm"] = "sideways"; })).find("unknown norm") !=
        std::string::npos);
  CHECK(err(rewrite([](J& h, Names&) { h.erase("device"); })).find("no \"device\" object") != std::string::npos);

  // A NaN weight inside an otherwise valid file (CRC fixed up): refused by the model, not scored.
  auto nan_file = good;
  const io::TensorInfo* t = f.find("items.emb");
  const float nan = std::nanf("");
  std::memcpy(nan_file.data() + f.header_bytes() + t->offset + 8, &nan, 4);
  io::detail::store_u32(nan_file.data() + 32, io::crc32(nan_file.data() + 40, nan_file.size() - 40));
  CHECK(err(nan_file).find("items.emb has a non-finite value") != std::string::npos);
  // An id outside the vocabulary in the item table.
  auto bad_id = good;
  const io::TensorInfo* ids = f.find("items.ids");
  const std::int32_t big = 1000;
  std::memcpy(bad_id.data() + f.header_bytes() + ids->offset + 4 * (ids->shape[0] - 1), &big, 4);
  io::detail::store_u32(bad_id.data() + 32, io::crc32(bad_id.data() + 40, bad_id.size() - 40));
  CHECK(err(bad_id).find("item id 1000 outside") != std::string::npos);
}

TEST_CASE("a device model outlives the file object and the mapping stays valid") {
  const ModelConfig cfg = tiny_config();
  const ForwardOfa model = make_model(cfg, 13);
  const std::vector<std::int32_t> history = {1, 2}, candidates = {5, 6, 7};
  const fs::path path = temp_path("outlive.fofa");
  io::export_device(model, model.adapt(history, 1.0f), history, candidates, path);
  DeviceModel dm;
  {
    dm = io::load_device(path);
  }
  fs::remove(path);  // the mapping survives unlinking
  DeviceSession s(dm);
  const Ranking full = model.rerank(history, candidates, model.adapt(history, 1.0f));
  const RankingView r = s.rerank();
  check_close(r.scores, full.scores, 1e-5f);
  CHECK_THROWS_AS(DeviceModel().config(), Error);
}
