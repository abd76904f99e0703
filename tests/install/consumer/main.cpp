// Uses the installed headers: a tensor and one kernel call through the dispatched table.
#include <cstdio>

#include <fofa/core/tensor.hpp>
#include <fofa/kernels/kernel_table.hpp>

int main() {
  fofa::Tensor<float> x({1, 3}, {1, 2, 3});
  float y = 0;
  fofa::kernels::kernels().dot_rows(1, 3, x.data(), x.data(), 3, &y);
  std::printf("%s %g\n", fofa::kernels::kernels().name, y);
  return y == 14.0f ? 0 : 1;
}
