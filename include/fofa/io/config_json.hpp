// fofa/io/config_json.hpp — ModelConfig <-> JSON (the "config" object of a .fofa header).
//
// config_to_json writes every field, so a file states its whole configuration. config_from_json
// accepts the spelling of docs/DESIGN.md: a missing key keeps the SPEC default (except "items",
// which is required), an unknown key or a value of the wrong type throws fofa::Error naming the
// key (a typo must not silently become a default), and the result is validate()d.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fofa/model/config.hpp"

namespace fofa::io {

// Parses JSON written by a person (a configuration, a mapping file). Errors name `source`; a key
// given twice in one object is refused, where the parser would silently keep the last one.
inline nlohmann::json parse_json_strict(std::string_view text, std::string_view source) {
  std::vector<std::set<std::string>> keys;  // the keys seen in each open object
  const nlohmann::json::parser_callback_t no_duplicates = [&](int, nlohmann::json::parse_event_t event,
                                                                 nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) keys.emplace_back();
    if (event == E::object_end) keys.pop_back();
    if (event == E::key && !keys.back().insert(parsed.get<std::string>()).second)
      ::fofa::detail::throw_error("fofa: ", source, ": key \"", parsed.get<std::string>(),
                                  "\" appears twice in one object");
    return true;
  };
  try {
    return nlohmann::json::parse(text, no_duplicates);
  } catch (const nlohmann::json::exception& e) {
    ::fofa::detail::throw_error("fofa: ", source, ": invalid JSON: ", e.what());
  }
}

inline nlohmann::json config_to_json(const ModelConfig& c) {
  nlohmann::json j;
  j["items"] = c.items;
  j["d"] = c.d;
  j["heads"] = c.heads;
  j["blocks"] = c.blocks;
  j["max_len"] = c.max_len;
  j["ffn"] = c.ffn;
  j["activation"] = to_string(c.activation);
  j["norm"] = to_string(c.norm);
  j["eps"] = static_cast<double>(c.eps);
  j["positions"] = to_string(c.positions);
  j["emb_scale"] = to_string(c.emb_scale);
  j["input_ln"] = c.input_ln;
  j["final_ln"] = c.final_ln;
  j["padding"] = to_string(c.padding);
  j["controller"] = {{"enabled", c.controller.enabled},
                     {"extractor", to_string(c.controller.extractor)},
                     {"width", c.controller.width},
                     {"min_blocks", c.controller.min_blocks}};
  j["mapper"] = {{"mode", to_string(c.mapper.mode)},
                 {"rank", c.mapper.rank},
                 {"code_width", c.mapper.code_width},
                 {"structure_width", c.mapper.structure_width}};
  return j;
}

namespace detail {

// Reads the keys of one JSON object, checking types and rejecting keys it was not asked for.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string prefix) : j_(j), prefix_(std::move(prefix)) {
    FOFA_CHECK(j.is_object(), "config", prefix_.empty() ? "" : ".", prefix_, " is not a JSON object");
  }
  void integer(const char* key, index_t& out) {
    if (const auto* v = find(key)) {
      FOFA_CHECK(v->is_number_integer(), "config.", name(key), " must be an integer, got ", v->dump());
      out = v->get<index_t>();
    }
  }
  void boolean(const char* key, bool& out) {
    if (const auto* v = find(key)) {
      FOFA_CHECK(v->is_boolean(), "config.", name(key), " must be true or false, got ", v->dump());
      out = v->get<bool>();
    }
  }
  void number(const char* key, float& out) {
    if (const auto* v = find(key)) {
      FOFA_CHECK(v->is_number(), "config.", name(key), " must be a number, got ", v->dump());
      out = static_cast<float>(v->get<double>());
    }
  }
  template <class Enum, class Parse>
  void enumeration(const char* key, Enum& out, Parse parse) {
    if (const auto* v = find(key)) {
      FOFA_CHECK(v->is_string(), "config.", name(key), " must be a string, got ", v->dump());
      out = parse(v->get<std::string>());
    }
  }
  const nlohmann::json* object(const char* key) {
    const auto* v = find(key);
    if (v) FOFA_CHECK(v->is_object(), "config.", name(key), " must be an object, got ", v->dump());
    return v;
  }
  bool has(const char* key) const { return j_.contains(key); }
  // Throws on the first key no reader call asked for.
  void reject_unknown() const {
    for (const auto& [k, v] : j_.items()) {
      bool known = false;
      for (const auto& s : seen_) known = known || s == k;
      FOFA_CHECK(known, "unknown config key \"", name(k.c_str()), "\"");
    }
  }

 private:
  const nlohmann::json* find(const char* key) {
    seen_.emplace_back(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string name(const char* key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  const nlohmann::json& j_;
  std::string prefix_;
  std::vector<std::string> seen_;
};

}  // namespace detail

inline ModelConfig config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  detail::ConfigReader r(j, "");
  FOFA_CHECK(r.has("items"), "config.items is required");
  r.integer("items", c.items);
  r.integer("d", c.d);
  r.integer("heads", c.heads);
  r.integer("blocks", c.blocks);
  r.integer("max_len", c.max_len);
  r.integer("ffn", c.ffn);
  r.enumeration("activation", c.activation, parse_activation);
  r.enumeration("norm", c.norm, parse_norm);
  r.number("eps", c.eps);
  r.enumeration("positions", c.positions, parse_positions);
  r.enumeration("emb_scale", c.emb_scale, parse_emb_scale);
  r.boolean("input_ln", c.input_ln);
  r.boolean("final_ln", c.final_ln);
  r.enumeration("padding", c.padding, parse_padding);
  if (const auto* cj = r.object("controller")) {
    detail::ConfigReader cr(*cj, "controller");
    cr.boolean("enabled", c.controller.enabled);
    cr.enumeration("extractor", c.controller.extractor, parse_extractor);
    cr.integer("width", c.controller.width);
    cr.integer("min_blocks", c.controller.min_blocks);
    cr.reject_unknown();
  }
  if (const auto* mj = r.object("mapper")) {
    detail::ConfigReader mr(*mj, "mapper");
    mr.enumeration("mode", c.mapper.mode, parse_mapper_mode);
    mr.integer("rank", c.mapper.rank);
    mr.integer("code_width", c.mapper.code_width);
    mr.integer("structure_width", c.mapper.structure_width);
    mr.reject_unknown();
  }
  r.reject_unknown();
  c.validate();
  return c;
}

}  // namespace fofa::io
