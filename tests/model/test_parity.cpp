// PyTorch parity: ForwardOfa on the fixtures of tools/convert/make_fixtures.py gives the masks,
// pi and logits fofa_torch.py computed (pre/post/query_only, L in {1, 2, 6}, histories 1..230,
// n in {50, 200}, budgets 1/0.5/0.2, mapper lowrank/full/off, controller mean/gru/off).
#include <doctest/doctest.h>

#include "fixture.hpp"

using namespace fofa;
using fofa::test::Fixture;

namespace {

template <class Model>
void check_against_torch(const Model& model, const Fixture& fx) {
  for (std::size_t i = 0; i < fx.cases.size(); ++i) {
    const auto& c = fx.cases[i];
    CAPTURE(fx.name);
    CAPTURE(i);
    CAPTURE(c.history.size());
    CAPTURE(c.budget);
    const DevicePlan plan = model.adapt(c.history, c.budget);
    CHECK(plan.mask == c.mask);
    REQUIRE(plan.pi.size() == c.pi.size());
    for (std::size_t k = 0; k < c.pi.size(); ++k) CHECK(std::abs(plan.pi[k] - c.pi[k]) <= 1e-5f);
    const std::vector<float> logits = model.score(c.history, c.candidates, plan);
    const float diff = test::max_abs_diff(logits, c.logits);
    CHECK(diff <= 1e-4f);
    // The fixture's candidates 2 and 5 are the same id: scored independently, identically.
    CHECK(logits[2] == logits[5]);
  }
}

}  // namespace

TEST_CASE("ForwardOfa matches fofa_torch.py on every fixture variant") {
  for (const char* name : test::kFixtureNames) {
    const Fixture fx = test::load_fixture(name);
    CAPTURE(name);
    REQUIRE(fx.cases.size() >= 9);
    check_weights(fx.config, fx.weights);
    const ForwardOfa model(fx.config, fx.weights);
    check_against_torch(model, fx);
  }
}

TEST_CASE("dimensions fixed at compile time give the same logits as run-time dimensions") {
  const Fixture fx = test::load_fixture("pre_l6");
  REQUIRE(fx.config.d == 16);
  REQUIRE(fx.config.ffn == 64);
  const ForwardOfa dynamic_model(fx.config, fx.weights);
  const ForwardOfaT<Extent<16>, Extent<64>> static_model(fx.config, fx.weights);
  check_against_torch(static_model, fx);
  for (const auto& c : fx.cases) {
    const DevicePlan a = dynamic_model.adapt(c.history, c.budget);
    const DevicePlan b = static_model.adapt(c.history, c.budget);
    CHECK(a.mask == b.mask);
    CHECK(a.pi == b.pi);
    CHECK(dynamic_model.score(c.history, c.candidates, a) == static_model.score(c.history, c.candidates, b));
  }
}

TEST_CASE("a model compiled for another d refuses the weights") {
  const Fixture fx = test::load_fixture("pre_l6");
  CHECK_THROWS_WITH_AS((ForwardOfaT<Extent<32>, Extent<>>(fx.config, fx.weights)),
                       doctest::Contains("compiled for 32, given 16"), fofa::Error);
}
