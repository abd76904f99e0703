#include <doctest/doctest.h>

#include <cstdint>

#include "fofa/core/tensor.hpp"
#include "fofa/core/workspace.hpp"

using namespace fofa;

TEST_CASE("tensor storage is 64-byte aligned, zeroed and row-major") {
  for (index_t rows : {1, 3, 7}) {
    Tensor<float> t({rows, 5});
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
    CHECK(t.view().stride(0) == 5);
    CHECK(t.view().stride(1) == 1);
    for (index_t i = 0; i < t.numel(); ++i) CHECK(t[i] == 0.0f);
  }
  Tensor<float> t({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t(1, 2) == 6.0f);
  CHECK(t.view().row(1)(0) == 4.0f);
  CHECK(t.view().slice_rows(1, 2)(0, 1) == 5.0f);
}

TEST_CASE("checked access and shape mismatches throw fofa::Error naming shapes") {
  Tensor<float> t({2, 3});
  CHECK_THROWS_AS(t.view().at(2, 0), Error);
  CHECK_THROWS_AS(t.view().at(0), Error);
  CHECK_THROWS_WITH_AS(check_shape("weight", t.shape(), Shape{3, 2}),
                       doctest::Contains("[2, 3] does not match expected [3, 2]"), Error);
  CHECK_THROWS_AS(t.view().reshape({4, 2}), Error);
  CHECK_THROWS_AS(Shape({1, 2, 3, 4, 5}), Error);
}

TEST_CASE("copy handles strided (transposed) views") {
  Tensor<float> a({2, 3}, {1, 2, 3, 4, 5, 6});
  TensorView<const float> at(a.data(), Shape{3, 2}, Strides{1, 3, 0, 0});
  Tensor<float> b = Tensor<float>::from(at);
  CHECK(b(0, 1) == 4.0f);
  CHECK(b(2, 0) == 3.0f);
}

TEST_CASE("extents: static and dynamic share one interface") {
  Extent<64> s;
  Extent<> d(64);
  CHECK(s.value() == d.value());
  static_assert(Extent<64>::value() == 64);
  CHECK_THROWS_AS(Extent<64>(50), Error);
  CHECK_THROWS_AS(Extent<>(0), Error);
}

TEST_CASE("workspace takes planned buffers and refuses more") {
  WorkspacePlan plan;
  plan.add<float>(10).add<std::int32_t>(3);
  Workspace ws(plan);
  CHECK(ws.capacity() == plan.bytes());
  float* a = ws.take<float>(10);
  auto* b = ws.take<std::int32_t>(3);
  CHECK(reinterpret_cast<std::uintptr_t>(a) % 64 == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(b) % 64 == 0);
  CHECK_THROWS_AS(ws.take<float>(1), Error);
  ws.rewind();
  CHECK(ws.take<float>(10) == a);
}
