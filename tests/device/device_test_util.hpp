// Shared helpers of the device tests: small configurations and seeded models.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "fofa/io/device_file.hpp"
#include "fofa/model/init.hpp"
#include "../common/small_config.hpp"

namespace fofa::testing {

inline ModelConfig tiny_config() { return small_config({.items = 40, .blocks = 4, .max_len = 8}); }

// A model whose mapper changes the weights (mapper_scale > 0) and whose controller keeps every
// block unless the budget says otherwise (large head bias).
inline ForwardOfa make_model(const ModelConfig& c, std::uint64_t seed) {
  InitOptions opt;
  opt.mapper_scale = 0.05f;
  opt.controller_head_bias = 4.0f;
  return ForwardOfa(c, random_weights(c, seed, opt));
}

inline std::vector<std::int32_t> ids_from(std::uint64_t seed, std::size_t n, index_t items) {
  SeededNormal rng(seed);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = static_cast<std::int32_t>(1 + rng.next_u64() % static_cast<std::uint64_t>(items));
  return v;
}

inline std::vector<std::byte> device_bytes(const ForwardOfa& m, const DevicePlan& plan,
                                           std::span<const std::int32_t> history,
                                           std::span<const std::int32_t> candidates) {
  return io::device_writer(m, plan, history, candidates).to_bytes();
}

inline DeviceModel device_from_bytes(const std::vector<std::byte>& b) {
  return io::device_from_file(io::FofaFile::load_from_memory({b.data(), b.size()}));
}

inline std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("fofa-device-" + std::to_string(::getpid()) + "-" + name);
}

}  // namespace fofa::testing
