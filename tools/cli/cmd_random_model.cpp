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
  cfg.items = static_cast<index_t>(parse_count(a.get("--items"), "--items"));
  auto count = [&](const char* opt, index_t& v) {
    if (a.has(opt)) v = static_cast<index_t>(parse_count(a.get(opt), opt));
  };
  count("--d", cfg.d);
  count("--heads", cfg.heads);
  count("--blocks", cfg.blocks);
  count("--max-len", cfg.max_len);
  cfg.ffn = 4 * cfg.d;
  count("--ffn", cfg.ffn);
  cfg.controller.width = cfg.d;
  cfg.mapper.code_width = cfg.d;
  InitOptions opt;
  opt.mapper_scale = a.has("--mapper-scale") ? parse_number(a.get("--mapper-scale"), "--mapper-scale") : 0.05f;
  opt.controller_head_bias = a.has("--head-bias") ? parse_number(a.get("--head-bias"), "--head-bias") : 2.0f;
  const std::uint64_t seed = a.has("--seed") ? parse_count(a.get("--seed"), "--seed") : 1;
  cfg.validate();
  io::check_writable(a.positional()[0]);
  const std::size_t bytes = io::save_model(a.positional()[0], cfg, random_weights(cfg, seed, opt),
                                           {{"generator", "fofa random-model"}, {"seed", seed}});
  out << "wrote " << a.positional()[0] << ": " << bytes << " bytes\n";
  return 0;
}

}  // namespace fofa::cli
