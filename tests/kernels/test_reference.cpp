// Scalar references against hand-computed values and double precision, and the checked API.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "fofa/kernels/kernels.hpp"

namespace ref = fofa::kernels::reference;
using fofa::index_t;
using fofa::kernels::Activation;
using fofa::kernels::UnaryOp;

TEST_CASE("reference activations match closed forms") {
  CHECK(ref::gelu(0.0) == 0.0);
  CHECK(ref::gelu(1.0) == doctest::Approx(0.8413447460685429));
  CHECK(ref::gelu(-1.0) == doctest::Approx(-0.15865525393145707));
  CHECK(ref::sigmoid(0.0) == 0.5);
  CHECK(ref::relu(-2.0f) == 0.0f);
  CHECK(ref::relu(2.0f) == 2.0f);
  // derivatives by central differences
  for (double x : {-2.5, -0.7, 0.3, 1.9}) {
    for (UnaryOp op : {UnaryOp::gelu, UnaryOp::tanh, UnaryOp::sigmoid}) {
      const double h = 1e-6;
      const double fd = (ref::apply(op, x + h) - ref::apply(op, x - h)) / (2 * h);
      CHECK(ref::apply_grad(op, x) == doctest::Approx(fd).epsilon(1e-7));
    }
  }
}

TEST_CASE("reference linear computes x W^T + b with activation and accumulate") {
  // x [2,3], W [2,3]
  const double x[] = {1, 2, 3, -1, 0, 2};
  const double w[] = {1, 0, -1, 2, 1, 1};
  const double b[] = {0.5, -10};
  double y[4] = {100, 100, 100, 100};
  ref::linear(2, 2, 3, x, 3, w, 3, b, y, 2);
  CHECK(y[0] == 1 - 3 + 0.5);
  CHECK(y[1] == 2 + 2 + 3 - 10);
  CHECK(y[2] == -1 - 2 + 0.5);
  CHECK(y[3] == -2 + 0 + 2 - 10);
  ref::linear(2, 2, 3, x, 3, w, 3, b, y, 2, Activation::relu, true);
  CHECK(y[0] == -1.5);           // -1.5 + relu(-1.5)
  CHECK(y[2] == -2.5);
  CHECK(y[1] == -3.0);
}

TEST_CASE("reference matmul transposes") {
  const double A[] = {1, 2, 3, 4};  // [2,2]
  const double B[] = {5, 6, 7, 8};
  double C[4] = {1, 1, 1, 1};
  ref::matmul(false, false, 2, 2, 2, 1.0, A, 2, B, 2, 0.0, C, 2);
  CHECK(C[0] == 19); CHECK(C[1] == 22); CHECK(C[2] == 43); CHECK(C[3] == 50);
  ref::matmul(true, true, 2, 2, 2, 1.0, A, 2, B, 2, 1.0, C, 2);  // += A^T B^T
  CHECK(C[0] == 19 + 1 * 5 + 3 * 6);
  CHECK(C[3] == 50 + 2 * 7 + 4 * 8);
}

TEST_CASE("reference layernorm and masked softmax") {
  const double x[] = {1, 2, 3, 4};
  double y[4];
  ref::layernorm(1, 4, x, 4, static_cast<const double*>(nullptr), static_cast<const double*>(nullptr), 0.0, y, 4);
  const double sd = std::sqrt(1.25);
  CHECK(y[0] == doctest::Approx(-1.5 / sd));
  CHECK(y[3] == doctest::Approx(1.5 / sd));
  double s[] = {0, 0, 0, 1, 2, 3, 4, 5, 6};  // [3,3]
  ref::softmax_rows(3, 3, s, 3, true, 0, 1);
  // row 0 keeps [1,1): empty -> zeros; row 1 keeps col 1; row 2 keeps cols 1..2
  CHECK(s[0] == 0); CHECK(s[1] == 0); CHECK(s[2] == 0);
  CHECK(s[3] == 0); CHECK(s[4] == 1); CHECK(s[5] == 0);
  CHECK(s[6] == 0);
  CHECK(s[7] == doctest::Approx(1 / (1 + std::exp(1.0))));
  CHECK(s[8] == doctest::Approx(std::exp(1.0) / (1 + std::exp(1.0))));
}

TEST_CASE("reference attention: one visible key copies its value, padding rows are zero") {
  // 1 head, dh 2, 3 positions, key_begin 1
  const double q[] = {1, 0, 0, 1, 1, 1};
  const double k[] = {9, 9, 1, 0, 0, 1};
  const double v[] = {7, 7, 1, 2, 3, 4};
  double o[6];
  ref::attention(3, 0, 1, 1, 2, q, 2, k, 2, v, 2, o, 2, 1.0);
  CHECK(o[0] == 0); CHECK(o[1] == 0);
  CHECK(o[2] == 1); CHECK(o[3] == 2);
  CHECK(o[4] == doctest::Approx(2)); CHECK(o[5] == doctest::Approx(3));  // equal scores -> mean
}
