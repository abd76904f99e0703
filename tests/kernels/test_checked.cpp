// The checked TensorView API: it runs the table it is given and rejects bad shapes with
// messages naming them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "fofa/kernels/kernels.hpp"

using namespace fofa;
using namespace fofa::kernels;

namespace {
std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("checked linear runs every table and matches the reference") {
  Tensor<float> w({3, 4}), b({3}), x({2, 4}), y({2, 3}), want({2, 3});
  for (index_t i = 0; i < w.numel(); ++i) w[i] = 0.25f * static_cast<float>(i) - 1.0f;
  for (index_t i = 0; i < x.numel(); ++i) x[i] = 0.5f - 0.125f * static_cast<float>(i);
  b[0] = 1; b[1] = -1; b[2] = 0.5f;
  reference::linear<float>(2, 3, 4, x.data(), 4, w.data(), 4, b.data(), want.data(), 3);
  for (const KernelTable* t : available_kernels()) {
    const std::string isa = t->name;
    CAPTURE(isa);
    PackedMatrix p = pack_linear(w.view(), b.view(), *t);
    linear(x.view(), p, y.view(), Activation::none, false, *t);
    for (index_t i = 0; i < y.numel(); ++i) CHECK(y[i] == want[i]);
    Tensor<float> y1({1, 3});
    linear(x.view().slice_rows(1, 2), p, y1.view(), Activation::none, false, *t);
    for (index_t i = 0; i < 3; ++i) CHECK(y1[i] == doctest::Approx(want[3 + i]).epsilon(1e-6));
  }
}

TEST_CASE("checked API throws fofa::Error naming shapes") {
  Tensor<float> w({3, 4}), x({2, 5}), y({2, 3}), y_bad({2, 2});
  PackedMatrix p = pack_linear(w.view());
  CHECK(error_of([&] { linear(x.view(), p, y.view()); }).find("[2, 5]") != std::string::npos);
  Tensor<float> x4({2, 4});
  const std::string msg = error_of([&] { linear(x4.view(), p, y_bad.view()); });
  CHECK(msg.find("[2, 2]") != std::string::npos);
  CHECK(msg.find("[2, 3]") != std::string::npos);
  Tensor<float> b_bad({4});
  CHECK(error_of([&] { (void)pack_linear(w.view(), b_bad.view()); }).find("[4]") != std::string::npos);
  // a matrix packed by another family is refused
  if (available_kernels().size() > 1) {
    PackedMatrix other = pack_linear(w.view(), {}, *available_kernels()[0]);
    CHECK_THROWS_AS(linear(x4.view(), other, y.view(), Activation::none, false, *available_kernels()[1]), Error);
  }
  // gather ids out of range
  Tensor<float> table({5, 2}), out({2, 2});
  std::vector<std::int32_t> ids = {1, 5};
  CHECK(error_of([&] { gather_rows(table.view(), ids, 1.0f, {}, out.view()); }).find("id 5") != std::string::npos);
  ids[1] = -1;
  CHECK_THROWS_AS(gather_rows(table.view(), ids, 1.0f, {}, out.view()), Error);
  // attention: scratch too small, mismatched keys
  Tensor<float> q({3, 4}), k({3, 4}), v({3, 4}), o({3, 4}), k_short({2, 4});
  std::vector<float> scratch(static_cast<std::size_t>(attention_scratch_floats(3)));
  CHECK_NOTHROW(attention(q.view(), k.view(), v.view(), 2, 0, 0, o.view(), scratch));
  CHECK(error_of([&] { attention(q.view(), k_short.view(), v.view(), 2, 0, 0, o.view(), scratch); })
            .find("[2, 4]") != std::string::npos);
  CHECK_THROWS_AS(attention(q.view(), k.view(), v.view(), 3, 0, 0, o.view(), scratch), Error);
  std::vector<float> small(8);
  CHECK_THROWS_AS(attention(q.view(), k.view(), v.view(), 2, 0, 0, o.view(), small), Error);
  // layernorm: eps and gamma shape
  Tensor<float> g({4}), be({4}), g_bad({3});
  CHECK_THROWS_AS(layernorm(x4.view(), g_bad.view(), be.view(), 1e-5f, x4.view()), Error);
  CHECK_THROWS_AS(layernorm(x4.view(), g.view(), be.view(), 0.0f, x4.view()), Error);
  // outputs overlapping inputs are refused
  Tensor<float> sq({4, 4});
  PackedMatrix p4 = pack_linear(sq.view());
  CHECK(error_of([&] { linear(sq.view(), p4, sq.view()); }).find("overlaps") != std::string::npos);
  CHECK_NOTHROW(linear(sq.view().slice_rows(0, 2), p4, sq.view().slice_rows(2, 4)));
  CHECK_THROWS_AS(attention(q.view(), k.view(), v.view(), 2, 0, 0, q.view(), scratch), Error);
  // softmax col_begin out of range
  CHECK_THROWS_AS(softmax_rows(x4.view(), false, 0, 7), Error);
}
