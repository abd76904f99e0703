// `fofa random-model OUT --items N [...]`: a seeded random model at any configuration, for
// tests, demos and benchmarks (weights from fofa::random_weights, identical on every platform).
#include <iostream>

#include "cli.hpp"

namespace fofa::cli {

int cmd_random_model(const std::vector<std::string>& args, std::ostream& out) {
  const Args a(args,
               {"--items", "--seed", "--d", "--heads", "--blocks", "--max-len", "--ffn", "--mapper-scale",
                "--head-bias"},
               {});
  a.expect_positional(1, "one OUT path");
  ModelConfig cfg;
  // Shapes are checked by cfg.validate() below, by name (config.d must be in [1, 16384]).
  cfg.items = parse_count<index_t>(a.get("--items"), "--items");
  cfg.d = a.count("--d", cfg.d);
  cfg.heads = a.count("--heads", cfg.heads);
  cfg.blocks = a.count("--blocks", cfg.blocks);
  cfg.max_len = a.count("--max-len", cfg.max_len);
  cfg.ffn = a.count("--ffn", 4 * cfg.d);
  cfg.controller.width = cfg.d;
  cfg.mapper.code_width = cfg.d;
  InitOptions opt;
  opt.mapper_scale = a.number("--mapper-scale", 0.05f, kNonNegative);  // 0: zero mapper heads (SPEC 4)
  opt.controller_head_bias = a.number("--head-bias", 2.0f, kAnyFinite);
  const std::uint64_t seed = a.count<std::uint64_t>("--seed", 1);
  cfg.validate();
  io::check_writable(a.positional()[0]);
  std::ostream& report = report_to(a.positional()[0], out);
  const std::size_t bytes = io::save_model(a.positional()[0], cfg, random_weights(cfg, seed, opt),
                                           {{"generator", "fofa random-model"}, {"seed", seed}});
  report << "wrote " << a.positional()[0] << ": " << bytes << " bytes\n";
  return 0;
}

}  // namespace fofa::cli
