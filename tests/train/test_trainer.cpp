// Trainer: learning on synthetic data, determinism, checkpoint/resume equality, NaN handling.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "fofa/train/synthetic.hpp"
#include "fofa/train/trainer.hpp"
#include "train_test_util.hpp"

using namespace fofa;
using namespace fofa::train;
using fofa::train::test::small_config;

namespace {

TrainerOptions small_options() {
  TrainerOptions o;
  o.epochs = 3;
  o.batch = 32;
  o.lr = 5e-3;
  o.dropout = 0.1;
  o.threads = 2;
  o.progress = false;
  o.eval_users = 200;
  o.patience = 5;
  return o;
}

const SplitData& synthetic_split() {
  static const SplitData s = split_leave_one_out(make_synthetic({.items = 400, .users = 400}).data);
  return s;
}

std::filesystem::path temp_path(const char* name) {
  return std::filesystem::temp_directory_path() / (std::string("fofa-test-") + std::to_string(::getpid()) + "-" + name);
}

bool same_weights(const TrainableModel<float>& a, const TrainableModel<float>& b) {
  for (int i = 0; i < a.params().size(); ++i)
    if (a.params()[i].value != b.params()[i].value) return false;
  return true;
}

}  // namespace

TEST_CASE("training on synthetic patterns lowers the loss and beats random ranking by far") {
  const auto& data = synthetic_split();
  TrainerOptions o = small_options();
  o.epochs = 6;
  Trainer tr(small_config(400), data, o);
  tr.fit();
  const auto& h = tr.history();
  REQUIRE(h.size() >= 3);
  CHECK(h.back().loss < 0.8 * h.front().loss);
  const EvalResult r = evaluate(tr.model(), data, {.split = EvalSplit::test, .seed = 3, .threads = 2});
  MESSAGE("synthetic test HR@10 ", r.sampled.hit_rate(10), " NDCG@10 ", r.sampled.ndcg_at(10));
  CHECK(r.sampled.hit_rate(10) > 0.3);  // random ranking: 10/101 ~ 0.099
  CHECK(r.users > 300);
}

TEST_CASE("training is deterministic for a seed, and resume reproduces the uninterrupted run") {
  const auto& data = synthetic_split();
  TrainerOptions o = small_options();
  o.epochs = 2;
  Trainer straight(small_config(400), data, o);
  straight.fit();
  Trainer again(small_config(400), data, o);
  again.fit();
  CHECK(same_weights(straight.model(), again.model()));

  const auto ckpt = temp_path("resume.fofa");
  TrainerOptions first = o;
  first.checkpoint = ckpt.string();
  {
    Trainer part(small_config(400), data, first);
    part.fit(nullptr, /*max_epochs=*/1);  // interrupted after one of two epochs
  }
  REQUIRE(std::filesystem::exists(ckpt));
  Trainer resumed(small_config(400), data, o);
  resumed.resume(ckpt);
  CHECK(resumed.epochs_done() == 1);
  resumed.fit();
  CHECK(resumed.history().size() == 2);
  CHECK(resumed.history().back().loss == straight.history().back().loss);
  CHECK(same_weights(straight.model(), resumed.model()));
  std::filesystem::remove(ckpt);
}

TEST_CASE("one and two threads compute the same batch loss up to rounding") {
  const auto& data = synthetic_split();
  TrainerOptions o1 = small_options(), o2 = small_options();
  o1.threads = 1;
  Trainer a(small_config(400), data, o1), b(small_config(400), data, o2);
  const auto samples = a.batch_samples(0, 0);
  const double la = a.step(samples, 1.0).first, lb = b.step(samples, 1.0).first;
  CHECK(la == doctest::Approx(lb).epsilon(1e-5));
}

TEST_CASE("a NaN loss stops training with a clear message and leaves the checkpoint intact") {
  const auto& data = synthetic_split();
  const auto ckpt = temp_path("nan.fofa");
  TrainerOptions o = small_options();
  o.epochs = 1;
  o.checkpoint = ckpt.string();
  Trainer tr(small_config(400), data, o);
  tr.fit();
  const auto size = std::filesystem::file_size(ckpt);
  std::ifstream in(ckpt, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(in)), {});
  tr.model().params().at("blocks.0.ffn.w1.weight").value[3] = NAN;
  const std::string kept = "the last good checkpoint " + ckpt.string() + ", after epoch 1, is kept";
  CHECK_THROWS_WITH_AS(tr.step(tr.batch_samples(1, 0), 0.5), doctest::Contains(kept.c_str()), fofa::Error);
  CHECK(std::filesystem::file_size(ckpt) == size);
  std::ifstream in2(ckpt, std::ios::binary);
  CHECK(std::string((std::istreambuf_iterator<char>(in2)), {}) == before);
  std::filesystem::remove(ckpt);
}

TEST_CASE("progress: a bar redrawn with '\\r' for a terminal, no '\\r' in a log file") {
  TrainerOptions o = small_options();
  o.epochs = 1;
  o.steps_per_epoch = 3;
  o.progress = true;
  for (const bool bar : {true, false}) {
    o.progress_bar = bar;
    Trainer tr(small_config(400), synthetic_split(), o);
    std::ostringstream log;
    tr.fit(&log);
    CHECK((log.str().find('\r') != std::string::npos) == bar);
    CHECK((log.str().find("[##############################] 100%") != std::string::npos) == bar);
    CHECK(log.str().find("epoch 1/1  loss ") != std::string::npos);  // the epoch summary line, either way
  }
}

TEST_CASE("a NaN loss before the first checkpoint says that no checkpoint exists yet") {
  const auto ckpt = temp_path("nan-early.fofa");
  TrainerOptions o = small_options();
  o.checkpoint = ckpt.string();
  Trainer tr(small_config(400), synthetic_split(), o);
  tr.model().params().at("blocks.0.ffn.w1.weight").value[3] = NAN;
  CHECK_THROWS_WITH_AS(tr.step(tr.batch_samples(0, 0), 0.5), doctest::Contains("no checkpoint written yet"),
                       fofa::Error);
  CHECK_FALSE(std::filesystem::exists(ckpt));
}

TEST_CASE("data with no user of 3 or more interactions is refused: nothing to validate") {
  InteractionData raw;
  raw.items = 200;
  raw.users = {{1, 2}, {3, 4}, {5, 6}};  // trainable (2 items each) but never evaluated
  const SplitData data = split_leave_one_out(raw);
  CHECK_THROWS_WITH_AS(Trainer(small_config(200), data, small_options()),
                       doctest::Contains("no user has 3 or more interactions"), fofa::Error);
  raw.users.push_back({7, 8, 9, 10});  // one evaluated user is enough
  const SplitData one = split_leave_one_out(raw);
  Trainer tr(small_config(200), one, small_options());
  CHECK(evaluate(tr.model(), one, {}).users == 1);
  CHECK_THROWS_WITH_AS(evaluate(tr.model(), data, {}), doctest::Contains("no user to evaluate"), fofa::Error);
}

TEST_CASE("resume rejects a corrupt checkpoint, one of another configuration or one of other data") {
  const auto& data = synthetic_split();
  const auto ckpt = temp_path("bad.fofa");
  TrainerOptions o = small_options();
  o.epochs = 1;
  o.checkpoint = ckpt.string();
  {
    Trainer tr(small_config(400), data, o);
    tr.fit();
  }
  ModelConfig other = small_config(400);
  other.d = 8;
  Trainer different(other, data, small_options());
  CHECK_THROWS_WITH_AS(different.resume(ckpt), doctest::Contains("configuration differs"), fofa::Error);
  {  // the same configuration on other data: refused, not silently continued
    const SplitData other = split_leave_one_out(make_synthetic({.items = 400, .users = 300}).data);
    Trainer elsewhere(small_config(400), other, small_options());
    CHECK_THROWS_WITH_AS(elsewhere.resume(ckpt), doctest::Contains("checkpoint was trained on other data"),
                         fofa::Error);
    Trainer same(small_config(400), data, small_options());
    CHECK_NOTHROW(same.resume(ckpt));
    TrainerOptions reseeded = small_options();
    reseeded.seed = 99;
    Trainer other_seed(small_config(400), data, reseeded);
    CHECK_THROWS_WITH_AS(other_seed.resume(ckpt), doctest::Contains("checkpoint was trained with seed 1"), fofa::Error);
  }
  {
    std::fstream f(ckpt, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(ckpt) - 10));
    f.put('\x7f');
  }
  Trainer tr(small_config(400), data, small_options());
  CHECK_THROWS_AS(tr.resume(ckpt), fofa::Error);
  CHECK_THROWS_AS(tr.resume(temp_path("missing.fofa")), fofa::Error);
  std::filesystem::remove(ckpt);
}

TEST_CASE("trainer options are validated") {
  const auto& data = synthetic_split();
  TrainerOptions o = small_options();
  o.budget_min = 0.0;
  CHECK_THROWS_AS(Trainer(small_config(400), data, o), fofa::Error);
  o = small_options();
  o.threads = 0;
  CHECK_THROWS_AS(Trainer(small_config(400), data, o), fofa::Error);
  CHECK_THROWS_AS(Trainer(small_config(50), data, small_options()), fofa::Error);  // ids above config.items
}
