// fofa/model/config.hpp — ModelConfig, the C++ mirror of the "config" object of a .fofa header.
//
// A plain struct (every field has the SPEC default) plus validate(), which throws fofa::Error
// naming the first bad field, and the cost model of docs/DESIGN.md (c_k = FLOPs of one block at
// n = max_len). Enum <-> string helpers spell values exactly as the JSON does, so io/config_json
// and the Python reference share one vocabulary. io/config_json.hpp does the JSON itself.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "fofa/core/error.hpp"
#include "fofa/core/extent.hpp"
#include "fofa/kernels/kernel_table.hpp"

namespace fofa {

using kernels::Activation;

enum class Norm { pre, post, query_only };     // pre-LN (SPEC), BERT post-LN, pmixer query-only LN
enum class Positions { start, end };           // P[i] counted from the oldest item / window anchored at the end
enum class EmbScale { sqrt_d, none };          // X0 = E[s] * sqrt(d) or E[s]
enum class Padding { none, left_window };      // run on the t real rows / on n left-padded rows (pmixer)
enum class ExtractorKind { mean, gru };        // controller extractor
enum class MapperMode { lowrank, full, off };  // parameter mapper

struct ControllerConfig {
  bool enabled = true;
  ExtractorKind extractor = ExtractorKind::mean;
  index_t width = 64;       // dc
  index_t min_blocks = 1;   // 1: never return an empty model; 0: may keep no block
};

struct MapperConfig {
  MapperMode mode = MapperMode::lowrank;
  index_t rank = 8;              // r (lowrank only)
  index_t code_width = 64;       // dz
  index_t structure_width = 16;  // ds
};

struct ModelConfig {
  index_t items = 0;  // V; ids 1..V are items, 0 is padding
  index_t d = 64;
  index_t heads = 2;
  index_t blocks = 6;  // L
  index_t max_len = 50;  // n
  index_t ffn = 256;     // f
  Activation activation = Activation::gelu;
  Norm norm = Norm::pre;
  float eps = 1e-8f;
  Positions positions = Positions::start;
  EmbScale emb_scale = EmbScale::sqrt_d;
  bool input_ln = false;
  bool final_ln = true;
  Padding padding = Padding::none;
  ControllerConfig controller;
  MapperConfig mapper;

  index_t head_dim() const { return d / heads; }
  // q = [z ; e]: the mapper's per-request code width dz + ds.
  index_t mapper_code() const { return mapper.code_width + mapper.structure_width; }
  bool mapper_on() const { return mapper.mode != MapperMode::off; }

  // c_k of docs/DESIGN.md: QKV + out projections, QK^T and AV, FFN, at n = max_len.
  double block_flops() const {
    const double n = static_cast<double>(max_len), dd = static_cast<double>(d), f = static_cast<double>(ffn);
    return 8 * n * dd * dd + 4 * n * n * dd + 4 * n * dd * f;
  }
  double full_flops() const { return block_flops() * static_cast<double>(blocks); }

  // Largest d and controller / mapper width (ffn: 4x this); far above any on-device model.
  static constexpr index_t kMaxWidth = 16384;

  // Throws fofa::Error naming the first field out of range.
  void validate() const {
    FOFA_CHECK(items >= 1, "config.items must be >= 1, got ", items);
    FOFA_CHECK(items < (index_t{1} << 31) - 1, "config.items too large for int32 ids: ", items);
    // Widths are capped so that a mistyped configuration or a corrupt file header fails here by
    // name instead of as an out-of-memory deep inside allocation (d 3e9 was a std::bad_alloc).
    FOFA_CHECK(d >= 1 && d <= kMaxWidth, "config.d must be in [1, ", kMaxWidth, "], got ", d);
    FOFA_CHECK(items <= (index_t{1} << 32) / d, "config.items x config.d = ", items, " x ", d,
               " exceeds 2^32 embedding values");
    FOFA_CHECK(heads >= 1, "config.heads must be >= 1, got ", heads);
    FOFA_CHECK(d % heads == 0, "config.d = ", d, " is not divisible by config.heads = ", heads);
    FOFA_CHECK(blocks >= 1 && blocks <= 64, "config.blocks must be in [1, 64], got ", blocks);
    // The fused attention kernel handles up to 512 keys.
    FOFA_CHECK(max_len >= 1 && max_len <= 512, "config.max_len must be in [1, 512], got ", max_len);
    FOFA_CHECK(ffn >= 1 && ffn <= 4 * kMaxWidth, "config.ffn must be in [1, ", 4 * kMaxWidth, "], got ", ffn);
    FOFA_CHECK(activation == Activation::gelu || activation == Activation::relu,
               "config.activation must be gelu or relu");
    FOFA_CHECK(std::isfinite(eps) && eps > 0.0f, "config.eps must be finite and > 0, got ", eps);
    if (controller.enabled) {
      FOFA_CHECK(controller.width >= 1 && controller.width <= kMaxWidth, "config.controller.width must be in [1, ",
                 kMaxWidth, "], got ", controller.width);
      FOFA_CHECK(controller.min_blocks == 0 || controller.min_blocks == 1,
                 "config.controller.min_blocks must be 0 or 1, got ", controller.min_blocks);
    }
    if (mapper_on()) {
      FOFA_CHECK(mapper.code_width >= 1 && mapper.code_width <= kMaxWidth, "config.mapper.code_width must be in [1, ",
                 kMaxWidth, "], got ", mapper.code_width);
      FOFA_CHECK(mapper.structure_width >= 1 && mapper.structure_width <= kMaxWidth,
                 "config.mapper.structure_width must be in [1, ", kMaxWidth, "], got ", mapper.structure_width);
      if (mapper.mode == MapperMode::lowrank)
        FOFA_CHECK(mapper.rank >= 1 && mapper.rank <= kMaxWidth, "config.mapper.rank must be in [1, ", kMaxWidth,
                   "] in lowrank mode, got ", mapper.rank);
      if (mapper.mode == MapperMode::full) {  // A1, A2: (code + structure width) x d x ffn values per block
        const double values = 2.0 * static_cast<double>(blocks) *
                              static_cast<double>(mapper.code_width + mapper.structure_width) *
                              static_cast<double>(d) * static_cast<double>(ffn);
        FOFA_CHECK(values <= 0x1p32, "config.mapper.mode full would generate from ", values,
                   " mapper values (more than 2^32); use lowrank or smaller widths");
      }
    }
  }
};

// ---- enum <-> JSON spelling -------------------------------------------------------------

inline const char* to_string(Activation a) {
  return a == Activation::gelu ? "gelu" : a == Activation::relu ? "relu" : "none";
}
inline const char* to_string(Norm v) { return v == Norm::pre ? "pre" : v == Norm::post ? "post" : "query_only"; }
inline const char* to_string(Positions v) { return v == Positions::start ? "start" : "end"; }
inline const char* to_string(EmbScale v) { return v == EmbScale::sqrt_d ? "sqrt_d" : "none"; }
inline const char* to_string(Padding v) { return v == Padding::none ? "none" : "left_window"; }
inline const char* to_string(ExtractorKind v) { return v == ExtractorKind::mean ? "mean" : "gru"; }
inline const char* to_string(MapperMode v) {
  return v == MapperMode::lowrank ? "lowrank" : v == MapperMode::full ? "full" : "off";
}

inline Activation parse_activation(std::string_view s) {
  if (s == "gelu") return Activation::gelu;
  if (s == "relu") return Activation::relu;
  detail::throw_error("fofa: unknown activation \"", s, "\" (expected gelu or relu)");
}
inline Norm parse_norm(std::string_view s) {
  if (s == "pre") return Norm::pre;
  if (s == "post") return Norm::post;
  if (s == "query_only") return Norm::query_only;
  detail::throw_error("fofa: unknown norm \"", s, "\" (expected pre, post or query_only)");
}
inline Positions parse_positions(std::string_view s) {
  if (s == "start") return Positions::start;
  if (s == "end") return Positions::end;
  detail::throw_error("fofa: unknown positions \"", s, "\" (expected start or end)");
}
inline EmbScale parse_emb_scale(std::string_view s) {
  if (s == "sqrt_d") return EmbScale::sqrt_d;
  if (s == "none") return EmbScale::none;
  detail::throw_error("fofa: unknown emb_scale \"", s, "\" (expected sqrt_d or none)");
}
inline Padding parse_padding(std::string_view s) {
  if (s == "none") return Padding::none;
  if (s == "left_window") return Padding::left_window;
  detail::throw_error("fofa: unknown padding \"", s, "\" (expected none or left_window)");
}
inline ExtractorKind parse_extractor(std::string_view s) {
  if (s == "mean") return ExtractorKind::mean;
  if (s == "gru") return ExtractorKind::gru;
  detail::throw_error("fofa: unknown controller.extractor \"", s, "\" (expected mean or gru)");
}
inline MapperMode parse_mapper_mode(std::string_view s) {
  if (s == "lowrank") return MapperMode::lowrank;
  if (s == "full") return MapperMode::full;
  if (s == "off") return MapperMode::off;
  detail::throw_error("fofa: unknown mapper.mode \"", s, "\" (expected lowrank, full or off)");
}

}  // namespace fofa
