// Shared by the converter tests: where the checkpoints live (the committed fixtures, or the
// freshly generated ones of the live torch test via FOFA_CONVERT_DATA_DIR) and file helpers.
#pragma once

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include <doctest/doctest.h>

inline std::string data_path(const std::string& name) {
  const char* dir = std::getenv("FOFA_CONVERT_DATA_DIR");
  return std::string(dir && *dir ? dir : FOFA_TEST_DATA_DIR) + "/" + name;
}

inline nlohmann::json read_json(const std::string& name) {
  std::ifstream in(data_path(name));
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}
